//! Text statistics: line, word and character counts and the ten most frequent words, as JSON.
//! A small second job kind that shows how an executor plugs in.

use std::collections::HashMap;

use cdvm_protocol::{kinds, InputBody};
use serde::Serialize;

use super::{input_type, ExecError, Executor, Output};

/// The text statistics executor.
#[derive(Debug)]
pub struct TextStats;

#[derive(Serialize)]
struct Stats {
    lines: usize,
    words: usize,
    chars: usize,
    top_words: Vec<(String, usize)>,
}

impl Executor for TextStats {
    fn kind(&self) -> u16 {
        kinds::TEXT_STATS
    }

    fn run(&self, input: &InputBody) -> Result<Output, ExecError> {
        let InputBody::TextStats { text } = input else {
            return Err(ExecError::WrongInput {
                kind: self.kind(),
                got: input_type(input),
            });
        };
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut words = 0;
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            words += 1;
            *counts.entry(w.to_lowercase()).or_default() += 1;
        }
        let mut top: Vec<(String, usize)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        let stats = Stats {
            lines: text.lines().count(),
            words,
            chars: text.chars().count(),
            top_words: top,
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
        let out = TextStats
            .run(&InputBody::TextStats {
                text: "the cat\nThe dog, the end".into(),
            })
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out.body).unwrap();
        assert_eq!(v["lines"], 2);
        assert_eq!(v["words"], 6);
        assert_eq!(v["top_words"][0], serde_json::json!(["the", 3]));
    }
}
