//! The subset of Compute Engine's list filter language the emulator understands: comparisons
//! `FIELD = VALUE`, `FIELD != VALUE`, `FIELD : VALUE` (VALUE bare or double-quoted, FIELD a dotted
//! path such as `labels.owner` or `status`), each optionally in parentheses, joined by `AND` or
//! by juxtaposition (both mean AND in GCE).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Has,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    path: Vec<String>,
    op: Op,
    value: String,
}

/// A parsed filter; the empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    terms: Vec<Term>,
}

impl Filter {
    /// Parses `text`; `Err` says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let mut terms = Vec::new();
        loop {
            p.skip_ws();
            if p.done() {
                break;
            }
            if !terms.is_empty() && p.keyword("AND") {
                p.skip_ws();
            }
            let open = p.eat(b'(');
            p.skip_ws();
            let field = p.field()?;
            p.skip_ws();
            let op = p.op()?;
            p.skip_ws();
            let value = p.value()?;
            p.skip_ws();
            if open && !p.eat(b')') {
                return Err(format!("missing ')' at offset {}", p.i));
            }
            terms.push(Term {
                path: field.split('.').map(str::to_string).collect(),
                op,
                value,
            });
        }
        Ok(Self { terms })
    }

    /// Whether the resource (as the API renders it) passes every comparison.
    pub(crate) fn matches(&self, resource: &Value) -> bool {
        self.terms.iter().all(|t| {
            let found = t
                .path
                .iter()
                .try_fold(resource, |v, key| v.get(key))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            match t.op {
                Op::Eq => found.as_deref() == Some(t.value.as_str()),
                Op::Ne => found.as_deref() != Some(t.value.as_str()),
                Op::Has => found.is_some_and(|f| t.value == "*" || f.contains(&t.value)),
            }
        })
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        let end = self.i + word.len();
        let followed_by_space = self.s.get(end).is_some_and(|c| c.is_ascii_whitespace());
        if self.s.get(self.i..end) == Some(word.as_bytes()) && followed_by_space {
            self.i = end;
            true
        } else {
            false
        }
    }

    fn field(&mut self) -> Result<String, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a field name at offset {start}"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn op(&mut self) -> Result<Op, String> {
        if self.eat(b'=') {
            Ok(Op::Eq)
        } else if self.eat(b':') {
            Ok(Op::Has)
        } else if self.eat(b'!') && self.eat(b'=') {
            Ok(Op::Ne)
        } else {
            Err(format!("expected '=', '!=' or ':' at offset {}", self.i))
        }
    }

    fn value(&mut self) -> Result<String, String> {
        if self.eat(b'"') {
            let mut out = Vec::new();
            loop {
                match self.peek() {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        self.i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        out.extend(self.peek());
                        self.i += 1;
                    }
                    Some(c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| !c.is_ascii_whitespace() && c != b')')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a value at offset {start}"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_filters_in_both_spellings() {
        let vm = json!({"name": "a", "status": "RUNNING", "labels": {"owner": "x-1", "job": "j"}});
        for f in [
            r#"labels.owner = "x-1""#,
            "labels.owner=x-1",
            r#"(labels.owner = "x-1") (labels.job = "j")"#,
            r#"labels.owner = "x-1" AND status != TERMINATED"#,
            "labels.owner:*",
            "",
        ] {
            assert!(Filter::parse(f).expect(f).matches(&vm), "{f}");
        }
        for f in [
            "labels.owner = x-2",
            "labels.other = x-1",
            "status = STOPPED",
        ] {
            assert!(!Filter::parse(f).expect(f).matches(&vm), "{f}");
        }
        for bad in [
            "labels.owner",
            "= x",
            "(labels.owner = x",
            r#"labels.owner = "x"#,
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
