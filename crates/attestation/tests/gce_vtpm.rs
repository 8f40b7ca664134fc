//! The guest side of `image_binding: cloud-vtpm` on GCP: [`GceVtpmAttester`] against an emulated
//! GCE vTPM (swtpm provisioned with the AK template and certificate in GCE's NV indices), its
//! evidence accepted by the verifier under a cloud-vtpm policy pinning the PCRs, and refused for
//! each broken link: another AK certificate, PCRs that differ from the policy, missing NV indices.
#![cfg(all(feature = "sim", feature = "azure-attester"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use cdvm_attestation::cloud_vtpm::gce_sim::GceVtpmSim;
use cdvm_attestation::cloud_vtpm::{
    Cloud, CloudVtpmError, CloudVtpmPolicy, GceVtpmAttestError, GceVtpmAttester, NV_GCE_AK_CERT_RSA,
};
use cdvm_attestation::sim::{self, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::{
    AnyVerifier, AttestError, Attester, Evidence, ImageBinding, ImageIdentity, Measurement, Policy,
    ReportData, TeeKind, Verifier, VerifyError,
};

/// The inner SEV-SNP attester: the simulated secure processor, as configfs-tsm would answer.
struct SpAttester {
    sp: SimSecureProcessor,
    measurement: Measurement,
}

impl Attester for SpAttester {
    fn tee(&self) -> TeeKind {
        TeeKind::SevSnp
    }
    fn interface(&self) -> &'static str {
        "sim"
    }
    fn evidence(&self, rd: &ReportData) -> Result<Evidence, AttestError> {
        Ok(self
            .sp
            .report(rd, &self.measurement, &SimReportOptions::default()))
    }
}

struct Env {
    dir: tempfile::TempDir,
    vtpm: GceVtpmSim,
    measurement: Measurement,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vtpm = GceVtpmSim::start(&dir.path().join("vtpm")).unwrap();
        // What a firmware booting our UKI would leave: PCR 4 and 11 extended, 12 untouched.
        vtpm.with_tpm(|t| {
            t.pcr_extend(4, &Sha256::digest(b"uki").into()).unwrap();
            t.pcr_extend(11, &Sha256::digest(b".linux").into()).unwrap();
        });
        Self {
            dir,
            vtpm,
            measurement: sim::measure_file_bytes(b"google's firmware"),
        }
    }

    fn sp(&self) -> SimSecureProcessor {
        SimSecureProcessor::load_or_create(self.dir.path()).unwrap()
    }

    fn attester(&self) -> GceVtpmAttester {
        GceVtpmAttester::new(
            Box::new(SpAttester {
                sp: self.sp(),
                measurement: self.measurement,
            }),
            self.vtpm.transport(),
        )
    }

    /// A cloud-vtpm policy pinning PCR 4, 11, 12 to what the vTPM holds, trusting the CA.
    fn policy(&self) -> Policy {
        let values = self.vtpm.with_tpm(|t| t.pcr_read(&[4, 11, 12]).unwrap());
        let mut p = sim::dev_policy(&self.sp(), &self.measurement, "test firmware");
        p.image_binding = ImageBinding::CloudVtpm;
        p.cloud_vtpm = Some(CloudVtpmPolicy {
            cloud: Cloud::Gcp,
            pcrs: values
                .iter()
                .map(|(i, v)| (*i, vec![hex::encode(v)]))
                .collect(),
            vtpm_roots: vec![self.vtpm.ca_pem().to_string()],
            trust_cloud_firmware: false,
        });
        p
    }
}

fn verify(
    ev: &Evidence,
    rd: &ReportData,
    policy: &Policy,
) -> Result<cdvm_attestation::Claims, VerifyError> {
    AnyVerifier.verify(ev, rd, policy, SystemTime::now())
}

#[test]
fn evidence_from_the_gce_vtpm_is_accepted_and_names_the_cloud() {
    let env = Env::new();
    let rd = ReportData([0x3c; 64]);
    let ev = env.attester().evidence(&rd).unwrap();
    let Evidence::SevSnp(snp) = &ev else {
        panic!("not SNP evidence")
    };
    let part = snp.cloud_vtpm.as_ref().expect("the vTPM part");
    assert_eq!(part.cloud, Cloud::Gcp);
    assert_eq!(part.ak_chain.len(), 1);
    let claims = verify(&ev, &rd, &env.policy()).unwrap();
    assert_eq!(
        claims.image_identity,
        ImageIdentity::CloudVtpm {
            cloud: Cloud::Gcp,
            firmware_pinned: true
        }
    );
    // Tamper twin: the same evidence for other report data (the quote's nonce) is refused.
    let other = ReportData([0x3d; 64]);
    assert!(verify(&ev, &other, &env.policy()).is_err());
    // Twice in a row works: the AK's transient handle is flushed each time.
    for _ in 0..3 {
        env.attester().evidence(&rd).unwrap();
    }
}

#[test]
fn pcrs_other_than_the_policy_and_a_foreign_ca_are_refused() {
    let env = Env::new();
    let rd = ReportData([0x11; 64]);
    let policy = env.policy();
    // The boot measured something else into PCR 4 after the policy was made.
    env.vtpm.with_tpm(|t| {
        t.pcr_extend(4, &Sha256::digest(b"another uki").into())
            .unwrap()
    });
    let ev = env.attester().evidence(&rd).unwrap();
    assert!(matches!(
        verify(&ev, &rd, &policy),
        Err(VerifyError::CloudVtpm(CloudVtpmError::PcrNotAllowed { .. }))
    ));
    // A policy trusting another CA (a second simulated vTPM's) refuses this AK.
    let stranger = tempfile::tempdir().unwrap();
    let other = GceVtpmSim::start(stranger.path()).unwrap();
    let mut foreign = env.policy();
    foreign.cloud_vtpm.as_mut().unwrap().vtpm_roots = vec![other.ca_pem().to_string()];
    let ev = env.attester().evidence(&rd).unwrap();
    assert!(matches!(
        verify(&ev, &rd, &foreign),
        Err(VerifyError::CloudVtpm(CloudVtpmError::AkNotTrusted { .. }))
    ));
}

#[test]
fn a_certificate_for_another_key_or_none_is_an_attester_error() {
    let env = Env::new();
    let rd = ReportData([5; 64]);
    // Another vTPM's certificate in NV 0x01c10000: it certifies another key.
    let stranger = tempfile::tempdir().unwrap();
    let other = GceVtpmSim::start(stranger.path()).unwrap();
    let foreign_cert = other.with_tpm(|t| t.nv_read(NV_GCE_AK_CERT_RSA).unwrap());
    env.vtpm
        .with_tpm(|t| t.nv_write(NV_GCE_AK_CERT_RSA, &foreign_cert).unwrap());
    let err = env.attester().vtpm_part(&rd).unwrap_err();
    assert!(matches!(err, GceVtpmAttestError::AkMismatch), "{err}");
    // A plain vTPM without GCE's indices (not a Shielded VM, or another cloud).
    let bare = tempfile::tempdir().unwrap();
    let swtpm = cdvm_attestation::azure::swtpm::Swtpm::start(bare.path()).unwrap();
    let attester = GceVtpmAttester::new(
        Box::new(SpAttester {
            sp: env.sp(),
            measurement: env.measurement,
        }),
        cdvm_attestation::azure::tpm_client::SocketTransport::unix(swtpm.socket()),
    );
    match attester.evidence(&rd) {
        Err(AttestError::GceVtpm(e)) => assert!(
            matches!(*e, GceVtpmAttestError::Tpm(ref t) if t.is_missing_handle()),
            "{e}"
        ),
        other => panic!("expected a GCE vTPM error, got {other:?}"),
    }
}
