//! Text statistics: line, word and character counts and the ten most frequent words, as JSON.
//! A small second job kind that shows how an executor plugs in.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use cdvm_protocol::{kinds, InputBody};
use serde::Serialize;

use super::{input_type, media, DataSource, ExecError, Executor, Output};

/// The text statistics executor.
#[derive(Debug)]
pub struct TextStats;

#[derive(Serialize)]
struct Stats {
    lines: usize,
    words: usize,
    chars: usize,
    top_words: Vec<(String, usize)>,
    /// Files read, for a folder input.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<usize>,
}

/// Running counts over the text, fed line by line.
#[derive(Default)]
struct Counter {
    lines: usize,
    words: usize,
    chars: usize,
    counts: HashMap<String, usize>,
}

impl Counter {
    /// Reads `text` to its end; `what` names it in errors (a file of a folder).
    fn read(&mut self, text: &mut dyn Read, what: &str) -> Result<(), ExecError> {
        let mut reader = BufReader::with_capacity(64 * 1024, text);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => self.line(&line),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData && e.get_ref().is_none() => {
                    return Err(ExecError::BadInput(format!("{what} is not UTF-8 text")))
                }
                Err(e) => return Err(super::read_error(e)),
            }
        }
    }

    fn line(&mut self, line: &str) {
        self.lines += 1;
        self.chars += line.chars().count();
        for w in line
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            self.words += 1;
            *self.counts.entry(w.to_lowercase()).or_default() += 1;
        }
    }
}

impl Executor for TextStats {
    fn kind(&self) -> u16 {
        kinds::TEXT_STATS
    }

    fn run(
        &self,
        input: &InputBody,
        data: DataSource<'_>,
        _partial: &super::Partial,
    ) -> Result<Output, ExecError> {
        let InputBody::TextStats { .. } = input else {
            return Err(ExecError::WrongInput {
                kind: self.kind(),
                got: input_type(input),
            });
        };
        let DataSource {
            file_type,
            mut reader,
        } = data;
        let mut c = Counter::default();
        let mut files = None;
        match file_type.as_str() {
            media::TEXT | media::MARKDOWN | media::CSV => c.read(&mut reader, "the input")?,
            media::TAR => {
                let mut n = 0usize;
                super::for_each_file(&mut reader, |path, file| {
                    n += 1;
                    c.read(file, &format!("`{path}`"))
                })?;
                files = Some(n);
            }
            other => {
                return Err(ExecError::BadInput(format!(
                    "file-type `{other}` is not supported for text statistics (use {}, {} or {})",
                    media::TEXT,
                    media::MARKDOWN,
                    media::TAR
                )))
            }
        }
        let mut top: Vec<(String, usize)> = c.counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        let stats = Stats {
            lines: c.lines,
            words: c.words,
            chars: c.chars,
            top_words: top,
            files,
        };
        let body = serde_json::to_string(&stats).map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(Output {
            media_type: "application/json",
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_and_ranks() {
        let out = super::super::run_inline(
            &TextStats,
            &InputBody::TextStats {
                text: "the cat\nThe dog, the end".into(),
            },
            &super::super::Partial::none(),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out.body).unwrap();
        assert_eq!(v["lines"], 2);
        assert_eq!(v["words"], 6);
        assert_eq!(v["top_words"][0], serde_json::json!(["the", 3]));
    }
}
