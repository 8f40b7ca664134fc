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
        match finit_module(&file, c"", ModuleInitFlags::empty()) {
            Ok(()) => loaded += 1,
            // Built in or loaded already: what we need is there.
            Err(Errno::EEXIST) => {}
            // A driver whose device this VM lacks (sev-guest outside SEV-SNP): the attester that
            // needs it fails later with its own error, and the simulated one does not need it.
            Err(Errno::ENODEV) => tracing::info!(module = name, "no device for this driver"),
            Err(e) => return Err(e).with_context(|| format!("loading module {name}")),
        }
    }
    Ok(loaded)
}
