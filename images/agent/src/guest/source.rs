//! Where PID 1 gets its bootstrap: QEMU's fw_cfg (the bare-metal host and the tests), else the
//! instance metadata service of the cloud the firmware's DMI names. A cloud VM has no fw_cfg
//! `opt/cdvm`, and its secure processor is found by probing (`auto`), never the simulated one.

use cdvm_protocol::bootstrap::metadata::MetadataService;

/// The DMI fields the cloud is told by.
const SYS_VENDOR: &str = "/sys/class/dmi/id/sys_vendor";
const PRODUCT_NAME: &str = "/sys/class/dmi/id/product_name";
const CHASSIS_ASSET_TAG: &str = "/sys/class/dmi/id/chassis_asset_tag";
/// Azure's documented chassis asset tag (every Azure VM, Hyper-V elsewhere has another).
const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// Where the bootstrap comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `opt/cdvm/*` in fw_cfg.
    FwCfg,
    /// This cloud's metadata service.
    Cloud(MetadataService),
}

/// Looks at fw_cfg first, then the DMI strings; neither: an error naming both.
pub(crate) fn detect() -> anyhow::Result<Source> {
    if super::fw_cfg::present() {
        return Ok(Source::FwCfg);
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (vendor, product, asset) = (
        read(SYS_VENDOR),
        read(PRODUCT_NAME),
        read(CHASSIS_ASSET_TAG),
    );
    cloud_of(&vendor, &product, &asset)
        .map(Source::Cloud)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no bootstrap: no fw_cfg opt/cdvm, and the firmware names no known cloud (sys_vendor {:?}, product {:?})",
                vendor.trim(),
                product.trim()
            )
        })
}

/// The cloud a VM with these DMI strings runs on.
pub(crate) fn cloud_of(vendor: &str, product: &str, asset_tag: &str) -> Option<MetadataService> {
    match (vendor.trim(), product.trim()) {
        // Nitro instances say "Amazon EC2"; older Xen ones "Xen" with an "amazon" version.
        ("Amazon EC2", _) => Some(MetadataService::Aws),
        ("Google", "Google Compute Engine") => Some(MetadataService::Gcp),
        // Hyper-V says this on any host; only Azure sets its asset tag.
        ("Microsoft Corporation", "Virtual Machine") if asset_tag.trim() == AZURE_ASSET_TAG => {
            Some(MetadataService::Azure)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_are_told_by_their_dmi_strings() {
        assert_eq!(
            cloud_of("Amazon EC2\n", "m6a.large\n", "Amazon EC2\n"),
            Some(MetadataService::Aws)
        );
        assert_eq!(
            cloud_of("Google\n", "Google Compute Engine\n", "\n"),
            Some(MetadataService::Gcp)
        );
        assert_eq!(
            cloud_of(
                "Microsoft Corporation\n",
                "Virtual Machine\n",
                &format!("{AZURE_ASSET_TAG}\n")
            ),
            Some(MetadataService::Azure)
        );
        // Hyper-V off Azure, QEMU, and a look-alike product are not clouds.
        assert_eq!(
            cloud_of("Microsoft Corporation", "Virtual Machine", "none"),
            None
        );
        assert_eq!(cloud_of("QEMU", "Standard PC (Q35 + ICH9, 2009)", ""), None);
        assert_eq!(cloud_of("Google", "Pixel", ""), None);
    }
}
