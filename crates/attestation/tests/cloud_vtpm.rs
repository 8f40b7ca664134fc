//! `image_binding: cloud-vtpm` (AWS NitroTPM, GCP vTPM on SEV-SNP): the SNP report from the
//! simulated secure processor plus a cloud vTPM quote, accepted only with every link intact,
//! refused with a distinct error for each broken one (tamper twins of every positive case).
//!
//! Real-cloud samples are missing: no NitroTPM or GCP vTPM quote with its attestation key
//! certificate chain is in the repository, and neither cloud can be reached from the test
//! machines. The test material is therefore generated here, honestly and to the specifications:
//! a test CA and an RSA-2048 attestation key made with OpenSSL in the test, and a `TPMS_ATTEST`
//! with a `TPMS_QUOTE_INFO` built to TPM 2.0 Library Part 2 (`swtpm` is installed but
//! `tpm2_quote` is not, so no TSS-made quote). Replacing it with real samples needs, per cloud,
//! one guest boot of the UEFI disk that saves `tpm2_quote -c <AK> -l sha256:4,11,12 -q
//! <SHA-256(report data)>` output (message, signature, PCR values), the AK certificate (GCP:
//! `getShieldedInstanceIdentity`; AWS: the NitroTPM AK certificate), the cloud's AK root
//! certificate, and the SNP report with the same report data and its VCEK chain.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509Name, X509};
use sha2::{Digest, Sha256};

use cdvm_attestation::azure::{quote_nonce, AzureError, PcrValue, TpmQuote};
use cdvm_attestation::cloud_vtpm::{
    AkCert, Cloud, CloudVtpmError, CloudVtpmEvidence, CloudVtpmPolicy,
};
use cdvm_attestation::policy::PolicyError;
use cdvm_attestation::sim::{self, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::{
    AnyVerifier, Evidence, ImageBinding, ImageIdentity, Measurement, Policy, ReportData, Verifier,
    VerifyError,
};

/// A certificate authority made in the test: its key and self-signed certificate.
struct Ca {
    key: PKey<Private>,
    cert: X509,
}

fn name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

fn cert(subject: &str, key: &PKey<Private>, issuer: Option<&Ca>, ca: bool, serial: u32) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(subject)).unwrap();
    let issuer_name = issuer.map_or_else(
        || name(subject),
        |i| i.cert.subject_name().to_owned().unwrap(),
    );
    b.set_issuer_name(&issuer_name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    }
    let signer = issuer.map_or(key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn rsa() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

impl Ca {
    fn new(cn: &str) -> Self {
        let key = rsa();
        let cert = cert(cn, &key, None, true, 1);
        Self { key, cert }
    }
    fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().unwrap()).unwrap()
    }
}

const PCRS: [u32; 3] = [4, 11, 12];

/// A `TPMS_ATTEST` of type quote (TPM 2.0 Library Part 2): one SHA-256 bank selecting
/// `PCRS`, `pcrDigest` = SHA-256 of their values concatenated in index order.
fn tpms_attest(extra_data: &[u8], pcrs: &[PcrValue]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(0xff54_4347u32.to_be_bytes()); // TPM_GENERATED_VALUE
    m.extend(0x8018u16.to_be_bytes()); // TPM_ST_ATTEST_QUOTE
    let signer = [0x00, 0x0b]
        .iter()
        .copied()
        .chain([0x5a; 32])
        .collect::<Vec<u8>>();
    m.extend((signer.len() as u16).to_be_bytes()); // qualifiedSigner: a TPM2B_NAME
    m.extend(&signer);
    m.extend((extra_data.len() as u16).to_be_bytes());
    m.extend(extra_data);
    m.extend(123_456u64.to_be_bytes()); // clockInfo.clock
    m.extend(1u32.to_be_bytes()); // resetCount
    m.extend(0u32.to_be_bytes()); // restartCount
    m.push(1); // safe
    m.extend(0x2000_0001_0000_0000u64.to_be_bytes()); // firmwareVersion
    m.extend(1u32.to_be_bytes()); // TPML_PCR_SELECTION.count
    m.extend(0x000bu16.to_be_bytes()); // TPM_ALG_SHA256
    let mut bitmap = [0u8; 3];
    for p in PCRS {
        bitmap[p as usize / 8] |= 1 << (p % 8);
    }
    m.push(3);
    m.extend(bitmap);
    let mut h = Sha256::new();
    for p in PCRS {
        h.update(pcrs[p as usize].0);
    }
    m.extend(32u16.to_be_bytes());
    m.extend(h.finalize());
    m
}

fn sign(key: &PKey<Private>, message: &[u8]) -> Vec<u8> {
    let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), key).unwrap();
    s.sign_oneshot_to_vec(message).unwrap()
}

/// The image's PCR values (24 entries, index = PCR): 4 and 11 distinct, 12 zero.
fn image_pcrs() -> Vec<PcrValue> {
    let mut v = vec![PcrValue([0; 32]); 24];
    v[4] = PcrValue([0x44; 32]);
    v[11] = PcrValue([0x11; 32]);
    v
}

struct Env {
    _dir: tempfile::TempDir,
    sp: SimSecureProcessor,
    measurement: Measurement,
    rd: ReportData,
    root: Ca,
    ak: PKey<Private>,
    ak_cert: X509,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
        let root = Ca::new("Test Cloud vTPM AK Root");
        let ak = rsa();
        let ak_cert = cert("Test vTPM AK", &ak, Some(&root), false, 2);
        Self {
            _dir: dir,
            sp,
            measurement: sim::measure_file_bytes(b"the cloud's firmware"),
            rd: ReportData([7; 64]),
            root,
            ak,
            ak_cert,
        }
    }

    /// A quote over `pcrs` carrying `nonce`, signed by the AK.
    fn quote(&self, nonce: &[u8], pcrs: Vec<PcrValue>) -> TpmQuote {
        let message = tpms_attest(nonce, &pcrs);
        TpmQuote {
            signature: sign(&self.ak, &message),
            message,
            pcrs,
        }
    }

    fn part(&self) -> CloudVtpmEvidence {
        CloudVtpmEvidence {
            cloud: Cloud::Aws,
            quote: self.quote(&quote_nonce(&self.rd), image_pcrs()),
            ak_chain: vec![AkCert(self.ak_cert.to_der().unwrap())],
        }
    }

    fn evidence(&self, part: Option<CloudVtpmEvidence>) -> Evidence {
        match self
            .sp
            .report(&self.rd, &self.measurement, &SimReportOptions::default())
        {
            Evidence::SevSnp(mut e) => {
                e.cloud_vtpm = part;
                Evidence::SevSnp(e)
            }
            other => panic!("not SNP evidence: {other:?}"),
        }
    }

    fn policy(&self) -> Policy {
        let mut p = sim::dev_policy(&self.sp, &self.measurement, "test firmware");
        let hexed = |v: &PcrValue| vec![hex::encode(v.0)];
        let pcrs = image_pcrs();
        p.image_binding = ImageBinding::CloudVtpm;
        p.cloud_vtpm = Some(CloudVtpmPolicy {
            cloud: Cloud::Aws,
            pcrs: PCRS
                .iter()
                .map(|&i| (i, hexed(&pcrs[i as usize])))
                .collect(),
            vtpm_roots: vec![self.root.pem()],
            trust_cloud_firmware: false,
        });
        p
    }

    fn verify(
        &self,
        ev: &Evidence,
        policy: &Policy,
    ) -> Result<cdvm_attestation::Claims, VerifyError> {
        AnyVerifier.verify(ev, &self.rd, policy, SystemTime::now())
    }
}

fn refused(r: Result<cdvm_attestation::Claims, VerifyError>) -> CloudVtpmError {
    match r {
        Err(VerifyError::CloudVtpm(e)) => e,
        other => panic!("expected a cloud vTPM refusal, got {other:?}"),
    }
}

#[test]
fn a_cloud_vtpm_quote_bound_to_the_report_data_is_accepted_and_named() {
    let env = Env::new();
    let claims = env
        .verify(&env.evidence(Some(env.part())), &env.policy())
        .unwrap();
    assert_eq!(
        claims.image_identity,
        ImageIdentity::CloudVtpm {
            cloud: Cloud::Aws,
            firmware_pinned: true
        }
    );
    assert_eq!(
        claims.image_identity.lines(),
        ["image identity: vouched for by the cloud's vTPM (AWS NitroTPM), not by the CPU"]
    );
    let names: Vec<&str> = claims.checks.iter().map(|c| c.name.as_str()).collect();
    for step in [
        "measurement",
        "cloud-vtpm",
        "ak-chain",
        "tpm-quote",
        "tpm-nonce",
        "pcr-digest",
        "pcr-policy",
    ] {
        assert!(names.contains(&step), "{step} in {names:?}");
    }
    // The typed evidence survives the wire (base64 bytes, hex PCRs).
    let ev = env.evidence(Some(env.part()));
    let json = serde_json::to_string(&ev).unwrap();
    assert!(json.contains("\"cloud_vtpm\"") && json.contains("\"ak_chain\""));
    assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), ev);
}

#[test]
fn hardware_bound_evidence_says_so() {
    let env = Env::new();
    let policy = sim::dev_policy(&env.sp, &env.measurement, "test");
    let claims = env.verify(&env.evidence(None), &policy).unwrap();
    assert_eq!(claims.image_identity, ImageIdentity::Hardware);
    assert_eq!(
        claims.image_identity.lines(),
        ["image identity: hardware-measured"]
    );
}

#[test]
fn the_binding_and_the_evidence_must_agree() {
    let env = Env::new();
    // A cloud-vtpm policy without the vTPM part: nothing would pin the image.
    assert!(matches!(
        refused(env.verify(&env.evidence(None), &env.policy())),
        CloudVtpmError::Missing { .. }
    ));
    // A hardware policy does not silently ignore a vTPM part.
    let hardware = sim::dev_policy(&env.sp, &env.measurement, "test");
    assert!(matches!(
        refused(env.verify(&env.evidence(Some(env.part())), &hardware)),
        CloudVtpmError::NotAccepted { .. }
    ));
    // Another cloud's vTPM.
    let mut gcp = env.part();
    gcp.cloud = Cloud::Gcp;
    assert!(matches!(
        refused(env.verify(&env.evidence(Some(gcp)), &env.policy())),
        CloudVtpmError::WrongCloud {
            found: Cloud::Gcp,
            expected: Cloud::Aws,
            ..
        }
    ));
}

#[test]
fn one_pcr_byte_changed_is_refused() {
    let env = Env::new();
    // In the evidence: the values no longer hash to the signed pcrDigest.
    let mut part = env.part();
    part.quote.pcrs[4].0[0] ^= 1;
    assert!(matches!(
        refused(env.verify(&env.evidence(Some(part)), &env.policy())),
        CloudVtpmError::PcrDigest {
            source: AzureError::PcrDigestMismatch { .. }
        }
    ));
    // Honestly quoted, but another image booted: PCR 4 differs in one byte.
    let mut pcrs = image_pcrs();
    pcrs[4].0[31] ^= 1;
    let mut part = env.part();
    part.quote = env.quote(&quote_nonce(&env.rd), pcrs);
    assert!(matches!(
        refused(env.verify(&env.evidence(Some(part)), &env.policy())),
        CloudVtpmError::PcrNotAllowed { index: 4, .. }
    ));
    // A pinned PCR must be quoted: a policy pinning PCR 7 too.
    let mut policy = env.policy();
    let rules = policy.cloud_vtpm.as_mut().unwrap();
    rules.pcrs.insert(7, vec!["00".repeat(32)]);
    match refused(env.verify(&env.evidence(Some(env.part())), &policy)) {
        CloudVtpmError::PcrNotAllowed {
            index: 7, value, ..
        } => assert_eq!(value, "not quoted"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_quote_or_signature_byte_changed_is_refused() {
    let env = Env::new();
    let mut part = env.part();
    let at = part.quote.message.len() - 1; // the last byte of pcrDigest
    part.quote.message[at] ^= 1;
    assert_eq!(
        refused(env.verify(&env.evidence(Some(part)), &env.policy())),
        CloudVtpmError::QuoteSignatureInvalid
    );
    let mut part = env.part();
    part.quote.signature[10] ^= 1;
    assert_eq!(
        refused(env.verify(&env.evidence(Some(part)), &env.policy())),
        CloudVtpmError::QuoteSignatureInvalid
    );
}

#[test]
fn one_nonce_byte_changed_is_refused() {
    // A quote the AK really signed, for other report data (a replay, or another job's key).
    let env = Env::new();
    let mut nonce = quote_nonce(&env.rd);
    nonce[0] ^= 1;
    let mut part = env.part();
    part.quote = env.quote(&nonce, image_pcrs());
    match refused(env.verify(&env.evidence(Some(part)), &env.policy())) {
        CloudVtpmError::NonceMismatch { expected, found } => {
            assert_eq!(expected, hex::encode(quote_nonce(&env.rd)));
            assert_eq!(found, hex::encode(nonce));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_ak_certificate_from_another_root_is_refused() {
    let env = Env::new();
    let other = Ca::new("Test Cloud vTPM AK Root"); // same name, another key
    let ak = rsa();
    let ak_cert = cert("Test vTPM AK", &ak, Some(&other), false, 2);
    let message = tpms_attest(&quote_nonce(&env.rd), &image_pcrs());
    let part = CloudVtpmEvidence {
        cloud: Cloud::Aws,
        quote: TpmQuote {
            signature: sign(&ak, &message),
            message,
            pcrs: image_pcrs(),
        },
        // Even with the other root presented in the chain.
        ak_chain: vec![
            AkCert(ak_cert.to_der().unwrap()),
            AkCert(other.cert.to_der().unwrap()),
        ],
    };
    assert!(matches!(
        refused(env.verify(&env.evidence(Some(part)), &env.policy())),
        CloudVtpmError::AkNotTrusted { .. }
    ));
    // The right AK certificate with a quote signed by another key.
    let mut part = env.part();
    part.quote.signature = sign(&ak, &part.quote.message);
    assert_eq!(
        refused(env.verify(&env.evidence(Some(part)), &env.policy())),
        CloudVtpmError::QuoteSignatureInvalid
    );
    // No root pinned: nothing is trusted.
    let mut policy = env.policy();
    policy.cloud_vtpm.as_mut().unwrap().vtpm_roots.clear();
    assert!(matches!(
        refused(env.verify(&env.evidence(Some(env.part())), &policy)),
        CloudVtpmError::NoRoots { .. }
    ));
    // No AK certificate, or bytes that are none.
    for chain in [vec![], vec![AkCert(b"not DER".to_vec())]] {
        let mut part = env.part();
        part.ak_chain = chain;
        assert!(matches!(
            refused(env.verify(&env.evidence(Some(part)), &env.policy())),
            CloudVtpmError::AkCertificate { index: 0, .. }
        ));
    }
}

#[test]
fn the_firmware_is_trusted_to_the_cloud_only_when_the_policy_says_so() {
    let env = Env::new();
    let mut policy = env.policy();
    policy.measurements.clear();
    // An empty list still refuses every report.
    assert!(matches!(
        env.verify(&env.evidence(Some(env.part())), &policy),
        Err(VerifyError::MeasurementNotAllowed { .. })
    ));
    policy.cloud_vtpm.as_mut().unwrap().trust_cloud_firmware = true;
    let claims = env
        .verify(&env.evidence(Some(env.part())), &policy)
        .unwrap();
    assert_eq!(
        claims.image_identity,
        ImageIdentity::CloudVtpm {
            cloud: Cloud::Aws,
            firmware_pinned: false
        }
    );
    let lines = claims.image_identity.lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].contains("AWS is trusted for the firmware too"),
        "{lines:?}"
    );
    let m = claims
        .checks
        .iter()
        .find(|c| c.name == "measurement")
        .unwrap();
    assert!(m.detail.contains("NOT PINNED"), "{}", m.detail);
    // The trust never covers the vTPM part: still required and checked.
    assert!(matches!(
        refused(env.verify(&env.evidence(None), &policy)),
        CloudVtpmError::Missing { .. }
    ));
}

#[test]
fn policy_files_must_spell_the_binding_out() {
    let base = "name: c\ntee: sev-snp\nroots: [amd-milan]\n";
    let pcr = |i: u32| format!("    {i}: [\"{}\"]\n", "ab".repeat(32));
    let section = format!("cloud_vtpm:\n  cloud: aws\n  pcrs:\n{}{}", pcr(4), pcr(12));
    let ok = format!("{base}image_binding: cloud-vtpm\n{section}");
    let p = Policy::from_yaml(&ok).unwrap();
    assert_eq!(p.image_binding, ImageBinding::CloudVtpm);
    assert!(p.cloud_vtpm.as_ref().unwrap().vtpm_roots.is_empty());
    assert_eq!(
        Policy::from_yaml(base).unwrap().image_binding,
        ImageBinding::Hardware
    );
    let invalid = |text: &str| matches!(Policy::from_yaml(text), Err(PolicyError::Invalid { .. }));
    // The binding without its section, the section without the binding.
    assert!(invalid(&format!("{base}image_binding: cloud-vtpm\n")));
    assert!(invalid(&format!("{base}{section}")));
    // PCR 12 (or 4) not pinned.
    assert!(invalid(&format!(
        "{base}image_binding: cloud-vtpm\ncloud_vtpm:\n  cloud: gcp\n  pcrs:\n{}",
        pcr(4)
    )));
    // A root that is not a PEM certificate.
    assert!(invalid(&format!("{ok}  vtpm_roots: [\"not pem\"]\n")));
    // Firmware trusted while measurements are pinned: ambiguous.
    assert!(invalid(&format!(
        "{ok}  trust_cloud_firmware: true\nmeasurements:\n  - {{measurement: \"{}\", source: x}}\n",
        "00".repeat(48)
    )));
    // Unknown fields and values.
    for bad in [
        format!("{ok}  trust_cloud: true\n"),
        ok.replace("cloud: aws", "cloud: azure"),
        ok.replace("cloud-vtpm", "vtpm"),
    ] {
        assert!(
            matches!(Policy::from_yaml(&bad), Err(PolicyError::Parse { .. })),
            "{bad}"
        );
    }
}
