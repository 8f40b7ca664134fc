//! Which network interface to configure. Clouds name NICs differently (`eth0` under QEMU and on
//! Azure, `ens5` on AWS, `ens4` on GCP…) and drivers register them asynchronously after their
//! module loads, so PID 1 waits for the first Ethernet interface that is not loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

const SYS_NET: &str = "/sys/class/net";
/// `ARPHRD_ETHER` in `/sys/class/net/<if>/type`: what DHCP over Ethernet needs (this skips `lo`
/// and tunnels such as `sit0`).
const ARPHRD_ETHER: u32 = 1;

/// A network interface as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
}

/// Waits up to `timeout` for an Ethernet interface; with several, the lowest ifindex (the first
/// registered) wins.
pub(crate) fn wait_for_first(timeout: Duration) -> anyhow::Result<Interface> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(first) = first(Path::new(SYS_NET)).context("listing network interfaces")? {
            return Ok(first);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "no Ethernet interface appeared within {} s (is the NIC's driver in the image?)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Ethernet interface with the lowest ifindex under a sysfs `class/net` folder.
fn first(dir: &Path) -> std::io::Result<Option<Interface>> {
    Ok(scan(dir)?.into_iter().min_by_key(|i| i.index))
}

/// The Ethernet interfaces under a sysfs `class/net` folder. Entries that vanish or read oddly
/// while a driver is still registering are skipped (the next scan sees them settled).
fn scan(dir: &Path) -> std::io::Result<Vec<Interface>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(entry.path().join(file)).ok();
        let kind = read("type").and_then(|t| t.trim().parse::<u32>().ok());
        let index = read("ifindex").and_then(|t| t.trim().parse::<u32>().ok());
        let mac = read("address").and_then(|t| parse_mac(t.trim()));
        if let (Some(ARPHRD_ETHER), Some(index), Some(mac)) = (kind, index, mac) {
            if name != "lo" {
                out.push(Interface { name, index, mac });
            }
        }
    }
    Ok(out)
}

/// `52:54:00:12:34:56` as bytes.
pub(crate) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, name: &str, kind: u32, index: u32, mac: &str) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("type"), format!("{kind}\n")).expect("type");
        std::fs::write(d.join("ifindex"), format!("{index}\n")).expect("ifindex");
        std::fs::write(d.join("address"), format!("{mac}\n")).expect("address");
    }

    #[test]
    fn picks_ethernet_not_loopback_or_tunnels() {
        let dir = tempfile::tempdir().expect("tmp");
        fake(dir.path(), "lo", 772, 1, "00:00:00:00:00:00");
        fake(dir.path(), "sit0", 776, 2, "00:00:00:00");
        assert_eq!(first(dir.path()).expect("scan"), None);
        fake(dir.path(), "ens5", 1, 4, "02:aa:bb:cc:dd:ee");
        fake(dir.path(), "ens6", 1, 3, "02:aa:bb:cc:dd:ef");
        let first = first(dir.path()).expect("scan").expect("one");
        assert_eq!(first.name, "ens6", "lowest ifindex");
        assert_eq!(first.mac, [2, 0xaa, 0xbb, 0xcc, 0xdd, 0xef]);
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "5:54:00:12:34:566",
            "zz:54:00:12:34:56",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
