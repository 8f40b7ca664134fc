//! The confidential VM sizes this backend knows, and how a spec picks one.
//!
//! Figures from Azure's size tables (DCasv5/ECasv5, DCesv5/ECesv5, NCCadsH100v5). Only
//! confidential sizes are listed: a size outside this catalog cannot be configured.

use cdvm_provider_api::VmClass;

/// A trusted execution environment an Azure confidential size provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tee {
    /// AMD SEV-SNP (DCasv5, ECasv5, NCCadsH100v5).
    SevSnp,
    /// Intel TDX (DCesv5, ECesv5).
    Tdx,
}

impl Tee {
    /// Parses the spec's TEE wire name.
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "sev-snp" => Some(Self::SevSnp),
            "tdx" => Some(Self::Tdx),
            _ => None,
        }
    }

    /// The wire name (`sev-snp`, `tdx`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
        }
    }
}

/// One confidential VM size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmSize {
    /// ARM name (`Standard_DC2as_v5`).
    pub name: &'static str,
    /// The TEE it runs guests in.
    pub tee: Tee,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Whether it carries a (confidential) GPU.
    pub gpu: bool,
}

const GIB: u32 = 1024;

const fn size(name: &'static str, tee: Tee, vcpus: u32, memory_gib: u32, gpu: bool) -> VmSize {
    VmSize {
        name,
        tee,
        vcpus,
        memory_mib: memory_gib * GIB,
        gpu,
    }
}

use Tee::{SevSnp, Tdx};

/// Every size the backend can be configured with.
pub const CATALOG: &[VmSize] = &[
    // DCasv5: SEV-SNP, 4 GiB per vCPU.
    size("Standard_DC2as_v5", SevSnp, 2, 8, false),
    size("Standard_DC4as_v5", SevSnp, 4, 16, false),
    size("Standard_DC8as_v5", SevSnp, 8, 32, false),
    size("Standard_DC16as_v5", SevSnp, 16, 64, false),
    size("Standard_DC32as_v5", SevSnp, 32, 128, false),
    size("Standard_DC48as_v5", SevSnp, 48, 192, false),
    size("Standard_DC64as_v5", SevSnp, 64, 256, false),
    size("Standard_DC96as_v5", SevSnp, 96, 384, false),
    // ECasv5: SEV-SNP, 8 GiB per vCPU (672 GiB at 96).
    size("Standard_EC2as_v5", SevSnp, 2, 16, false),
    size("Standard_EC4as_v5", SevSnp, 4, 32, false),
    size("Standard_EC8as_v5", SevSnp, 8, 64, false),
    size("Standard_EC16as_v5", SevSnp, 16, 128, false),
    size("Standard_EC20as_v5", SevSnp, 20, 160, false),
    size("Standard_EC32as_v5", SevSnp, 32, 256, false),
    size("Standard_EC48as_v5", SevSnp, 48, 384, false),
    size("Standard_EC64as_v5", SevSnp, 64, 512, false),
    size("Standard_EC96as_v5", SevSnp, 96, 672, false),
    // DCesv5: TDX, 4 GiB per vCPU.
    size("Standard_DC2es_v5", Tdx, 2, 8, false),
    size("Standard_DC4es_v5", Tdx, 4, 16, false),
    size("Standard_DC8es_v5", Tdx, 8, 32, false),
    size("Standard_DC16es_v5", Tdx, 16, 64, false),
    size("Standard_DC32es_v5", Tdx, 32, 128, false),
    size("Standard_DC48es_v5", Tdx, 48, 192, false),
    size("Standard_DC64es_v5", Tdx, 64, 256, false),
    size("Standard_DC96es_v5", Tdx, 96, 384, false),
    // ECesv5: TDX, 8 GiB per vCPU (768 GiB at 128).
    size("Standard_EC2es_v5", Tdx, 2, 16, false),
    size("Standard_EC4es_v5", Tdx, 4, 32, false),
    size("Standard_EC8es_v5", Tdx, 8, 64, false),
    size("Standard_EC16es_v5", Tdx, 16, 128, false),
    size("Standard_EC32es_v5", Tdx, 32, 256, false),
    size("Standard_EC48es_v5", Tdx, 48, 384, false),
    size("Standard_EC64es_v5", Tdx, 64, 512, false),
    size("Standard_EC128es_v5", Tdx, 128, 768, false),
    // NCCadsH100v5: SEV-SNP with one H100 in confidential-computing mode.
    size("Standard_NCC40ads_H100_v5", SevSnp, 40, 320, true),
];

/// The catalog entry of an ARM size name (case-insensitive, as ARM compares them).
pub fn lookup(name: &str) -> Option<&'static VmSize> {
    CATALOG.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The cheapest allowed size with this TEE that fits the class: GPU sizes last (a spec does not
/// ask for a GPU, so one is never spent on it while a CPU size fits), then fewest vCPUs, then
/// least memory. `Err` says why none fits.
pub fn pick<'a>(allowed: &[&'a VmSize], tee: Tee, class: VmClass) -> Result<&'a VmSize, String> {
    let with_tee: Vec<&VmSize> = allowed.iter().copied().filter(|s| s.tee == tee).collect();
    if with_tee.is_empty() {
        return Err(format!(
            "no allowed VM size supports {} (allowed: {})",
            tee.wire_name(),
            names(allowed)
        ));
    }
    with_tee
        .iter()
        .copied()
        .filter(|s| s.vcpus >= class.vcpus && s.memory_mib >= class.memory_mib)
        .min_by_key(|s| (s.gpu, s.vcpus, s.memory_mib))
        .ok_or_else(|| {
            format!(
                "no allowed {} size has {} vCPUs and {} MiB (allowed: {})",
                tee.wire_name(),
                class.vcpus,
                class.memory_mib,
                names(&with_tee)
            )
        })
}

fn names(sizes: &[&VmSize]) -> String {
    sizes.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(names: &[&str]) -> Vec<&'static VmSize> {
        names
            .iter()
            .map(|n| lookup(n).expect("in catalog"))
            .collect()
    }

    #[test]
    fn picks_the_smallest_fitting_size_of_the_tee() {
        let a = allowed(&[
            "Standard_DC8as_v5",
            "Standard_DC2as_v5",
            "Standard_EC2as_v5",
            "Standard_DC2es_v5",
            "Standard_NCC40ads_H100_v5",
        ]);
        let class = |vcpus, memory_mib| VmClass { vcpus, memory_mib };
        assert_eq!(
            pick(&a, Tee::SevSnp, class(1, 256)).map(|s| s.name),
            Ok("Standard_DC2as_v5")
        );
        assert_eq!(
            pick(&a, Tee::SevSnp, class(2, 12 * 1024)).map(|s| s.name),
            Ok("Standard_EC2as_v5")
        );
        assert_eq!(
            pick(&a, Tee::SevSnp, class(16, 1024)).map(|s| s.name),
            Ok("Standard_NCC40ads_H100_v5"),
            "the GPU size only when nothing else fits"
        );
        assert_eq!(
            pick(&a, Tee::Tdx, class(2, 1024)).map(|s| s.name),
            Ok("Standard_DC2es_v5")
        );
        assert!(pick(&a, Tee::Tdx, class(4, 1024))
            .expect_err("refused")
            .contains("no allowed tdx size"));
        let snp_only = allowed(&["Standard_DC2as_v5"]);
        assert!(pick(&snp_only, Tee::Tdx, class(1, 1))
            .expect_err("refused")
            .contains("no allowed VM size supports tdx"));
    }

    #[test]
    fn lookup_is_case_insensitive_and_closed() {
        assert_eq!(
            lookup("standard_dc2as_v5").map(|s| s.name),
            Some("Standard_DC2as_v5")
        );
        assert!(lookup("Standard_D2s_v5").is_none());
        assert!(CATALOG.iter().all(|s| s.name.starts_with("Standard_")));
    }
}
