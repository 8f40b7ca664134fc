//! Which kind of NVIDIA device presented the evidence. Only Hopper GPUs are verified; NVSwitch
//! evidence (protected-PCIe systems) and every other class are refused before any other check,
//! because the GPU checks would otherwise run on a device they were not written for (an NVSwitch's
//! chain and signature verify, and it would be refused only for a missing opaque field).
//!
//! Two indicators, either of which can refuse and neither of which can admit on its own:
//!
//! - the chip name opening the leaf certificate's common name, as NVIDIA names its device
//!   certificates: `GH100 A01 GSP FMC LF` (H100 GPU), `LS_10 A01 FSP FMC LF` (LS10 NVSwitch).
//!   NVIDIA's attestation SDK reads its `hwmodel` claim from the same names. The name is signed
//!   into the certificate, so once the chain verifies, an accepted device really is a GH100;
//! - the `arch` field of NVIDIA's evidence JSON (`HOPPER`, `BLACKWELL`, `LS10`), when the evidence
//!   came in that format. It is not signed, so it may only refuse.

use std::fmt;

/// A class of NVIDIA confidential-computing device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    /// An H100-family GPU (chip GH100): the only class this crate verifies.
    HopperGpu,
    /// A Blackwell GPU (named only by the `arch` field here; no evidence exists to test it).
    BlackwellGpu,
    /// An NVSwitch (chip LS10), present in protected-PCIe (PPCIe) multi-GPU systems.
    NvSwitch,
    /// A name this crate does not know.
    Unknown,
}

impl DeviceClass {
    /// The class named by the chip name opening an NVIDIA device certificate's common name
    /// (`GH100 A01 GSP FMC LF` → Hopper GPU, `LS_10 A01 FSP FMC LF` → NVSwitch).
    pub fn from_certificate_name(common_name: &str) -> Self {
        match common_name.split_whitespace().next() {
            Some("GH100") => DeviceClass::HopperGpu,
            Some("LS_10" | "LS10") => DeviceClass::NvSwitch,
            _ => DeviceClass::Unknown,
        }
    }

    /// The class named by the `arch` field of NVIDIA's evidence JSON. NVIDIA's own reader
    /// compares GPU architectures case-insensitively, so this does too.
    pub fn from_arch(arch: &str) -> Self {
        match arch.to_ascii_uppercase().as_str() {
            "HOPPER" => DeviceClass::HopperGpu,
            "BLACKWELL" => DeviceClass::BlackwellGpu,
            "LS10" => DeviceClass::NvSwitch,
            _ => DeviceClass::Unknown,
        }
    }

    /// True for the classes this crate verifies.
    pub fn is_supported(self) -> bool {
        self == DeviceClass::HopperGpu
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceClass::HopperGpu => "Hopper GPU (GH100)",
            DeviceClass::BlackwellGpu => "Blackwell GPU",
            DeviceClass::NvSwitch => "NVSwitch (LS10)",
            DeviceClass::Unknown => "unknown device",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        use DeviceClass::*;
        for (cn, class) in [
            ("GH100 A01 GSP FMC LF", HopperGpu),
            ("GH100 A01 GSP BROM", HopperGpu),
            ("LS_10 A01 FSP FMC LF", NvSwitch),
            ("NVIDIA GH100 Identity", Unknown),
            ("GH1000 A01", Unknown),
            ("", Unknown),
        ] {
            assert_eq!(DeviceClass::from_certificate_name(cn), class, "{cn}");
        }
        for (arch, class) in [
            ("HOPPER", HopperGpu),
            ("hopper", HopperGpu),
            ("BLACKWELL", BlackwellGpu),
            ("LS10", NvSwitch),
            ("AMPERE", Unknown),
            ("", Unknown),
        ] {
            assert_eq!(DeviceClass::from_arch(arch), class, "{arch}");
        }
        assert!(HopperGpu.is_supported());
        assert!(
            !NvSwitch.is_supported() && !BlackwellGpu.is_supported() && !Unknown.is_supported()
        );
    }
}
