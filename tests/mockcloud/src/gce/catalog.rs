//! The machine types the emulator knows, and which confidential technology each series supports
//! (<https://cloud.google.com/confidential-computing/confidential-vm/docs/supported-configurations>).

/// A machine type of the emulated zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MachineType {
    /// The series (`n2d`, `c3`, …).
    pub(crate) series: &'static str,
    /// Virtual CPUs.
    pub(crate) vcpus: u32,
    /// Memory in MiB.
    pub(crate) memory_mib: u64,
}

/// `(series, shape, vCPU counts, GiB per vCPU)`; a3 is listed apart (its memory is not per vCPU).
const SHAPES: &[(&str, &str, &[u32], u64)] = &[
    ("e2", "standard", &[2, 4, 8, 16, 32], 4),
    ("e2", "highmem", &[2, 4, 8, 16], 8),
    ("e2", "highcpu", &[2, 4, 8, 16, 32], 1),
    ("n2", "standard", &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128], 4),
    ("n2", "highmem", &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128], 8),
    ("n2", "highcpu", &[2, 4, 8, 16, 32, 48, 64, 80, 96], 1),
    (
        "n2d",
        "standard",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224],
        4,
    ),
    ("n2d", "highmem", &[2, 4, 8, 16, 32, 48, 64, 80, 96], 8),
    (
        "n2d",
        "highcpu",
        &[2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224],
        1,
    ),
    ("c2d", "standard", &[2, 4, 8, 16, 32, 56, 112], 4),
    ("c3", "standard", &[4, 8, 22, 44, 88, 176], 4),
    ("c3", "highmem", &[4, 8, 22, 44, 88, 176], 8),
    ("c3", "highcpu", &[4, 8, 22, 44, 88, 176], 2),
];

/// `(name, vCPUs, MiB)` of the accelerator-optimized types.
const A3: &[(&str, u32, u64)] = &[
    ("a3-highgpu-1g", 26, 234 * 1024),
    ("a3-highgpu-2g", 52, 468 * 1024),
    ("a3-highgpu-4g", 104, 936 * 1024),
    ("a3-highgpu-8g", 208, 1872 * 1024),
];

/// The machine type called `name`, if the zone offers it.
pub(crate) fn lookup(name: &str) -> Option<MachineType> {
    if let Some((_, vcpus, memory_mib)) = A3.iter().find(|(n, _, _)| *n == name) {
        return Some(MachineType {
            series: "a3",
            vcpus: *vcpus,
            memory_mib: *memory_mib,
        });
    }
    let mut parts = name.splitn(3, '-');
    let (series, shape, count) = (parts.next()?, parts.next()?, parts.next()?);
    let vcpus: u32 = count.parse().ok()?;
    SHAPES
        .iter()
        .find(|(s, sh, counts, _)| *s == series && *sh == shape && counts.contains(&vcpus))
        .map(|(s, _, _, gib)| MachineType {
            series: s,
            vcpus,
            memory_mib: u64::from(vcpus) * gib * 1024,
        })
}

/// Why `confidential_type` cannot run on `name` (of `series`), or `None` when it can.
pub(crate) fn confidential_mismatch(
    confidential_type: &str,
    name: &str,
    series: &str,
) -> Option<String> {
    let supported: &[&str] = match confidential_type {
        "SEV" => &["n2d", "c2d"],
        "SEV_SNP" => &["n2d"],
        // TDX: the C3 series, and a3-highgpu-1g with one confidential H100.
        "TDX" if name == "a3-highgpu-1g" => return None,
        "TDX" => &["c3"],
        other => {
            return Some(format!(
                "Confidential instance type '{other}' is not one of SEV, SEV_SNP, TDX."
            ))
        }
    };
    if supported.contains(&series) {
        None
    } else {
        Some(format!(
            "Confidential instance type {confidential_type} is not supported for machine type \
             '{name}'. Supported machine series: {}.",
            supported.join(", ").to_uppercase()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_confidential_families() {
        assert_eq!(
            lookup("n2d-standard-2"),
            Some(MachineType {
                series: "n2d",
                vcpus: 2,
                memory_mib: 8192
            })
        );
        assert_eq!(lookup("c3-highcpu-4").map(|m| m.memory_mib), Some(8192));
        assert_eq!(lookup("a3-highgpu-1g").map(|m| m.vcpus), Some(26));
        assert_eq!(lookup("n2d-standard-3"), None);
        assert_eq!(lookup("z9-standard-2"), None);
        assert!(confidential_mismatch("SEV_SNP", "n2d-standard-2", "n2d").is_none());
        assert!(confidential_mismatch("SEV_SNP", "c3-standard-4", "c3").is_some());
        assert!(confidential_mismatch("TDX", "c3-standard-4", "c3").is_none());
        assert!(confidential_mismatch("TDX", "a3-highgpu-1g", "a3").is_none());
        assert!(confidential_mismatch("TDX", "a3-highgpu-8g", "a3").is_some());
        assert!(confidential_mismatch("TDX", "n2d-standard-2", "n2d").is_some());
    }
}
