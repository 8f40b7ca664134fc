//! The RAG job's result: a [`RagAnswer`] as JSON, read, shown to a person, or saved.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use cdvm_protocol::rag::{Finish, RagAnswer};
use cdvm_protocol::ProtocolError;

use super::partial::printable;
use crate::ClientError;

/// Characters of a cited passage shown under its citation.
pub const EXCERPT_CHARS: usize = 160;

/// Reads the result's output as a [`RagAnswer`]; anything else is an unreadable result.
pub fn parse_answer(media_type: &str, output: &str) -> Result<RagAnswer, ClientError> {
    serde_json::from_str(output).map_err(|source| {
        ClientError::BadResult(ProtocolError::Json {
            what: if media_type == "application/json" {
                "the result is not a RAG answer"
            } else {
                "the result is not a RAG answer (nor application/json)"
            },
            source,
        })
    })
}

/// The answer for a person: the text, then its citations (document, chunk, similarity and the
/// passage's start on one line), the models and the counts.
pub fn render_answer(a: &RagAnswer) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "{}", printable(a.answer.trim_end()));
    if a.finish == Finish::Length {
        let _ = writeln!(
            out,
            "[the answer stopped at the token limit; --max-tokens allows a longer one]"
        );
    }
    out.push('\n');
    if a.citations.is_empty() {
        out.push_str("Citations: none\n");
    } else {
        out.push_str("Citations:\n");
    }
    for (n, c) in a.citations.iter().enumerate() {
        let _ = writeln!(
            out,
            "[{}] {} chunk {}  similarity {:.3}",
            n + 1,
            printable(&c.document),
            c.chunk,
            c.similarity
        );
        let _ = writeln!(out, "    {}", excerpt(&c.text));
    }
    let _ = writeln!(out, "model: {} sha256:{}", a.model.name, a.model.sha256);
    let _ = writeln!(
        out,
        "embedder: {} sha256:{}",
        a.embedder.name, a.embedder.sha256
    );
    let u = a.usage;
    let _ = writeln!(
        out,
        "usage: {} prompt tokens, {} completion tokens; {} chunks from {} document(s)",
        u.prompt_tokens, u.completion_tokens, u.chunks, u.documents
    );
    printable(&out)
}

/// The passage on one line: whitespace runs as one space, at most [`EXCERPT_CHARS`] characters,
/// `…` when cut.
fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = printable(&words.join(" "));
    match line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Writes the answer as pretty JSON to `path`, atomically: into `<path>.partial` beside it, then
/// renamed, so `path` never holds half an answer.
pub fn write_answer_json(path: &Path, answer: &RagAnswer) -> Result<(), ClientError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let io = |p: &Path, source| ClientError::Io {
        path: p.display().to_string(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(answer).map_err(|source| {
        ClientError::Protocol(ProtocolError::Json {
            what: "RAG answer",
            source,
        })
    })?;
    json.push(b'\n');
    let written = std::fs::File::create(&partial).and_then(|mut f| {
        f.write_all(&json)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(io(&partial, e));
    }
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        io(path, e)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cdvm_protocol::rag::{Citation, ModelRef, Usage};

    fn answer() -> RagAnswer {
        RagAnswer {
            answer: "The notice period is 30 days [1].\n".into(),
            citations: vec![
                Citation {
                    document: "contracts/acme.md".into(),
                    chunk: 3,
                    similarity: 0.81234,
                    text: "# Notice\n\nEither party may end this agreement with thirty (30) days' written notice to the other party, delivered by registered mail or by e-mail with confirmation of receipt; notice runs from receipt.".into(),
                },
                Citation {
                    document: "handbook.txt".into(),
                    chunk: 0,
                    similarity: 0.4,
                    text: "Short\tpassage.".into(),
                },
            ],
            model: ModelRef {
                name: "qwen2.5-0.5b-instruct-q4_k_m".into(),
                sha256: "ab".repeat(32),
            },
            embedder: ModelRef {
                name: "all-minilm-l6-v2-f16".into(),
                sha256: "cd".repeat(32),
            },
            usage: Usage {
                documents: 2,
                chunks: 14,
                prompt_tokens: 812,
                completion_tokens: 11,
            },
            finish: Finish::Stop,
        }
    }

    #[test]
    fn golden_rendering() {
        let expected = format!(
            "The notice period is 30 days [1].

Citations:
[1] contracts/acme.md chunk 3  similarity 0.812
    # Notice Either party may end this agreement with thirty (30) days' written notice to the other party, delivered by registered mail or by e-mail with confirmati…
[2] handbook.txt chunk 0  similarity 0.400
    Short passage.
model: qwen2.5-0.5b-instruct-q4_k_m sha256:{}
embedder: all-minilm-l6-v2-f16 sha256:{}
usage: 812 prompt tokens, 11 completion tokens; 14 chunks from 2 document(s)
",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        assert_eq!(render_answer(&answer()), expected);
    }

    #[test]
    fn a_cut_answer_and_no_citations_say_so() {
        let a = RagAnswer {
            citations: vec![],
            finish: Finish::Length,
            answer: "The notice \u{1b}[31mperiod".into(),
            ..answer()
        };
        let text = render_answer(&a);
        assert!(text.starts_with(
            "The notice [31mperiod\n[the answer stopped at the token limit; --max-tokens allows a longer one]\n\nCitations: none\nmodel: "
        ), "{text}");
    }

    #[test]
    fn excerpts_cut_on_characters() {
        let long = "é".repeat(EXCERPT_CHARS + 5);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(
            excerpt(&"é".repeat(EXCERPT_CHARS)),
            "é".repeat(EXCERPT_CHARS)
        );
    }

    #[test]
    fn parse_round_trip_and_refusal() {
        let a = answer();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(parse_answer("application/json", &json).unwrap(), a);
        let e = parse_answer("text/csv", "dept,avg\nx,1\n").unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("not a RAG answer"), "{e}");
        // Strict: an unknown field is not silently dropped.
        let extra = json.replacen('{', r#"{"extra":1,"#, 1);
        assert!(parse_answer("application/json", &extra).is_err());
    }

    #[test]
    fn the_json_file_is_written_whole_and_pretty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answer.json");
        std::fs::write(&path, "old").unwrap();
        write_answer_json(&path, &answer()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"answer\": "), "{text}");
        assert_eq!(serde_json::from_str::<RagAnswer>(&text).unwrap(), answer());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no .partial left behind");
        // A folder that does not exist: an error naming the file, nothing written.
        let e = write_answer_json(&dir.path().join("no/such/answer.json"), &answer()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("answer.json.partial"), "{e}");
    }
}
