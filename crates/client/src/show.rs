//! Human-readable progress and results, on standard error (progress) and output (the result).

use std::path::Path;
use std::time::Duration;

use cdvm_attestation::Claims;
use cdvm_client::blob::Transfer;
use cdvm_client::rag::{self, AnswerDisplay};
use cdvm_client::{ClientError, JobOutcome, Stage};

/// A RAG answer streamed so far (one job per process, as the transfer line).
static ANSWER: std::sync::Mutex<AnswerDisplay> = std::sync::Mutex::new(AnswerDisplay::new());

pub fn stage(stage: &Stage, t: Duration) {
    let at = format!("[{:>7.2}s]", t.as_secs_f64());
    if let Stage::Partial { text, .. } = stage {
        answer_grows(&at, text);
        return;
    }
    end_answer_stream();
    match stage {
        Stage::Submitted { request } => eprintln!("{at} submitted request {request}"),
        Stage::Dvm { status, info } => eprintln!("{at} DVM: {status:?}: {info}"),
        Stage::Attested {
            guest,
            claims,
            input_deadline,
            interface,
            models,
        } => {
            eprintln!(
                "{at} attested: TEE {}, measurement {}…, policy `{}` ✓ (guest key {})",
                claims.tee,
                &claims.measurement.to_string()[..16],
                claims.policy,
                guest
            );
            claims_lines(claims, "            ");
            if let Some(interface) = interface {
                eprintln!(
                    "            evidence interface in the guest: {interface} (as the guest says; not part of the evidence)"
                );
            }
            for m in models {
                eprintln!(
                    "            model in the measured image: {} sha256:{}",
                    m.name, m.sha256
                );
            }
            eprintln!(
                "            the guest waits for the input until {} ({})",
                input_deadline.to_human_datetime(),
                from_now(*input_deadline)
            );
        }
        Stage::Refused { guest, reason } => {
            eprintln!("{at} ✗ refused an attestation from key {guest}: {reason}");
            eprintln!("            (nothing is sent to it; waiting for a valid attestation until the deadline)");
        }
        Stage::InputSent => eprintln!("{at} input sent, encrypted to the attested guest key only"),
        Stage::Running {
            run_deadline: Some(d),
        } => eprintln!(
            "{at} running inside the VM (time limit {}, {})",
            d.to_human_datetime(),
            from_now(*d)
        ),
        Stage::Running { run_deadline: None } => eprintln!("{at} running inside the VM"),
        Stage::ResultReceived => eprintln!("{at} result received and decrypted (hash checked)"),
        Stage::ResultDownloaded { bytes } => {
            transfer_done();
            eprintln!("{at} result blob downloaded ({bytes} bytes), decrypted, hash checked")
        }
        Stage::VmDestroyed => eprintln!("{at} VM destroyed (confirmed by the DVM)"),
        Stage::Partial { .. } => {}
    }
}

/// Shows the answer growing on standard error: a heading once, then only the new text.
fn answer_grows(at: &str, text: &str) {
    let Ok(mut answer) = ANSWER.lock() else {
        return;
    };
    if !answer.started() {
        eprintln!("{at} the answer as the VM writes it (decrypted here; the final one follows):");
    }
    let new = answer.update(text);
    eprint!("{new}");
}

/// Ends a streamed answer's open line before other output.
pub fn end_answer_stream() {
    if let Ok(mut answer) = ANSWER.lock() {
        eprint!("{}", answer.end_line());
    }
}

/// "in 118 s" / "passed 3 s ago".
fn from_now(t: cdvm_protocol::nostr::Timestamp) -> String {
    let now = cdvm_protocol::nostr::Timestamp::now().as_secs();
    let t = t.as_secs();
    if t >= now {
        format!("in {} s", t - now)
    } else {
        format!("passed {} s ago", now - t)
    }
}

fn claims_lines(claims: &Claims, indent: &str) {
    for check in &claims.checks {
        eprintln!("{indent}✓ {}: {}", check.name, check.detail);
    }
    for line in identity_lines(claims, indent) {
        eprintln!("{line}");
    }
    if claims.simulated {
        eprintln!("{indent}⚠ SIMULATED TEE: the evidence comes from a simulated secure processor.");
        eprintln!(
            "{indent}  It proves the protocol works, NOT that the operator cannot read your data."
        );
    }
}

/// Prints claims to standard output (for `cdvm verify`).
pub fn claims(claims: &Claims, indent: &str) {
    println!(
        "{indent}TEE: {}  root: {}  measurement: {}",
        claims.tee, claims.root, claims.measurement
    );
    for check in &claims.checks {
        println!("{indent}✓ {}: {}", check.name, check.detail);
    }
    for line in identity_lines(claims, indent) {
        println!("{line}");
    }
    if claims.simulated {
        println!("{indent}⚠ SIMULATED TEE: development only, no confidentiality");
    }
}

/// Who vouched for the image, one line each: "image identity: hardware-measured", or, under an
/// `image_binding: cloud-vtpm` policy, that the cloud's vTPM did and the CPU did not (and, when
/// the policy accepts any firmware, that the cloud is trusted for that too). A cloud-vouched
/// identity is marked ⚠: the user must see that the cloud, not the hardware, pins the image.
fn identity_lines(claims: &Claims, indent: &str) -> Vec<String> {
    let mark = match claims.image_identity {
        cdvm_attestation::ImageIdentity::Hardware => "✓",
        cdvm_attestation::ImageIdentity::CloudVtpm { .. } => "⚠",
    };
    claims
        .image_identity
        .lines()
        .into_iter()
        .map(|l| format!("{indent}{mark} {l}"))
        .collect()
}

/// When the last progress line was drawn, to redraw at most ~10 times a second.
static LAST_DRAW: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// One progress line for a transfer, redrawn in place on standard error.
pub fn transfer(t: &Transfer) {
    let Ok(mut last) = LAST_DRAW.lock() else {
        return;
    };
    let now = std::time::Instant::now();
    let done = t.done >= t.total;
    if !done && last.is_some_and(|l| now.duration_since(l) < Duration::from_millis(100)) {
        return;
    }
    *last = Some(now);
    let mb = |b: u64| b as f64 / 1e6;
    eprint!(
        "\r            {}: {:.1}/{:.1} MB ({:.0}%), {:.1} MB/s   ",
        t.what,
        mb(t.done),
        mb(t.total),
        if t.total == 0 {
            100.0
        } else {
            t.done as f64 * 100.0 / t.total as f64
        },
        t.rate() / 1e6
    );
}

/// Ends the progress line.
pub fn transfer_done() {
    if let Ok(mut last) = LAST_DRAW.lock() {
        if last.take().is_some() {
            eprintln!();
        }
    }
}

pub fn outcome(outcome: &JobOutcome, output: Option<&Path>) -> Result<(), ClientError> {
    if !outcome.vm_destroyed {
        eprintln!("warning: the DVM did not confirm the VM's destruction in time");
    }
    if let Some((path, bytes)) = &outcome.output_file {
        eprintln!(
            "result ({}, {bytes} bytes, from an encrypted blob) written to {}",
            outcome.media_type,
            path.display()
        );
        return Ok(());
    }
    match output {
        Some(path) => {
            std::fs::write(path, &outcome.output).map_err(|source| ClientError::Io {
                path: path.display().to_string(),
                source,
            })?;
            eprintln!(
                "result ({}) written to {}",
                outcome.media_type,
                path.display()
            );
        }
        None => print!("{}", outcome.output),
    }
    Ok(())
}

/// A RAG job's result: the answer and its citations on standard output; with `output`, also the
/// answer as pretty JSON in that file.
pub fn rag_outcome(outcome: &JobOutcome, output: Option<&Path>) -> Result<(), ClientError> {
    if !outcome.vm_destroyed {
        eprintln!("warning: the DVM did not confirm the VM's destruction in time");
    }
    let answer = rag::parse_answer(&outcome.media_type, &outcome.output)?;
    if let Some(path) = output {
        rag::write_answer_json(path, &answer)?;
        eprintln!(
            "answer (JSON, with citations) written to {}",
            path.display()
        );
    }
    print!("{}", rag::render_answer(&answer));
    Ok(())
}

#[cfg(test)]
mod tests {
    use cdvm_attestation::cloud_vtpm::Cloud;
    use cdvm_attestation::{ImageIdentity, Measurement, TeeKind};

    use super::*;

    fn claims(image_identity: ImageIdentity) -> Claims {
        Claims {
            tee: TeeKind::SevSnp,
            measurement: Measurement([0; 48]),
            root: "AMD ARK-Genoa".into(),
            simulated: false,
            policy: "image-aws-snp".into(),
            checks: Vec::new(),
            image_identity,
        }
    }

    #[test]
    fn the_image_identity_line_names_who_vouched_for_the_image() {
        assert_eq!(
            identity_lines(&claims(ImageIdentity::Hardware), "  "),
            ["  ✓ image identity: hardware-measured"]
        );
        assert_eq!(
            identity_lines(
                &claims(ImageIdentity::CloudVtpm {
                    cloud: Cloud::Aws,
                    firmware_pinned: true
                }),
                "  "
            ),
            ["  ⚠ image identity: vouched for by the cloud's vTPM (AWS NitroTPM), not by the CPU"]
        );
        let gcp = identity_lines(
            &claims(ImageIdentity::CloudVtpm {
                cloud: Cloud::Gcp,
                firmware_pinned: false,
            }),
            "",
        );
        assert_eq!(
            gcp,
            [
                "⚠ image identity: vouched for by the cloud's vTPM (GCP vTPM), not by the CPU",
                "⚠ firmware: not pinned, any measurement accepted: Google is trusted for the firmware too",
            ]
        );
    }
}
