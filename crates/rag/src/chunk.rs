//! Splitting a document into overlapping chunks of words. A chunk is a slice of the original text
//! (line breaks and spacing kept), so a citation quotes the document exactly.

/// Most chunks one job embeds (about 3 minutes of embedding at 1 core; a bound on memory too).
pub const MAX_CHUNKS: usize = 20_000;

/// The chunks of `text`: windows of `words` whitespace-separated words, each starting
/// `words - overlap` words after the previous one; the last window ends at the last word, and no
/// window lies wholly inside the previous one. Empty text gives no chunks.
///
/// # Panics
/// Never: `overlap >= words` or `words == 0` are treated as `overlap = words - 1`, `words = 1`.
pub fn chunk(text: &str, words: usize, overlap: usize) -> Vec<&str> {
    let words = words.max(1);
    let step = words - overlap.min(words - 1);
    let spans = word_spans(text);
    let mut out = Vec::new();
    let mut start = 0;
    while start < spans.len() {
        let end = (start + words).min(spans.len());
        out.push(&text[spans[start].0..spans[end - 1].1]);
        if end == spans.len() {
            break;
        }
        start += step;
    }
    out
}

/// Byte ranges of the whitespace-separated words of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn numbered(n: usize) -> String {
        (0..n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn empty_and_blank_text_give_no_chunks() {
        assert!(chunk("", 10, 2).is_empty());
        assert!(chunk(" \n\t ", 10, 2).is_empty());
    }

    #[test]
    fn short_text_is_one_chunk_trimmed() {
        assert_eq!(chunk("  a b\nc  ", 10, 2), vec!["a b\nc"]);
        let ten = numbered(10);
        assert_eq!(chunk(&ten, 10, 2), vec![ten.as_str()]);
    }

    #[test]
    fn boundaries_and_overlap() {
        // 11 words, windows of 10 with overlap 2: [0..10), [8..11).
        let t = numbered(11);
        let c = chunk(&t, 10, 2);
        assert_eq!(c.len(), 2);
        assert!(c[0].starts_with("w0 ") && c[0].ends_with(" w9"));
        assert_eq!(c[1], "w8 w9 w10");
        // 26 words, windows of 10, step 8: starts 0, 8, 16; the third ends at w25.
        let t = numbered(26);
        let c = chunk(&t, 10, 2);
        assert_eq!(c.len(), 3);
        assert!(c[2].starts_with("w16 ") && c[2].ends_with(" w25"));
        // Every word is in some chunk, and consecutive chunks share exactly `overlap` words.
        for pair in c.windows(2) {
            let a: Vec<_> = pair[0].split_whitespace().collect();
            let b: Vec<_> = pair[1].split_whitespace().collect();
            assert_eq!(&a[a.len() - 2..], &b[..2]);
        }
    }

    #[test]
    fn text_between_words_is_kept_exactly() {
        let t = "one  two\n\nthree\tfour five";
        assert_eq!(
            chunk(t, 3, 1),
            vec!["one  two\n\nthree", "three\tfour five"]
        );
    }

    #[test]
    fn degenerate_parameters_do_not_loop_or_panic() {
        let t = numbered(5);
        assert_eq!(chunk(&t, 3, 3).len(), 3); // overlap clamped to 2: step 1
        assert_eq!(chunk(&t, 0, 0).len(), 5); // words clamped to 1
    }

    #[test]
    fn unicode_words_slice_on_char_boundaries() {
        let t = "Größe über\u{3000}日本語 ok";
        let c = chunk(t, 2, 0);
        assert_eq!(c, vec!["Größe über", "日本語 ok"]);
    }
}
