//! The prompt: fixed instructions, the retrieved passages numbered in rank order, the question;
//! rendered with the model's own chat template and cut to the context the answer leaves free.

use crate::engine::{Generator, Message, Role};
use crate::error::RagError;

/// The instructions. Short, because a small model follows short instructions best, and fixed,
/// because the golden test pins the whole prompt.
pub const SYSTEM: &str =
    "Answer the user's question in one or two sentences, using only the passages the user gives. \
Copy names, numbers and amounts exactly as written. \
If the passages do not contain the answer, say that you do not know.";

/// One retrieved passage as the prompt shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passage<'a> {
    /// The document's name.
    pub document: &'a str,
    /// The passage text.
    pub text: &'a str,
}

/// The chat for `question` over `passages` (most relevant first).
pub fn messages(question: &str, passages: &[Passage<'_>]) -> Vec<Message> {
    let mut user = String::new();
    if passages.is_empty() {
        user.push_str("(No passages.)\n\n");
    } else {
        user.push_str("Passages:\n\n");
        for (i, p) in passages.iter().enumerate() {
            user.push_str(&format!(
                "[{}] From \"{}\":\n{}\n\n",
                i + 1,
                p.document,
                p.text.trim()
            ));
        }
    }
    user.push_str("Question: ");
    user.push_str(question.trim());
    vec![
        Message {
            role: Role::System,
            content: SYSTEM.into(),
        },
        Message {
            role: Role::User,
            content: user,
        },
    ]
}

/// The rendered prompt with as many of `ranked` passages as fit in the context after
/// `max_tokens` are set aside for the answer: (prompt, passages used, prompt tokens).
pub fn fit(
    generator: &dyn Generator,
    question: &str,
    ranked: &[Passage<'_>],
    max_tokens: usize,
) -> Result<(String, usize, usize), RagError> {
    let context = generator.context_tokens();
    let budget = context.saturating_sub(max_tokens);
    let render = |n: usize| -> Result<(String, usize), RagError> {
        let prompt = generator.chat_prompt(&messages(question, &ranked[..n]))?;
        let tokens = generator.count_tokens(&prompt)?;
        Ok((prompt, tokens))
    };
    let (mut best, mut best_tokens) = render(0)?;
    if best_tokens > budget {
        return Err(RagError::QuestionTooLong {
            question_tokens: best_tokens,
            max_tokens,
            context,
        });
    }
    let mut used = 0;
    // Passages go in by rank; the first that does not fit ends the list (a lower-ranked shorter
    // one is not squeezed in: the order of relevance is what the model is told).
    for n in 1..=ranked.len() {
        let (prompt, tokens) = render(n)?;
        if tokens > budget {
            break;
        }
        (best, best_tokens, used) = (prompt, tokens, n);
    }
    Ok((best, used, best_tokens))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::engine::{GenParams, Generation};
    use cdvm_protocol::rag::ModelRef;

    /// A generator whose template joins messages and whose tokens are bytes.
    struct Bytes {
        model: ModelRef,
        context: usize,
    }

    impl Generator for Bytes {
        fn model(&self) -> &ModelRef {
            &self.model
        }
        fn context_tokens(&self) -> usize {
            self.context
        }
        fn chat_prompt(&self, m: &[Message]) -> Result<String, RagError> {
            Ok(m.iter()
                .map(|m| format!("<{}>{}", m.role.as_str(), m.content))
                .collect())
        }
        fn count_tokens(&self, prompt: &str) -> Result<usize, RagError> {
            Ok(prompt.len())
        }
        fn generate(
            &mut self,
            _: &str,
            _: &GenParams,
            _: &mut dyn FnMut(&str) -> bool,
        ) -> Result<Generation, RagError> {
            Err(RagError::Engine("not used".into()))
        }
    }

    fn bytes(context: usize) -> Bytes {
        Bytes {
            model: ModelRef {
                name: "bytes".into(),
                sha256: "00".repeat(32),
            },
            context,
        }
    }

    #[test]
    fn passages_are_numbered_in_rank_order() {
        let m = messages(
            " Q? ",
            &[
                Passage {
                    document: "a.txt",
                    text: " first ",
                },
                Passage {
                    document: "b.md",
                    text: "second",
                },
            ],
        );
        assert_eq!(m[0].content, SYSTEM);
        assert_eq!(
            m[1].content,
            "Passages:\n\n[1] From \"a.txt\":\nfirst\n\n[2] From \"b.md\":\nsecond\n\nQuestion: Q?"
        );
    }

    #[test]
    fn passages_stop_at_the_first_that_does_not_fit() {
        let ranked = [
            Passage {
                document: "a",
                text: &"x".repeat(100),
            },
            Passage {
                document: "b",
                text: &"y".repeat(400),
            },
            Passage {
                document: "c",
                text: "z",
            },
        ];
        let g = bytes(0);
        let base = g
            .count_tokens(&g.chat_prompt(&messages("q", &[])).unwrap())
            .unwrap();
        let one = g
            .count_tokens(&g.chat_prompt(&messages("q", &ranked[..1])).unwrap())
            .unwrap();
        // Room for the first passage only (plus the 50-token answer budget).
        let g = bytes(one + 50 + 10);
        let (prompt, used, tokens) = fit(&g, "q", &ranked, 50).unwrap();
        assert_eq!(used, 1);
        assert_eq!(tokens, one);
        assert!(prompt.contains("xxx") && !prompt.contains('z'));
        // No room for the question itself: a clear error, with the numbers.
        let g = bytes(base + 49);
        match fit(&g, "q", &ranked, 50) {
            Err(RagError::QuestionTooLong {
                question_tokens,
                max_tokens: 50,
                context,
            }) => {
                assert_eq!(question_tokens, base);
                assert_eq!(context, base + 49);
            }
            other => panic!("{other:?}"),
        }
    }
}
