//! Finds a virtio-serial port by the name the host gave it (`virtserialport,name=…`). Without
//! udev there are no `/dev/virtio-ports/<name>` links, so read the names from sysfs.

use std::path::PathBuf;

use anyhow::Context;

pub(crate) fn find(name: &str) -> anyhow::Result<PathBuf> {
    let entries =
        std::fs::read_dir("/sys/class/virtio-ports").context("listing /sys/class/virtio-ports")?;
    for entry in entries.flatten() {
        let port_name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if port_name.trim() == name {
            return Ok(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    anyhow::bail!("no virtio-serial port named {name:?}")
}
