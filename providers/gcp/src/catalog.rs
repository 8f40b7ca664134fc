//! The confidential machine types this backend knows, and the choice of one for a VM class
//! (<https://cloud.google.com/confidential-computing/confidential-vm/docs/supported-configurations>).

use cdvm_provider_api::VmClass;

/// A confidential-computing technology, as GCE names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tee {
    /// AMD SEV-SNP (N2D with `minCpuPlatform: "AMD Milan"`).
    SevSnp,
    /// Intel TDX (C3, and A3 with a confidential H100).
    Tdx,
}

impl Tee {
    /// From the wire name of `VmSpec::tee` (`sev-snp`, `tdx`).
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "sev-snp" => Some(Self::SevSnp),
            "tdx" => Some(Self::Tdx),
            _ => None,
        }
    }

    /// The wire name.
    pub fn wire(self) -> &'static str {
        match self {
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
        }
    }
}

/// A machine type of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineType {
    /// GCE's name (`n2d-standard-2`).
    pub name: String,
    /// The TEE it runs.
    pub tee: Tee,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// The confidential GPU it carries, if any.
    pub gpu: Option<&'static str>,
}

/// `(series, shape, vCPU counts, GiB per vCPU, TEE)`.
const SHAPES: &[(&str, &str, &[u32], u32, Tee)] = &[
    (
        "n2d",
        "standard",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224],
        4,
        Tee::SevSnp,
    ),
    (
        "n2d",
        "highmem",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96],
        8,
        Tee::SevSnp,
    ),
    (
        "n2d",
        "highcpu",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224],
        1,
        Tee::SevSnp,
    ),
    ("c3", "standard", &[4, 8, 22, 44, 88, 176], 4, Tee::Tdx),
    ("c3", "highmem", &[4, 8, 22, 44, 88, 176], 8, Tee::Tdx),
    ("c3", "highcpu", &[4, 8, 22, 44, 88, 176], 2, Tee::Tdx),
];

/// The machine type called `name`, if it is a confidential type of the catalog.
pub fn lookup(name: &str) -> Option<MachineType> {
    if name == "a3-highgpu-1g" {
        return Some(MachineType {
            name: name.into(),
            tee: Tee::Tdx,
            vcpus: 26,
            memory_mib: 234 * 1024,
            gpu: Some("nvidia-h100-80gb"),
        });
    }
    let mut parts = name.splitn(3, '-');
    let (series, shape, count) = (parts.next()?, parts.next()?, parts.next()?);
    let vcpus: u32 = count.parse().ok()?;
    SHAPES
        .iter()
        .find(|(s, sh, counts, _, _)| *s == series && *sh == shape && counts.contains(&vcpus))
        .map(|(_, _, _, gib, tee)| MachineType {
            name: name.into(),
            tee: *tee,
            vcpus,
            memory_mib: vcpus * gib * 1024,
            gpu: None,
        })
}

/// The smallest allowed type that runs `tee` and fits `class`: GPU types last (a GPU is costly
/// and nothing in a VM class asks for one), then fewest vCPUs, then least memory. `Err` says why
/// none does, for `ProviderError::InvalidSpec`.
pub fn choose<'a>(
    allowed: &'a [MachineType],
    tee: &str,
    class: &VmClass,
) -> Result<&'a MachineType, String> {
    let Some(wanted) = Tee::from_wire(tee) else {
        return Err(format!(
            "TEE {tee:?} is not offered by Compute Engine (sev-snp on n2d, tdx on c3/a3)"
        ));
    };
    let of_tee: Vec<&MachineType> = allowed.iter().filter(|m| m.tee == wanted).collect();
    if of_tee.is_empty() {
        let names: Vec<&str> = allowed.iter().map(|m| m.name.as_str()).collect();
        return Err(format!(
            "no allowed machine type runs {tee} (allowed: {})",
            names.join(", ")
        ));
    }
    of_tee
        .iter()
        .filter(|m| m.vcpus >= class.vcpus && m.memory_mib >= class.memory_mib)
        .min_by_key(|m| (m.gpu.is_some(), m.vcpus, m.memory_mib))
        .copied()
        .ok_or_else(|| {
            let names: Vec<String> = of_tee
                .iter()
                .map(|m| format!("{} ({} vCPU, {} MiB)", m.name, m.vcpus, m.memory_mib))
                .collect();
            format!(
                "no allowed {tee} machine type has {} vCPUs and {} MiB (allowed: {})",
                class.vcpus,
                class.memory_mib,
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn types(names: &[&str]) -> Vec<MachineType> {
        names.iter().map(|n| lookup(n).expect(n)).collect()
    }

    #[test]
    fn knows_the_confidential_families_only() {
        let m = lookup("n2d-highmem-4").expect("n2d");
        assert_eq!((m.tee, m.vcpus, m.memory_mib), (Tee::SevSnp, 4, 32768));
        let m = lookup("c3-standard-22").expect("c3");
        assert_eq!((m.tee, m.vcpus, m.memory_mib), (Tee::Tdx, 22, 90112));
        assert_eq!(
            lookup("a3-highgpu-1g").and_then(|m| m.gpu),
            Some("nvidia-h100-80gb")
        );
        for unknown in [
            "e2-standard-2",
            "n2d-standard-3",
            "c3-standard",
            "a3-highgpu-8g",
            "",
        ] {
            assert_eq!(lookup(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn chooses_the_smallest_fit_and_gpus_last() {
        let allowed = types(&[
            "n2d-standard-8",
            "n2d-standard-2",
            "c3-standard-4",
            "a3-highgpu-1g",
            "c3-highmem-8",
        ]);
        let class = |vcpus, memory_mib| VmClass { vcpus, memory_mib };
        let pick = |tee, c| choose(&allowed, tee, &c).map(|m| m.name.as_str());
        assert_eq!(pick("sev-snp", class(1, 256)), Ok("n2d-standard-2"));
        assert_eq!(pick("sev-snp", class(4, 256)), Ok("n2d-standard-8"));
        assert_eq!(pick("tdx", class(2, 1024)), Ok("c3-standard-4"));
        assert_eq!(pick("tdx", class(8, 40_000)), Ok("c3-highmem-8"));
        assert_eq!(pick("tdx", class(16, 1024)), Ok("a3-highgpu-1g"));
        assert!(pick("sev-snp", class(64, 256))
            .unwrap_err()
            .contains("no allowed sev-snp"));
        assert!(pick("sev", class(1, 256))
            .unwrap_err()
            .contains("not offered"));
        let snp_only = types(&["n2d-standard-2"]);
        assert!(choose(&snp_only, "tdx", &class(1, 256))
            .unwrap_err()
            .contains("no allowed machine type runs tdx"));
    }
}
