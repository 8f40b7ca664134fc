//! The VM sizes the emulated region offers: the confidential families and a few general ones
//! (so a `ConfidentialVM` on a general size can be refused the way ARM refuses it).

/// What a size is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// No TEE.
    General,
    /// AMD SEV-SNP confidential VM (DCasv5, ECasv5, NCCadsH100v5).
    SevSnp,
    /// Intel TDX confidential VM (DCesv5, ECesv5).
    Tdx,
}

use Family::{General, SevSnp, Tdx};

/// Every size the region knows.
pub const SIZES: &[(&str, Family)] = &[
    ("Standard_B1s", General),
    ("Standard_B2s", General),
    ("Standard_D2s_v5", General),
    ("Standard_D4s_v5", General),
    ("Standard_D2as_v5", General),
    ("Standard_D4as_v5", General),
    ("Standard_E2as_v5", General),
    ("Standard_DC2as_v5", SevSnp),
    ("Standard_DC4as_v5", SevSnp),
    ("Standard_DC8as_v5", SevSnp),
    ("Standard_DC16as_v5", SevSnp),
    ("Standard_DC32as_v5", SevSnp),
    ("Standard_DC48as_v5", SevSnp),
    ("Standard_DC64as_v5", SevSnp),
    ("Standard_DC96as_v5", SevSnp),
    ("Standard_EC2as_v5", SevSnp),
    ("Standard_EC4as_v5", SevSnp),
    ("Standard_EC8as_v5", SevSnp),
    ("Standard_EC16as_v5", SevSnp),
    ("Standard_EC20as_v5", SevSnp),
    ("Standard_EC32as_v5", SevSnp),
    ("Standard_EC48as_v5", SevSnp),
    ("Standard_EC64as_v5", SevSnp),
    ("Standard_EC96as_v5", SevSnp),
    ("Standard_NCC40ads_H100_v5", SevSnp),
    ("Standard_DC2es_v5", Tdx),
    ("Standard_DC4es_v5", Tdx),
    ("Standard_DC8es_v5", Tdx),
    ("Standard_DC16es_v5", Tdx),
    ("Standard_DC32es_v5", Tdx),
    ("Standard_DC48es_v5", Tdx),
    ("Standard_DC64es_v5", Tdx),
    ("Standard_DC96es_v5", Tdx),
    ("Standard_EC2es_v5", Tdx),
    ("Standard_EC4es_v5", Tdx),
    ("Standard_EC8es_v5", Tdx),
    ("Standard_EC16es_v5", Tdx),
    ("Standard_EC32es_v5", Tdx),
    ("Standard_EC48es_v5", Tdx),
    ("Standard_EC64es_v5", Tdx),
    ("Standard_EC128es_v5", Tdx),
];

/// The size's canonical name and family (ARM compares size names case-insensitively).
pub fn lookup(name: &str) -> Option<(&'static str, Family)> {
    SIZES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .copied()
}
