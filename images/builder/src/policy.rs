//! Generates `policies/image-snp.yaml`: the shipped SEV-SNP policy (`policies/default-snp.yaml`)
//! with the image's launch digests pinned as its allowed measurements.
//!
//! The generator edits the base policy's text instead of re-serialising it, so that the roots,
//! TCB floors, guest-policy rules and their comments stay exactly as reviewed there: it replaces
//! the file's leading comment block, the `name:` line, and the `measurements: []` line (with the
//! comment block just above it), and copies every other line.

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum PolicyGenError {
    /// The base policy lacks a line the generator replaces, or has it twice.
    #[error("base policy: expected exactly one top-level `{0}` line")]
    Shape(&'static str),
    /// A measurement that is not 96 lowercase hex characters.
    #[error("measurement {0:?} is not 96 lowercase hex characters")]
    BadMeasurement(String),
}

/// One allowed measurement with its provenance note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// 96 hex characters.
    pub measurement: String,
    /// Where it came from (goes into the policy's `source`).
    pub source: String,
}

/// The policy text: `base` with `name` and `measurements` replaced, and `header` (one or more
/// lines, written as `#` comments) at the top.
pub fn image_policy(
    base: &str,
    name: &str,
    header: &str,
    measurements: &[Pinned],
) -> Result<String, PolicyGenError> {
    for m in measurements {
        let ok = m.measurement.len() == 96
            && m.measurement
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(PolicyGenError::BadMeasurement(m.measurement.clone()));
        }
    }
    let lines: Vec<&str> = base.lines().collect();
    let only = |pred: &dyn Fn(&str) -> bool, what: &'static str| {
        let hits: Vec<usize> = (0..lines.len()).filter(|&i| pred(lines[i])).collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            _ => Err(PolicyGenError::Shape(what)),
        }
    };
    let name_line = only(&|l: &str| l.starts_with("name:"), "name:")?;
    let meas_line = only(
        &|l: &str| l.starts_with("measurements:"),
        "measurements: []",
    )?;
    if lines[meas_line].trim_end() != "measurements: []" {
        return Err(PolicyGenError::Shape("measurements: []"));
    }
    let is_comment = |l: &str| l.trim_start().starts_with('#');
    // The leading comment block describes the base policy; ours replaces it.
    let body_start = lines.iter().position(|l| !is_comment(l)).unwrap_or(0);
    // The comment block just above `measurements: []` explains the empty list.
    let mut meas_comment = meas_line;
    while meas_comment > body_start && is_comment(lines[meas_comment - 1]) {
        meas_comment -= 1;
    }

    let mut out = String::new();
    for h in header.lines() {
        if h.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(h);
            out.push('\n');
        }
    }
    for (i, line) in lines.iter().enumerate().skip(body_start) {
        if i == name_line {
            out.push_str("name: ");
            out.push_str(&yaml_string(name));
            out.push('\n');
        } else if i >= meas_comment && i < meas_line {
            continue;
        } else if i == meas_line {
            out.push_str(
                "# Allowed launch measurements: the image's expected SEV-SNP launch digests \
                 (cdvm-image build),\n# one per vCPU model and count the provider launches.\n",
            );
            if measurements.is_empty() {
                out.push_str("measurements: []\n");
            } else {
                out.push_str("measurements:\n");
                for m in measurements {
                    out.push_str("  - measurement: ");
                    out.push_str(&m.measurement);
                    out.push_str("\n    source: ");
                    out.push_str(&yaml_string(&m.source));
                    out.push('\n');
                }
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A double-quoted YAML scalar (JSON string syntax is valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# base header\n# more\nname: base\ntee: sev-snp\n\n# why empty\n# still why\nmeasurements: []\n\n# keep me\nmax_vmpl: 0\n";

    #[test]
    fn replaces_only_what_it_should() {
        let m = Pinned {
            measurement: "ab".repeat(48),
            source: "a \"quoted\" note: with colon".into(),
        };
        let out = image_policy(BASE, "image", "GENERATED\n\nline two", &[m]).expect("gen");
        assert_eq!(
            out,
            format!(
                "# GENERATED\n#\n# line two\nname: \"image\"\ntee: sev-snp\n\n# Allowed launch measurements: the image's expected SEV-SNP launch digests (cdvm-image build),\n# one per vCPU model and count the provider launches.\nmeasurements:\n  - measurement: {}\n    source: \"a \\\"quoted\\\" note: with colon\"\n\n# keep me\nmax_vmpl: 0\n",
                "ab".repeat(48)
            )
        );
    }

    #[test]
    fn refuses_unexpected_shapes() {
        assert!(matches!(
            image_policy(
                "name: x\nmeasurements:\n  - measurement: aa\n",
                "n",
                "h",
                &[]
            ),
            Err(PolicyGenError::Shape(_))
        ));
        assert!(matches!(
            image_policy("tee: sev-snp\nmeasurements: []\n", "n", "h", &[]),
            Err(PolicyGenError::Shape("name:"))
        ));
        let bad = Pinned {
            measurement: "AB".repeat(48),
            source: String::new(),
        };
        assert!(matches!(
            image_policy(BASE, "n", "h", &[bad]),
            Err(PolicyGenError::BadMeasurement(_))
        ));
    }
}
