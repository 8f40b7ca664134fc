//! The expected SEV-SNP launch digest of a guest booted by QEMU directly from a kernel, an
//! initrd and a command line, with the AMD-SEV build of OVMF.
//!
//! What the secure processor measures (AMD SEV-SNP ABI specification, SNP_LAUNCH_UPDATE and its
//! PAGE_INFO structure): starting from 48 zero bytes, for every page QEMU adds to the guest before
//! launch, `digest = SHA-384(digest ‖ contents-hash ‖ page length, type, permissions ‖ GPA)`.
//! For this guest that is, in order: every page of the OVMF image (normal pages), then the
//! sections OVMF's SEV metadata names (zero pages, the secrets page, the CPUID page, and the page
//! holding QEMU's SEV hashes table: the SHA-256 of the kernel file, of the initrd, and of the
//! command line with its NUL; QEMU's `kernel-hashes=on`), then one VMSA page per vCPU, whose
//! initial register state depends on the vCPU model (its CPUID signature goes in RDX) and on the
//! SEV features the hypervisor enables ([`GUEST_FEATURES`]). OVMF checks the kernel, initrd and
//! command line QEMU hands it against that table before booting them, so the launch digest
//! covers all three.
//!
//! The arithmetic is the `sev` crate's measurement module (the Rust counterpart of
//! `sev-snp-measure`); this module pins the parameters our QEMU provider uses and checks them
//! against the crate's published test vectors.

use std::path::{Path, PathBuf};

use sev::measurement::{
    snp::{calc_snp_ovmf_hash, snp_calc_launch_digest, SnpMeasurementArgs},
    vcpu_types::CpuType,
    vmsa::{GuestFeatures, VMMType},
};

/// SEV features in each vCPU's initial VMSA: `SNPActive` (bit 0) only.
///
/// QEMU (9.1 and later, the releases with `sev-snp-guest`) starts SNP guests through
/// `KVM_SEV_INIT2` with `vmsa_features` 0, and since Linux 6.10 KVM adds nothing on its own, so the
/// VMSA holds exactly `0x1`. The `0x21` seen in older tools (and in half of the `sev` crate's test
/// vectors) adds `DebugSwap` (bit 5), which host kernels 6.6–6.9 turned on by default through the
/// legacy `KVM_SEV_ES_INIT` path; upstream SNP hosts never use that path. `sev-snp-measure`
/// changed its default back to `0x1` for the same reason.
pub const GUEST_FEATURES: u64 = 0x1;

/// The vCPU models the provider launches (`-cpu EPYC-Milan` / `-cpu EPYC-Genoa`). The model
/// matters because its CPUID signature is part of every vCPU's initial state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuModel {
    /// QEMU `EPYC-Milan` (family 25, model 1, stepping 1); the `sev` crate's `CpuType::EpycMilan`.
    Milan,
    /// QEMU `EPYC-Genoa` (family 25, model 17, stepping 0); the `sev` crate's `CpuType::EpycGenoa`.
    Genoa,
}

impl CpuModel {
    /// Every model, in a fixed order.
    pub const ALL: [CpuModel; 2] = [CpuModel::Milan, CpuModel::Genoa];

    /// The QEMU `-cpu` name.
    pub fn qemu_name(self) -> &'static str {
        match self {
            CpuModel::Milan => "EPYC-Milan",
            CpuModel::Genoa => "EPYC-Genoa",
        }
    }

    /// Parses `milan`/`genoa` or the QEMU names (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "milan" | "epyc-milan" => Some(CpuModel::Milan),
            "genoa" | "epyc-genoa" => Some(CpuModel::Genoa),
            _ => None,
        }
    }

    fn sev_type(self) -> CpuType {
        match self {
            CpuModel::Milan => CpuType::EpycMilan,
            CpuModel::Genoa => CpuType::EpycGenoa,
        }
    }
}

impl std::fmt::Display for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.qemu_name())
    }
}

/// Errors while computing a launch digest.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The `sev` crate refused the inputs (e.g. an OVMF without SEV metadata or without the
    /// kernel-hashes section).
    #[error("launch digest computation failed ({context}): {source}")]
    Sev {
        /// What was being computed.
        context: String,
        /// The crate's error.
        #[source]
        source: sev::error::MeasurementError,
    },
    /// Zero vCPUs.
    #[error("a guest needs at least one vCPU")]
    NoVcpu,
    /// A command line QEMU would hash differently from the table we compute (the `sev` crate
    /// trims whitespace; QEMU hashes `-append` verbatim), or with a NUL inside.
    #[error("kernel command line {0:?} has leading/trailing whitespace or a NUL")]
    BadCmdline(String),
}

/// An AMD-SEV OVMF image whose own pages are hashed once, so that digests for many kernels,
/// initrds, vCPU counts and models cost only the per-launch part.
#[derive(Clone, Debug)]
pub struct Firmware {
    path: PathBuf,
    ovmf_hash: String,
}

impl Firmware {
    /// Reads the OVMF image and hashes its pages (1,024 SHA-384 page updates for a 4 MiB image,
    /// about 20 ms).
    pub fn load(ovmf: &Path) -> Result<Self, MeasureError> {
        // Surface a missing file as an I/O error with its path, not a sev error.
        std::fs::metadata(ovmf).map_err(|source| MeasureError::Io {
            path: ovmf.display().to_string(),
            source,
        })?;
        let ld = calc_snp_ovmf_hash(ovmf.to_path_buf()).map_err(|source| MeasureError::Sev {
            context: format!("hashing OVMF {}", ovmf.display()),
            source,
        })?;
        Ok(Self {
            path: ovmf.to_path_buf(),
            ovmf_hash: ld.get_hex_ld(),
        })
    }

    /// The launch digest of the OVMF pages alone (hex), the seed of every full digest.
    pub fn ovmf_hash_hex(&self) -> &str {
        &self.ovmf_hash
    }

    /// The expected launch digest for this firmware booting `kernel` + `initrd` + `cmdline` on
    /// `vcpus` vCPUs of model `cpu`, with [`GUEST_FEATURES`].
    pub fn launch_digest(
        &self,
        kernel: &Path,
        initrd: &Path,
        cmdline: &str,
        vcpus: u32,
        cpu: CpuModel,
    ) -> Result<[u8; 48], MeasureError> {
        compute(
            &self.path,
            Some(&self.ovmf_hash),
            kernel,
            initrd,
            cmdline,
            vcpus,
            cpu.sev_type(),
            GUEST_FEATURES,
        )
    }
}

/// The expected SEV-SNP launch digest (the report's MEASUREMENT) of a QEMU guest that boots
/// `ovmf` (the AMD-SEV OVMF build) with `-kernel kernel -initrd initrd -append cmdline`, `-smp
/// vcpus`, `-cpu` of `cpu`, `kernel-hashes=on`, and [`GUEST_FEATURES`].
///
/// Cost: it reads all three files and hashes each once (SHA-384 over the OVMF pages, SHA-256 over
/// kernel and initrd). For the image without models (4 MiB OVMF, 8 MiB kernel, 16 MiB initrd) it
/// took about 0.1 s in a debug build on this project's 2-core machines (measured 2026-11: OVMF
/// part ~20 ms, kernel + initrd part ~80–110 ms). The `sev` crate reads the initrd whole into
/// memory to hash it, so with the models (a ~150 MB initrd) each digest holds ~150 MB for a
/// moment and takes about 0.35 s (measured 2026-12, debug build, 2 cores). A provider launching
/// many VMs from one firmware can keep a [`Firmware`] and call [`Firmware::launch_digest`], which
/// skips the OVMF part.
pub fn snp_launch_digest(
    ovmf: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    vcpus: u32,
    cpu: CpuModel,
) -> Result<[u8; 48], MeasureError> {
    compute(
        ovmf,
        None,
        kernel,
        initrd,
        cmdline,
        vcpus,
        cpu.sev_type(),
        GUEST_FEATURES,
    )
}

#[allow(clippy::too_many_arguments)]
fn compute(
    ovmf: &Path,
    ovmf_hash: Option<&str>,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    vcpus: u32,
    cpu: CpuType,
    guest_features: u64,
) -> Result<[u8; 48], MeasureError> {
    if vcpus == 0 {
        return Err(MeasureError::NoVcpu);
    }
    if cmdline.trim() != cmdline || cmdline.contains('\0') {
        return Err(MeasureError::BadCmdline(cmdline.to_string()));
    }
    for path in [ovmf, kernel, initrd] {
        std::fs::metadata(path).map_err(|source| MeasureError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    let args = SnpMeasurementArgs {
        vcpus,
        vcpu_type: cpu,
        ovmf_file: ovmf.to_path_buf(),
        guest_features: GuestFeatures(guest_features),
        kernel_file: Some(kernel.to_path_buf()),
        initrd_file: Some(initrd.to_path_buf()),
        append: Some(cmdline),
        ovmf_hash_str: ovmf_hash,
        vmm_type: Some(VMMType::QEMU),
    };
    let sev_err = |source| MeasureError::Sev {
        context: format!("{vcpus} × {cpu} with {}", ovmf.display()),
        source,
    };
    let ld = snp_calc_launch_digest(args).map_err(sev_err)?;
    let bytes: Vec<u8> = ld.try_into().map_err(sev_err)?;
    let mut out = [0u8; 48];
    out.copy_from_slice(&bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Known answers: the `sev` crate 8.0.0's own test vectors (tests/measurement.rs), reproduced
    //! through this module's code path. Fixture provenance: tests/fixtures/SOURCES.md.

    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ovmf_AmdSev_suffix.bin")
    }

    const DEV_NULL: &str = "/dev/null";

    fn kat(
        ovmf_hash: Option<&str>,
        cmdline: &str,
        vcpus: u32,
        features: u64,
    ) -> Result<String, MeasureError> {
        let null = Path::new(DEV_NULL);
        compute(
            &fixture(),
            ovmf_hash,
            null,
            null,
            cmdline,
            vcpus,
            CpuType::EpycV4,
            features,
        )
        .map(hex::encode)
    }

    #[test]
    fn ovmf_hash_matches_the_published_value() {
        let fw = Firmware::load(&fixture()).expect("load fixture");
        assert_eq!(
            fw.ovmf_hash_hex(),
            "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
        );
    }

    // sev 8.0.0 tests/measurement.rs: test_sev_snp_only and test_snp_ovmf_hash_full_snp_only.
    #[test]
    fn kat_one_vcpu_cmdline_snp_only() {
        let expected = "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa";
        assert_eq!(
            kat(None, "console=ttyS0 loglevel=7", 1, 0x1).expect("kat"),
            expected
        );
        let fw = Firmware::load(&fixture()).expect("load fixture");
        assert_eq!(
            kat(Some(fw.ovmf_hash_hex()), "console=ttyS0 loglevel=7", 1, 0x1).expect("kat"),
            expected,
            "the cached-OVMF path gives the same digest"
        );
    }

    // test_snp_default and test_snp_ovmf_hash_full_default.
    #[test]
    fn kat_one_vcpu_cmdline_debug_swap() {
        assert_eq!(
            kat(None, "console=ttyS0 loglevel=7", 1, 0x21).expect("kat"),
            "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"
        );
    }

    // test_snp_with_multiple_vcpus_snp_only (no -append: QEMU hashes a lone NUL, as for "").
    #[test]
    fn kat_four_vcpus_snp_only() {
        assert_eq!(
            kat(None, "", 4, 0x1).expect("kat"),
            "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"
        );
    }

    // test_snp_with_multiple_vcpus_default.
    #[test]
    fn kat_four_vcpus_debug_swap() {
        assert_eq!(
            kat(None, "", 4, 0x21).expect("kat"),
            "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"
        );
    }

    // test_snp_ovmf_hash_gen_snp_only: a precomputed OVMF hash, no -append.
    #[test]
    fn kat_precomputed_ovmf_hash() {
        let hash = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";
        assert_eq!(
            kat(Some(hash), "", 1, 0x1).expect("kat"),
            "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"
        );
    }

    #[test]
    fn public_entry_points_agree() {
        let null = Path::new(DEV_NULL);
        let fw = Firmware::load(&fixture()).expect("load fixture");
        for cpu in CpuModel::ALL {
            for vcpus in [1, 2, 4] {
                let direct = snp_launch_digest(&fixture(), null, null, "console=ttyS0", vcpus, cpu)
                    .expect("direct");
                let cached = fw
                    .launch_digest(null, null, "console=ttyS0", vcpus, cpu)
                    .expect("cached");
                assert_eq!(direct, cached);
                let inner = compute(
                    &fixture(),
                    None,
                    null,
                    null,
                    "console=ttyS0",
                    vcpus,
                    cpu.sev_type(),
                    GUEST_FEATURES,
                )
                .expect("inner");
                assert_eq!(direct, inner);
            }
        }
    }

    #[test]
    fn refuses_bad_arguments() {
        let null = Path::new(DEV_NULL);
        assert!(matches!(
            snp_launch_digest(&fixture(), null, null, "", 0, CpuModel::Milan),
            Err(MeasureError::NoVcpu)
        ));
        assert!(matches!(
            snp_launch_digest(&fixture(), null, null, " quiet", 1, CpuModel::Milan),
            Err(MeasureError::BadCmdline(_))
        ));
        assert!(matches!(
            snp_launch_digest(
                Path::new("/nonexistent/ovmf"),
                null,
                null,
                "",
                1,
                CpuModel::Milan
            ),
            Err(MeasureError::Io { .. })
        ));
    }

    #[test]
    fn cpu_names() {
        assert_eq!(CpuModel::parse("EPYC-Milan"), Some(CpuModel::Milan));
        assert_eq!(CpuModel::parse("genoa"), Some(CpuModel::Genoa));
        assert_eq!(CpuModel::parse("rome"), None);
        assert_eq!(CpuModel::Genoa.to_string(), "EPYC-Genoa");
    }
}
