//! HTML to visible text, with html5ever's spec parser (through html2text): scripts, styles and
//! the head are dropped, entities decoded, block elements on their own lines. No decoration (no
//! link footnotes, no `*` for emphasis): the model should read the document's words only.

/// Lines longer than this are wrapped by the renderer; a paragraph is rarely longer, and a wrap
/// only inserts a newline, which chunking treats as any other whitespace.
const WIDTH: usize = 10_000;

/// The visible text of an HTML document. Never fails: malformed HTML parses as browsers parse it.
pub(crate) fn visible_text(html: &str) -> String {
    html2text::config::plain_no_decorate()
        .string_from_read(html.as_bytes(), WIDTH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scripts_styles_and_tags_go_entities_are_decoded() {
        let page = "<!doctype html><html><head><title>T</title><style>p{color:red}</style>\
            <script>var secret = 'do not index';</script></head><body><h1>Travel &amp; expenses</h1>\
            <p>Caf&eacute; allowance: EUR 58 per day.</p><ul><li>one</li><li>two</li></ul>\
            <script>console.log('x')</script></body></html>";
        let text = visible_text(page);
        assert!(text.contains("Travel & expenses"), "{text}");
        assert!(text.contains("Café allowance: EUR 58 per day."), "{text}");
        assert!(text.contains("one") && text.contains("two"), "{text}");
        assert!(
            !text.contains("secret") && !text.contains("console"),
            "{text}"
        );
        assert!(!text.contains("color") && !text.contains('<'), "{text}");
    }

    #[test]
    fn malformed_html_still_gives_its_text() {
        let text = visible_text("<p>unclosed <b>bold <i>text</p></div></span>");
        assert!(text.contains("unclosed bold text"), "{text}");
    }
}
