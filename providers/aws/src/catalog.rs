//! The EC2 instance types that run AMD SEV-SNP guests, and how a VM class picks one.
//!
//! Source: "AMD SEV-SNP for Amazon EC2 instances" (EC2 user guide, requirements): SEV-SNP is
//! offered on M6a, C6a and R6a, in the regions that list it. The EC2 API refuses
//! `AmdSevSnp=enabled` on any other type; we refuse earlier, before calling AWS.

use cdvm_provider_api::VmClass;

/// One SEV-SNP capable instance type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceType {
    /// API name (`m6a.large`).
    pub name: &'static str,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

const SIZES: [(&str, u32); 6] = [
    ("large", 2),
    ("xlarge", 4),
    ("2xlarge", 8),
    ("4xlarge", 16),
    ("8xlarge", 32),
    ("16xlarge", 64),
];

/// GiB of memory per vCPU of each family.
const FAMILIES: [(&str, u32); 3] = [("c6a", 2), ("m6a", 4), ("r6a", 8)];

/// Looks an instance type up; `None` if it cannot run SEV-SNP guests.
pub fn lookup(name: &str) -> Option<InstanceType> {
    let name = ALL_NAMES.iter().copied().find(|n| *n == name)?;
    let (family, size) = name.split_once('.')?;
    let gib_per_vcpu = FAMILIES.iter().find(|(f, _)| *f == family)?.1;
    let vcpus = SIZES.iter().find(|(s, _)| *s == size)?.1;
    Some(InstanceType {
        name,
        vcpus,
        memory_mib: vcpus * gib_per_vcpu * 1024,
    })
}

const ALL_NAMES: [&str; 18] = [
    "c6a.large",
    "c6a.xlarge",
    "c6a.2xlarge",
    "c6a.4xlarge",
    "c6a.8xlarge",
    "c6a.16xlarge",
    "m6a.large",
    "m6a.xlarge",
    "m6a.2xlarge",
    "m6a.4xlarge",
    "m6a.8xlarge",
    "m6a.16xlarge",
    "r6a.large",
    "r6a.xlarge",
    "r6a.2xlarge",
    "r6a.4xlarge",
    "r6a.8xlarge",
    "r6a.16xlarge",
];

/// The smallest allowed type (fewest vCPUs, then least memory) that fits the class.
pub fn pick(allowed: &[InstanceType], class: &VmClass) -> Option<InstanceType> {
    allowed
        .iter()
        .filter(|t| t.vcpus >= class.vcpus && t.memory_mib >= class.memory_mib)
        .min_by_key(|t| (t.vcpus, t.memory_mib))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_and_choice() {
        let m = lookup("m6a.large").expect("m6a.large runs SNP");
        assert_eq!((m.vcpus, m.memory_mib), (2, 8192));
        assert_eq!(
            lookup("r6a.16xlarge").map(|t| t.memory_mib),
            Some(64 * 8 * 1024)
        );
        for no in ["m5.large", "m6i.large", "m6a.metal", "m6a", "", "c7a.large"] {
            assert!(lookup(no).is_none(), "{no} must not be SEV-SNP capable");
        }
        let allowed: Vec<_> = ["r6a.large", "c6a.xlarge", "m6a.large"]
            .iter()
            .filter_map(|n| lookup(n))
            .collect();
        let pick_for =
            |vcpus, memory_mib| pick(&allowed, &VmClass { vcpus, memory_mib }).map(|t| t.name);
        assert_eq!(pick_for(1, 256), Some("m6a.large"));
        assert_eq!(pick_for(2, 12 * 1024), Some("r6a.large"));
        assert_eq!(pick_for(4, 1024), Some("c6a.xlarge"));
        assert_eq!(pick_for(8, 1024), None);
    }
}
