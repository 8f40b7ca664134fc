//! Reads what the host passed through QEMU's fw_cfg (`-fw_cfg name=opt/cdvm/…`). fw_cfg is not
//! part of the launch measurement, which is why only public data travels this way: the bootstrap
//! and the operator's choice of secure processor.

use anyhow::Context;
use cdvm_protocol::Bootstrap;

const ROOT: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/cdvm";
/// fw_cfg files are small; refuse anything larger than a bootstrap could be.
const MAX_LEN: u64 = 64 * 1024;

fn read(name: &str) -> anyhow::Result<String> {
    let path = format!("{ROOT}/{name}/raw");
    let file = std::fs::File::open(&path).with_context(|| format!("opening fw_cfg {path}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_LEN), &mut text)
        .with_context(|| format!("reading fw_cfg {path}"))?;
    Ok(text)
}

pub(crate) fn bootstrap() -> anyhow::Result<Bootstrap> {
    Bootstrap::from_json(read("bootstrap")?.as_bytes()).context("parsing the bootstrap from fw_cfg")
}

/// The secure processor the host says this VM has (`sim` or `sev-snp`).
pub(crate) fn tee() -> anyhow::Result<String> {
    Ok(read("tee")?.trim().to_string())
}

/// Whether the host passed anything under `opt/cdvm` (QEMU does; clouds do not).
pub(crate) fn present() -> bool {
    std::path::Path::new(ROOT).is_dir()
}

/// An fw_cfg file that may be absent.
pub(crate) fn optional(name: &str) -> anyhow::Result<Option<String>> {
    if std::path::Path::new(&format!("{ROOT}/{name}")).exists() {
        read(name).map(Some)
    } else {
        Ok(None)
    }
}
