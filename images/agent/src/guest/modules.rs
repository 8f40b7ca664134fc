//! Loads the kernel modules the image carries, in the order the image builder resolved from
//! `modules.dep` (`/lib/modules/cdvm/load-order`, one file name per line).

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

const DIR: &str = "/lib/modules/cdvm";

pub(crate) fn load_all() -> anyhow::Result<usize> {
    let dir = Path::new(DIR);
    let order = std::fs::read_to_string(dir.join("load-order"))
        .with_context(|| format!("reading {DIR}/load-order"))?;
    let mut loaded = 0;
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // Names come from our own image, but never let one walk out of the folder.
        if name.contains('/') {
            anyhow::bail!("module name {name:?} in load-order is not a plain file name");
        }
        let file = File::open(dir.join(name)).with_context(|| format!("opening module {name}"))?;
        let module = module_name(name);
        match finit_module(&file, c"", ModuleInitFlags::empty()) {
            Ok(()) => {
                loaded += 1;
                tracing::info!(module = %module, "module loaded");
            }
            // Built in or loaded already: what we need is there.
            Err(Errno::EEXIST) => tracing::info!(module = %module, "module already loaded"),
            // A driver whose device this VM lacks (sev-guest outside SEV-SNP, tdx-guest outside
            // TDX): the attester that needs it fails later with its own error, and the simulated
            // one does not need it.
            Err(Errno::ENODEV) => {
                tracing::info!(module = %module, "module not loaded: {}", no_device(&module))
            }
            Err(e) => return Err(e).with_context(|| format!("loading module {name}")),
        }
    }
    Ok(loaded)
}

/// The kernel's name of a module file (`sev-guest.ko` is `sev_guest`).
fn module_name(file: &str) -> String {
    file.strip_suffix(".ko").unwrap_or(file).replace('-', "_")
}

/// What ENODEV from a module's init means, for the log.
fn no_device(module: &str) -> &'static str {
    match module {
        "sev_guest" => "no SEV-SNP guest device (this VM is not an SEV-SNP guest)",
        "tdx_guest" => "no TDX guest support (this VM is not a TDX guest)",
        _ => "no device for this driver",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_reasons() {
        assert_eq!(module_name("sev-guest.ko"), "sev_guest");
        assert_eq!(module_name("virtio_net.ko"), "virtio_net");
        assert!(no_device("tdx_guest").contains("not a TDX guest"));
        assert_eq!(no_device("qemu_fw_cfg"), "no device for this driver");
    }
}
