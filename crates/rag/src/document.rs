//! Documents: what formats the job reads, and their text. Plain text and Markdown are read as
//! they are (a model reads Markdown well); HTML is reduced to its visible text. Everything else is
//! refused by name, before any model runs: a PDF or a word-processor file read as text would give
//! answers from garbage.

use crate::error::RagError;
use crate::html;

/// Most documents one job reads.
pub const MAX_DOCUMENTS: usize = 10_000;

/// A document format the job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain`: `.txt`, `.text`.
    Text,
    /// `text/markdown`: `.md`, `.markdown`.
    Markdown,
    /// `text/html`: `.html`, `.htm`.
    Html,
}

impl Format {
    /// The format of a media type (parameters such as `; charset=utf-8` ignored), if supported.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "text/plain" => Some(Self::Text),
            "text/markdown" | "text/x-markdown" => Some(Self::Markdown),
            "text/html" => Some(Self::Html),
            _ => None,
        }
    }

    /// The format of a file in a folder, by its extension; an unsupported one is refused with a
    /// message naming the file.
    pub fn from_path(path: &str) -> Result<Self, RagError> {
        let file = path.rsplit('/').next().unwrap_or(path);
        let ext = match file.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
            _ => {
                return Err(RagError::Unsupported {
                    document: path.into(),
                    reason: "a file without an extension (its format is unknown)".into(),
                })
            }
        };
        match ext.as_str() {
            "txt" | "text" => Ok(Self::Text),
            "md" | "markdown" => Ok(Self::Markdown),
            "html" | "htm" => Ok(Self::Html),
            other => Err(RagError::Unsupported {
                document: path.into(),
                reason: format!(".{other} files are not read ({})", known_format(other)),
            }),
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
        }
    }
}

fn known_format(ext: &str) -> &'static str {
    match ext {
        "pdf" => "PDF",
        "doc" | "docx" | "odt" | "rtf" | "pages" => "a word-processor document",
        "xls" | "xlsx" | "ods" | "csv" | "tsv" => {
            "a spreadsheet or table; use the SQL job for tables"
        }
        "ppt" | "pptx" | "odp" | "key" => "a presentation",
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "svg" | "tiff" => "an image",
        "zip" | "tar" | "gz" | "xz" | "zst" | "7z" => "an archive; send its files as a folder",
        _ => "an unsupported format",
    }
}

/// One document's name and text.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    /// Its name: a path in the folder, or the single document's name.
    pub name: String,
    /// Its text (HTML already reduced to text).
    pub text: String,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text: debug output may reach a log.
        write!(f, "Document({} bytes)", self.text.len())
    }
}

/// Reads a document's bytes as `format`: refuses content that is not text whatever its name says
/// (a PDF or ZIP signature, NUL bytes, invalid UTF-8), and extracts HTML's visible text.
pub fn read(name: &str, format: Format, bytes: Vec<u8>) -> Result<Document, RagError> {
    let refuse = |reason: &str| RagError::Unsupported {
        document: name.into(),
        reason: reason.into(),
    };
    if bytes.starts_with(b"%PDF") {
        return Err(refuse("the content is a PDF"));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(refuse(
            "the content is a ZIP container (a DOCX, ODT, XLSX or similar)",
        ));
    }
    if bytes.contains(&0) {
        return Err(refuse("the content is binary, not text"));
    }
    let text = String::from_utf8(bytes).map_err(|e| RagError::Unsupported {
        document: name.into(),
        reason: format!(
            "the content is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    let text = match format {
        Format::Text | Format::Markdown => text,
        Format::Html => html::visible_text(&text),
    };
    Ok(Document {
        name: name.into(),
        text,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats_by_extension_and_media_type() {
        assert_eq!(Format::from_path("a/b/notes.TXT").unwrap(), Format::Text);
        assert_eq!(Format::from_path("x.md").unwrap(), Format::Markdown);
        assert_eq!(Format::from_path("page.htm").unwrap(), Format::Html);
        for bad in ["report.pdf", "memo.docx", "README", ".hidden", "t.csv"] {
            let e = Format::from_path(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
            assert!(e.contains("supported: plain text"), "{e}");
        }
        assert!(Format::from_path("report.pdf")
            .unwrap_err()
            .to_string()
            .contains("PDF"));
        assert_eq!(
            Format::from_media_type("text/html; charset=utf-8"),
            Some(Format::Html)
        );
        assert_eq!(Format::from_media_type("application/pdf"), None);
    }

    #[test]
    fn content_that_is_not_text_is_refused_whatever_its_name() {
        let e = read("a.txt", Format::Text, b"%PDF-1.7\n...".to_vec()).unwrap_err();
        assert!(e.to_string().contains("PDF"), "{e}");
        let e = read("a.txt", Format::Text, b"PK\x03\x04rest".to_vec()).unwrap_err();
        assert!(e.to_string().contains("ZIP"), "{e}");
        let e = read("a.txt", Format::Text, vec![b'a', 0, b'b']).unwrap_err();
        assert!(e.to_string().contains("binary"), "{e}");
        let e = read("a.txt", Format::Text, vec![b'a', 0xff, b'b']).unwrap_err();
        assert!(e.to_string().contains("offset 1"), "{e}");
        let d = read("a.md", Format::Markdown, b"# T\n\nbody".to_vec()).unwrap();
        assert_eq!(d.text, "# T\n\nbody");
        assert_eq!(format!("{d:?}"), "Document(9 bytes)");
    }
}
