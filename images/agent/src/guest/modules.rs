//! Loads the kernel modules the image carries, in the order the image builder resolved from
//! `modules.dep` (`/lib/modules/cdvm/load-order`: per line a file name, then the file names of
//! its dependencies).
//!
//! The image carries every cloud's drivers, so most find no hardware: a driver that registers and
//! binds nothing loads fine; one whose init fails with ENODEV (`hv_vmbus` outside Hyper-V,
//! `sev-guest` outside SEV-SNP) is logged and skipped, and so is every module that depends on a
//! module that did not load (its symbols would be missing). Any other failure stops the boot.

use std::collections::BTreeSet;
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
    // Files whose module is in the kernel now (loaded by us, or there already).
    let mut present = BTreeSet::new();
    for line in order.lines() {
        let Some((name, deps)) = parse_line(line)? else {
            continue;
        };
        let module = module_name(name);
        if let Some(missing) = deps.iter().find(|d| !present.contains(**d)) {
            tracing::info!(
                module = %module,
                "module skipped: it needs {}, which did not load",
                module_name(missing)
            );
            continue;
        }
        let file = File::open(dir.join(name)).with_context(|| format!("opening module {name}"))?;
        match finit_module(&file, c"", ModuleInitFlags::empty()) {
            Ok(()) => {
                loaded += 1;
                tracing::info!(module = %module, "module loaded");
            }
            // Built in or loaded already: what we need is there.
            Err(Errno::EEXIST) => tracing::info!(module = %module, "module already loaded"),
            // A driver whose device this VM lacks: the attester or network that needs it fails
            // later with its own error, and the simulated attester needs neither guest driver.
            Err(Errno::ENODEV) => {
                tracing::info!(module = %module, "module not loaded: {}", no_device(&module));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("loading module {name}")),
        }
        present.insert(name);
    }
    Ok(loaded)
}

/// One load-order line: the module's file and its dependencies' files (`None` for a blank line).
/// Names come from our own image, but never let one walk out of the folder.
fn parse_line(line: &str) -> anyhow::Result<Option<(&str, Vec<&str>)>> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Ok(None);
    };
    let deps: Vec<&str> = words.collect();
    for file in std::iter::once(&name).chain(&deps) {
        if file.contains('/') || !file.ends_with(".ko") {
            anyhow::bail!("module {file:?} in load-order is not a plain .ko file name");
        }
    }
    Ok(Some((name, deps)))
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
        "hv_vmbus" => "no Hyper-V VMBus (this VM is not on Hyper-V/Azure)",
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
        assert!(no_device("hv_vmbus").contains("not on Hyper-V"));
        assert_eq!(no_device("qemu_fw_cfg"), "no device for this driver");
    }

    #[test]
    fn load_order_lines() {
        assert_eq!(parse_line("").expect("blank"), None);
        assert_eq!(parse_line("  ").expect("blank"), None);
        assert_eq!(
            parse_line("ena.ko").expect("line"),
            Some(("ena.ko", vec![]))
        );
        assert_eq!(
            parse_line("hv_storvsc.ko hv_vmbus.ko scsi_mod.ko").expect("line"),
            Some(("hv_storvsc.ko", vec!["hv_vmbus.ko", "scsi_mod.ko"]))
        );
        for bad in ["../x.ko", "a.ko ../b.ko", "a.ko b", "load-order"] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
