//! A RAG job's input, checked on this machine with the guest's own document rules
//! ([`cdvm_rag::document::Format`]) before anything is published or uploaded: a document the guest
//! would refuse is refused here, while it is still only on the user's disk.

use std::path::Path;

use cdvm_protocol::rag::{check_question, RagParams};
use cdvm_protocol::{
    ConfidentialInput, Data, InputBody, ProtocolError, MAX_INPUT_PLAINTEXT, MAX_INPUT_RUMOR,
};
use cdvm_rag::document::{Format, MAX_DOCUMENTS};

use crate::blob::{Source, TAR};
use crate::ClientError;

/// Room in the input rumor for its envelope (id, author, date, kind, the `e` tag: about 260
/// bytes, docs/protocol.md §5.5), with a margin.
const RUMOR_ENVELOPE: usize = 512;

/// The question, parameters and documents of a kind-5050 job, every one checked.
pub struct RagRequest {
    source: Source,
    /// The single document's name and media type; `None` for a folder, whose files are named by
    /// their paths inside the tar.
    single: Option<(String, &'static str)>,
    /// The documents' names as the guest will see them (a folder's relative paths), sorted.
    names: Vec<String>,
    question: String,
    params: RagParams,
}

impl std::fmt::Debug for RagRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the question or the documents' names: debug output may reach a log.
        write!(
            f,
            "RagRequest {{ documents: {}, question: <{} bytes> }}",
            self.names.len(),
            self.question.len()
        )
    }
}

impl RagRequest {
    /// Checks the question, the parameters and the documents at `path` (a file, or a folder sent
    /// as a tar): every file must be in a format the guest reads, judged by its name as the guest
    /// judges it. Every refusal is a [`ClientError::Usage`] (exit 2) naming what to change.
    pub fn new(path: &Path, question: String, params: RagParams) -> Result<Self, ClientError> {
        check_question(&question).map_err(|e| ClientError::Usage(flag_error("question", e)))?;
        params.check().map_err(|e| {
            let mut message = flag_error("", e);
            if message.starts_with("--overlap-words") {
                message.push_str(" (give --overlap-words below --chunk-words)");
            }
            ClientError::Usage(message)
        })?;
        let source = Source::from_path(path)?;
        let (single, names) = match &source {
            Source::File(file) => {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| {
                        ClientError::Usage(format!(
                            "--input {}: the file name is not UTF-8 text",
                            file.display()
                        ))
                    })?
                    .to_owned();
                let format = format_of(&name)?;
                (Some((name.clone(), format.media_type())), vec![name])
            }
            Source::Folder(dir) => {
                let names = files_in(dir)?;
                if names.is_empty() {
                    return Err(ClientError::Usage(format!(
                        "--input {}: the folder holds no documents",
                        dir.display()
                    )));
                }
                if names.len() > MAX_DOCUMENTS {
                    return Err(ClientError::Usage(format!(
                        "--input {}: {} documents; a job reads at most {MAX_DOCUMENTS}",
                        dir.display(),
                        names.len()
                    )));
                }
                for name in &names {
                    format_of(name)?;
                }
                (None, names)
            }
        };
        Ok(Self {
            source,
            single,
            names,
            question,
            params,
        })
    }

    /// Where the documents' bytes come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The documents' names as the guest will see and cite them, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parameters sent.
    pub fn params(&self) -> &RagParams {
        &self.params
    }

    /// The blob's `file-type`: the single document's media type, or a tar for a folder.
    pub fn file_type(&self) -> &'static str {
        match &self.single {
            Some((_, media_type)) => media_type,
            None => TAR,
        }
    }

    /// The input body around `documents` (inline text, or the uploaded blob's reference).
    pub fn body(&self, documents: Data) -> InputBody {
        let (name, media_type) = match &self.single {
            Some((name, media_type)) => (Some(name.clone()), Some((*media_type).to_owned())),
            None => (None, None),
        };
        InputBody::Rag {
            documents,
            name,
            media_type,
            question: self.question.clone(),
            params: self.params.clone(),
        }
    }

    /// Whether a single document's `text` goes inline: the whole input (question, parameters,
    /// the result servers `servers` included) within [`MAX_INPUT_PLAINTEXT`], and its rumor,
    /// where the JSON is escaped once more, within [`MAX_INPUT_RUMOR`]. Measured, not estimated:
    /// a question may take 8 KiB, and quotes in the text double when escaped.
    pub fn fits_inline(&self, text: &str, servers: &[String]) -> bool {
        if self.single.is_none() {
            // A folder always goes as a tar blob: the guest reads an inline input as one document.
            return false;
        }
        let probe = ConfidentialInput {
            v: 1,
            request_id: "0".repeat(64),
            body: self.body(Data::Inline(text.to_owned())),
            blossom: servers.to_vec(),
        };
        let Ok(json) = serde_json::to_string(&probe) else {
            return false;
        };
        let Ok(escaped) = serde_json::to_string(&json) else {
            return false;
        };
        json.len() <= MAX_INPUT_PLAINTEXT && escaped.len() + RUMOR_ENVELOPE <= MAX_INPUT_RUMOR
    }
}

/// A document's format by its name, refused with the guest's own message.
fn format_of(name: &str) -> Result<Format, ClientError> {
    Format::from_path(name).map_err(|e| ClientError::Usage(e.to_string()))
}

/// A field's error as the flag that sets it: `invalid `chunk_words`: 8; 16 to 200` becomes
/// `--chunk-words: 8; 16 to 200`. `field` names the flag when the error does not.
fn flag_error(field: &str, e: ProtocolError) -> String {
    match e {
        ProtocolError::InvalidField { field: f, reason } => {
            format!("--{}: {reason}", f.replace('_', "-"))
        }
        other if !field.is_empty() => format!("--{field}: {other}"),
        other => other.to_string(),
    }
}

/// The regular files under `dir`, as `/`-separated paths relative to it (the names the tar
/// gives them, [`cdvm_blob::tarball::pack_dir`]), sorted as the tar sorts them. Links and special
/// files are refused here, as packing would refuse them, so the message comes before any upload.
fn files_in(dir: &Path) -> Result<Vec<String>, ClientError> {
    let io = |path: &Path, source| ClientError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&abs).map_err(|e| io(&abs, e))? {
            let entry = entry.map_err(|e| io(&abs, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(ClientError::Usage(format!(
                    "--input {}: {} has a name that is not UTF-8 text",
                    dir.display(),
                    entry.path().display()
                )));
            };
            let child = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            // `symlink_metadata`: a link is itself, never what it points to.
            let file_type = std::fs::symlink_metadata(entry.path())
                .map_err(|e| io(&entry.path(), e))?
                .file_type();
            if file_type.is_file() {
                files.push(child);
            } else if file_type.is_dir() {
                stack.push((entry.path(), child));
            } else {
                return Err(ClientError::Usage(format!(
                    "--input {}: {child} is not a regular file or folder (a link?); only files and folders are sent",
                    dir.display()
                )));
            }
        }
    }
    files.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn request(path: &Path) -> Result<RagRequest, ClientError> {
        RagRequest::new(
            path,
            "What is the notice period?".into(),
            RagParams::default(),
        )
    }

    #[test]
    fn a_folder_is_checked_and_goes_as_a_tar_of_the_checked_names() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "contracts/acme.md",
            "# Acme\n\nNotice: 30 days.",
        );
        write(dir.path(), "contracts/old/globex.TXT", "Notice: 60 days.");
        write(dir.path(), "index.html", "<p>Contracts</p>");
        let r = request(dir.path()).unwrap();
        assert!(matches!(r.source(), Source::Folder(_)));
        assert_eq!(r.file_type(), TAR);
        assert_eq!(
            r.names(),
            [
                "contracts/acme.md",
                "contracts/old/globex.TXT",
                "index.html"
            ]
        );
        // The tar carries exactly the files checked, under the names checked.
        let mut tar = Vec::new();
        cdvm_blob::tarball::pack_dir(dir.path(), &mut tar).unwrap();
        let mut packed = Vec::new();
        cdvm_blob::tarball::for_each_file(
            &tar[..],
            &Default::default(),
            |name, _| -> Result<(), std::convert::Infallible> {
                packed.push(name.to_owned());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(packed, r.names());
        // Never inline, and the body names no single document.
        assert!(!r.fits_inline("tiny", &[]));
        match &r.body(Data::Inline(String::new())) {
            InputBody::Rag {
                name, media_type, ..
            } => assert_eq!((name, media_type), (&None, &None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unsupported_file_in_a_folder_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.md", "fine");
        write(dir.path(), "sub/report.pdf", "%PDF-1.7");
        let e = request(dir.path()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(m.contains("sub/report.pdf"), "{m}");
        assert!(m.contains("PDF"), "{m}");
        assert!(m.contains("supported: plain text"), "{m}");
        // A file without an extension (a stray .DS_Store too) is refused the same way.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "notes.txt", "fine");
        write(dir.path(), ".DS_Store", "x");
        assert!(request(dir.path())
            .unwrap_err()
            .to_string()
            .contains(".DS_Store"));
    }

    #[test]
    fn empty_folders_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let e = request(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no documents"), "{e}");
        write(dir.path(), "a.txt", "fine");
        std::os::unix::fs::symlink(dir.path().join("a.txt"), dir.path().join("b.txt")).unwrap();
        let e = request(dir.path()).unwrap_err();
        assert!(e.to_string().contains("b.txt"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_single_file_carries_its_name_and_media_type() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Handbook.markdown", "# Leave\n\n25 days.");
        let r = request(&dir.path().join("Handbook.markdown")).unwrap();
        assert_eq!(r.file_type(), "text/markdown");
        assert!(r.fits_inline("# Leave\n\n25 days.", &[]));
        match &r.body(Data::Inline("text".into())) {
            InputBody::Rag {
                name,
                media_type,
                question,
                params,
                ..
            } => {
                assert_eq!(name.as_deref(), Some("Handbook.markdown"));
                assert_eq!(media_type.as_deref(), Some("text/markdown"));
                assert_eq!(question, "What is the notice period?");
                assert_eq!(params, &RagParams::default());
            }
            other => panic!("{other:?}"),
        }
        // The same file with an unsupported extension is refused, as in a folder.
        write(dir.path(), "memo.docx", "PK");
        let e = request(&dir.path().join("memo.docx")).unwrap_err();
        assert!(e.to_string().contains("memo.docx"), "{e}");
        assert!(e.to_string().contains("word-processor"), "{e}");
    }

    #[test]
    fn inline_is_measured_with_the_question_and_escaping() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.txt", "x");
        let short = request(&dir.path().join("a.txt")).unwrap();
        let text = "y".repeat(20_000);
        assert!(short.fits_inline(&text, &[]));
        // An 8 KiB question leaves no room for the same text.
        let long = RagRequest::new(
            &dir.path().join("a.txt"),
            "q".repeat(8 * 1024),
            RagParams::default(),
        )
        .unwrap();
        assert!(!long.fits_inline(&text, &[]));
        // 10 000 quotes take 20 000 bytes of input JSON, which fits, but are escaped once more
        // in the rumor (40 000 bytes), which does not.
        let quotes = "\"".repeat(10_000);
        let input = serde_json::to_string(&short.body(Data::Inline(quotes.clone()))).unwrap();
        assert!(input.len() < MAX_INPUT_PLAINTEXT);
        assert!(!short.fits_inline(&quotes, &[]));
    }

    #[test]
    fn questions_and_parameters_are_refused_by_their_flag() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.txt", "x");
        let path = dir.path().join("a.txt");
        let e = RagRequest::new(&path, "  ".into(), RagParams::default()).unwrap_err();
        assert_eq!(e.to_string(), "--question: empty");
        let params = RagParams {
            chunk_words: 8,
            ..RagParams::default()
        };
        let e = RagRequest::new(&path, "q?".into(), params).unwrap_err();
        assert_eq!(e.to_string(), "--chunk-words: 8; 16 to 200");
        let params = RagParams {
            chunk_words: 20,
            ..RagParams::default()
        };
        let e = RagRequest::new(&path, "q?".into(), params).unwrap_err();
        assert!(e.to_string().starts_with("--overlap-words: 24;"), "{e}");
        assert!(e.to_string().contains("below --chunk-words"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
