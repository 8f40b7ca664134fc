//! Module load order from a synthetic modules.dep, module metadata from synthetic ELF objects.

use std::collections::{BTreeMap, BTreeSet};

use cdvm_image::modules::{
    self, modinfo, modinfo_depends, parse_builtin, resolve, synthesize_modules_dep, ModuleError,
    ModulesDep, WANTED,
};

/// The virtio part of Debian 6.1's graph and the configfs-tsm part of 6.12's (`tsm` needs
/// `configfs`; `sev-guest` and `tdx-guest` need `tsm`), as depmod would write it (full transitive
/// lists), the clouds' NIC and disk drivers as 6.12 has them, plus modules the image does not
/// want.
const DEP: &str = "\
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/firmware/qemu_fw_cfg.ko:
kernel/fs/configfs/configfs.ko.xz:
kernel/drivers/virt/coco/tsm.ko.xz: kernel/fs/configfs/configfs.ko.xz
kernel/drivers/virt/coco/sev-guest/sev-guest.ko.xz: kernel/drivers/virt/coco/tsm.ko.xz kernel/fs/configfs/configfs.ko.xz
kernel/drivers/virt/coco/tdx-guest/tdx-guest.ko.xz: kernel/drivers/virt/coco/tsm.ko.xz kernel/fs/configfs/configfs.ko.xz
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/ethernet/amazon/ena/ena.ko.xz:
kernel/drivers/net/ethernet/google/gve/gve.ko.xz:
kernel/drivers/hv/hv_vmbus.ko.xz:
kernel/drivers/net/hyperv/hv_netvsc.ko.xz: kernel/drivers/hv/hv_vmbus.ko.xz
kernel/drivers/nvme/common/nvme-auth.ko.xz:
kernel/drivers/nvme/host/nvme-core.ko.xz: kernel/drivers/nvme/common/nvme-auth.ko.xz
kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz kernel/drivers/nvme/common/nvme-auth.ko.xz
kernel/drivers/scsi/scsi_common.ko.xz:
kernel/drivers/scsi/scsi_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/scsi/scsi_transport_fc.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/scsi/hv_storvsc.ko.xz: kernel/drivers/hv/hv_vmbus.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_transport_fc.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
";

fn names(order: &[String]) -> Vec<String> {
    order.iter().map(|p| modules::module_name(p)).collect()
}

/// Every module comes after all of its dependencies.
fn assert_topological(order: &[String], dep: &ModulesDep) {
    for (i, m) in order.iter().enumerate() {
        for d in dep.deps_of(m).expect("listed") {
            let j = order.iter().position(|x| x == d).expect("dep present");
            assert!(j < i, "{d} must load before {m}");
        }
    }
}

#[test]
fn wanted_set_in_dependency_order() {
    let dep = ModulesDep::parse(DEP).expect("parse");
    let r = resolve(WANTED, &dep, &BTreeSet::new()).expect("resolve");
    assert_eq!(
        names(&r.load_order),
        [
            "virtio",
            "virtio_ring",
            "virtio_pci_legacy_dev",
            "virtio_pci_modern_dev",
            "virtio_pci",
            "failover",
            "net_failover",
            "virtio_net",
            "virtio_console",
            "qemu_fw_cfg",
            "configfs",
            "tsm",
            "sev_guest",
            "tdx_guest",
            "ena",
            "gve",
            "hv_vmbus",
            "hv_netvsc",
            "virtio_blk",
            "nvme_auth",
            "nvme_core",
            "nvme",
            "scsi_common",
            "scsi_mod",
            "scsi_transport_fc",
            "hv_storvsc",
            "sd_mod"
        ]
    );
    assert_topological(&r.load_order, &dep);
    assert!(r.builtin.is_empty());
    assert_eq!(
        r.load_order.last().map(String::as_str),
        Some("kernel/drivers/scsi/sd_mod.ko.xz"),
        "compressed paths are kept as listed; the builder decompresses them"
    );
}

#[test]
fn dependencies_are_pulled_in_before_their_users() {
    let dep = ModulesDep::parse(DEP).expect("parse");
    // Asking for the top of the graph alone still brings every dependency, each once.
    let r = resolve(
        &["virtio_net", "virtio_pci", "ext4"],
        &dep,
        &BTreeSet::new(),
    )
    .expect("resolve");
    assert_eq!(
        names(&r.load_order),
        [
            "virtio",
            "virtio_ring",
            "failover",
            "net_failover",
            "virtio_net",
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio_pci",
            "mbcache",
            "jbd2",
            "ext4"
        ]
    );
    assert_topological(&r.load_order, &dep);
    // Deterministic: the same inputs give the same order.
    let again = resolve(
        &["virtio_net", "virtio_pci", "ext4"],
        &dep,
        &BTreeSet::new(),
    )
    .expect("resolve");
    assert_eq!(r, again);
}

#[test]
fn builtin_modules_are_skipped() {
    let dep = ModulesDep::parse(DEP).expect("parse");
    let builtin =
        parse_builtin("kernel/drivers/virtio/virtio.ko\nkernel/drivers/firmware/qemu_fw_cfg.ko\n");
    // A kernel with virtio built in has no virtio.ko line; drop it from modules.dep like depmod.
    let dep_text: String = DEP
        .lines()
        .filter(|l| !l.starts_with("kernel/drivers/virtio/virtio.ko:"))
        .map(|l| l.replace(" kernel/drivers/virtio/virtio.ko", "") + "\n")
        .collect();
    let dep2 = ModulesDep::parse(&dep_text).expect("parse");
    let closure = resolve(WANTED, &dep, &BTreeSet::new())
        .expect("resolve")
        .load_order
        .len();
    let r = resolve(WANTED, &dep2, &builtin).expect("resolve");
    assert_eq!(r.builtin, ["qemu_fw_cfg", "virtio"]);
    let n = names(&r.load_order);
    assert!(!n.contains(&"virtio".to_string()) && !n.contains(&"qemu_fw_cfg".to_string()));
    assert_eq!(n.len(), closure - 2);
    assert_topological(&r.load_order, &dep2);
    // The original (non-builtin) graph is unaffected by a builtin list naming unrelated modules.
    let r = resolve(WANTED, &dep, &parse_builtin("kernel/fs/ext4/ext4.ko\n")).expect("resolve");
    assert_eq!(r.load_order.len(), closure);
}

#[test]
fn errors_name_the_problem() {
    let dep = ModulesDep::parse(DEP).expect("parse");
    assert!(matches!(
        resolve(&["nonexistent"], &dep, &BTreeSet::new()),
        Err(ModuleError::Unknown(n)) if n == "nonexistent"
    ));
    let cyclic = ModulesDep::parse("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n").expect("parse");
    assert!(matches!(
        resolve(&["a"], &cyclic, &BTreeSet::new()),
        Err(ModuleError::Cycle(_))
    ));
    let dangling = ModulesDep::parse("a.ko: missing.ko\n").expect("parse");
    assert!(matches!(
        resolve(&["a"], &dangling, &BTreeSet::new()),
        Err(ModuleError::DanglingDep { .. })
    ));
}

/// A minimal ELF64 little-endian relocatable with a `.modinfo` section, as modpost emits.
fn fake_module(modinfo: &str) -> Vec<u8> {
    let shstrtab = b"\0.modinfo\0.shstrtab\0";
    let info = modinfo.replace(';', "\0").into_bytes();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little endian
    elf[6] = 1;
    elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    let info_off = elf.len();
    elf.extend_from_slice(&info);
    let str_off = elf.len();
    elf.extend_from_slice(shstrtab);
    while !elf.len().is_multiple_of(8) {
        elf.push(0);
    }
    let shoff = elf.len();
    let section = |name: u32, ty: u32, off: usize, size: usize| {
        let mut sh = vec![0u8; 64];
        sh[0..4].copy_from_slice(&name.to_le_bytes());
        sh[4..8].copy_from_slice(&ty.to_le_bytes());
        sh[24..32].copy_from_slice(&(off as u64).to_le_bytes());
        sh[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        sh
    };
    elf.extend(section(0, 0, 0, 0));
    elf.extend(section(1, 1, info_off, info.len())); // .modinfo, PROGBITS
    elf.extend(section(10, 3, str_off, shstrtab.len())); // .shstrtab, STRTAB
    elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
    elf[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
    elf[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes());
    elf
}

#[test]
fn reads_modinfo_depends() {
    let elf = fake_module(
        "license=GPL;depends=virtio_ring,virtio,net_failover;name=virtio_net;vermagic=6.1.0-48-amd64 SMP preempt mod_unload modversions ;",
    );
    let info = modinfo("virtio_net.ko", &elf).expect("modinfo");
    assert!(info.contains(&"name=virtio_net".to_string()));
    assert_eq!(
        modinfo_depends("virtio_net.ko", &elf).expect("depends"),
        ["virtio_ring", "virtio", "net_failover"]
    );
    let none = fake_module("depends=;name=failover;");
    assert!(modinfo_depends("failover.ko", &none)
        .expect("depends")
        .is_empty());
    let missing = fake_module("name=odd;");
    assert!(modinfo_depends("odd.ko", &missing).is_err());
    assert!(modinfo("trunc.ko", &elf[..100]).is_err());
}

#[test]
fn synthesized_modules_dep_resolves_like_depmods() {
    // The same graph as DEP, given the way Debian's package gives it: per-module depends= only.
    let depends: BTreeMap<&str, &str> = [
        ("virtio", ""),
        ("virtio_ring", ""),
        ("virtio_pci_legacy_dev", ""),
        ("virtio_pci_modern_dev", ""),
        (
            "virtio_pci",
            "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
        ),
        ("failover", ""),
        ("net_failover", "failover"),
        ("virtio_net", "virtio_ring,virtio,net_failover"),
        ("virtio_console", "virtio,virtio_ring"),
        ("qemu_fw_cfg", ""),
        ("configfs", ""),
        ("tsm", "configfs"),
        ("sev_guest", "tsm"),
        ("tdx_guest", "tsm"),
        ("ena", ""),
        ("gve", ""),
        ("hv_vmbus", ""),
        ("hv_netvsc", "hv_vmbus"),
        ("virtio_blk", "virtio_ring,virtio"),
        ("nvme_auth", ""),
        ("nvme_core", "nvme-auth"),
        ("nvme", "nvme-core"),
        ("scsi_common", ""),
        ("scsi_mod", "scsi_common"),
        ("scsi_transport_fc", "scsi_mod"),
        (
            "hv_storvsc",
            "hv_vmbus,scsi_mod,scsi_transport_fc,scsi_common",
        ),
        ("sd_mod", "scsi_mod,scsi_common"),
        ("ext4", "jbd2,mbcache"),
    ]
    .into_iter()
    .collect();
    let index = index_of(DEP);
    let mut asked = Vec::new();
    let text = synthesize_modules_dep(WANTED, &index, &BTreeSet::new(), |path| {
        asked.push(path.to_string());
        let name = modules::module_name(path);
        Ok(depends[name.as_str()]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    })
    .expect("synthesize");
    assert!(
        !asked.iter().any(|p| p.contains("ext4")),
        "only the wanted closure is read"
    );
    assert!(text.contains(
        "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko kernel/drivers/net/net_failover.ko\n"
    ));
    let dep = ModulesDep::parse(&text).expect("parse synthesized");
    // The wanted modules and the dependencies they pull in (nvme-auth, nvme-core, the SCSI core).
    let closure = WANTED.len() + 5;
    assert_eq!(dep.len(), closure);
    let r = resolve(WANTED, &dep, &BTreeSet::new()).expect("resolve");
    assert_topological(&r.load_order, &dep);
    assert_eq!(r.load_order.len(), closure);

    // A dependency outside the package is an error, not a silent omission.
    let err = synthesize_modules_dep(&["virtio_net"], &index, &BTreeSet::new(), |_| {
        Ok(vec!["not_in_package".to_string()])
    });
    assert!(matches!(err, Err(ModuleError::DanglingDep { .. })));
}

/// Module name → path for every line of a modules.dep text.
fn index_of(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(p, _)| (modules::module_name(p), p.to_string()))
        .collect()
}

#[test]
fn compressed_modules_are_decompressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf = fake_module("depends=;name=x;");
    let plain = dir.path().join("x.ko");
    std::fs::write(&plain, &elf).expect("write");
    for (tool, ext) in [("xz", "xz"), ("zstd", "zst")] {
        let status = std::process::Command::new(tool)
            .args(["--keep", "--force", "--quiet"])
            .arg(&plain)
            .status()
            .unwrap_or_else(|e| panic!("{tool} is needed for this test: {e}"));
        assert!(status.success(), "{tool}");
        let packed = dir.path().join(format!("x.ko.{ext}"));
        assert_ne!(std::fs::read(&packed).expect("read"), elf);
        assert_eq!(
            cdvm_image::deb::read_decompressed(&packed).expect("decompress"),
            elf,
            "{ext}"
        );
    }
}
