//! The exact QEMU command lines, per acceleration and secure processor. The SEV-SNP and TDX lines
//! cannot boot here (no such hardware, and Debian's QEMU 7.2 lacks the objects), so they are
//! checked argument by argument against QEMU's documentation instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cdvm_provider_qemu::argv::{build, to_strings, VmArgs, VmBoot};
use cdvm_provider_qemu::{Accel, CpuModel, GuestImage, TdxBoot, TeeMode};

fn image() -> GuestImage {
    GuestImage {
        kernel: PathBuf::from("/img/vmlinuz"),
        initrd: PathBuf::from("/img/initrd.img"),
        cmdline: "console=ttyS0 panic=-1 quiet".into(),
        ovmf: PathBuf::from("/img/OVMF.amdsev.fd"),
        tdx: Some(TdxBoot {
            tdvf: PathBuf::from("/img/OVMF.inteltdx.fd"),
            shim: PathBuf::from("/img/shimx64.efi"),
        }),
    }
}

fn vm() -> VmArgs<'static> {
    VmArgs {
        name: "cdvm-qemu-0011223344556677",
        vcpus: 2,
        memory_mib: 1024,
        bootstrap: Path::new("/vm/bootstrap.json"),
        console: Path::new("/vm/console.log"),
        sp_socket: Path::new("/vm/sp.sock"),
        boot: VmBoot::Direct,
    }
}

fn disk_vm() -> VmArgs<'static> {
    VmArgs {
        boot: VmBoot::Disk {
            code: Path::new("/fw/OVMF_CODE_4M.fd"),
            vars: Path::new("/vm/OVMF_VARS_4M.fd"),
            disk: Path::new("/img/disk.raw"),
        },
        ..vm()
    }
}

fn line(accel: Accel, tee: TeeMode) -> String {
    to_strings(&build(&image(), accel, tee, CpuModel::Milan, &vm())).join(" ")
}

const COMMON_TAIL: &str = "-smp 2 -m 1024M -kernel /img/vmlinuz -initrd /img/initrd.img \
-append console=ttyS0 panic=-1 quiet -serial file:/vm/console.log -netdev user,id=net0 \
-device virtio-net-pci,netdev=net0,romfile= -fw_cfg name=opt/cdvm/bootstrap,file=/vm/bootstrap.json";

#[test]
fn simulated_tee_under_tcg() {
    assert_eq!(
        line(Accel::Tcg, TeeMode::Sim),
        format!(
            "-name cdvm-qemu-0011223344556677 -nodefaults -nographic -no-user-config -no-reboot \
-machine q35,accel=tcg -cpu max {COMMON_TAIL} -fw_cfg name=opt/cdvm/tee,string=sim \
-fw_cfg name=opt/cdvm/dev-blossom,string=loopback-via-gateway -device virtio-serial-pci -chardev socket,id=simsp,path=/vm/sp.sock \
-device virtserialport,chardev=simsp,name=cdvm.sim-sp"
        )
    );
}

#[test]
fn simulated_tee_under_kvm_uses_the_measured_cpu_model() {
    let l = line(Accel::Kvm, TeeMode::Sim);
    assert!(l.contains("-machine q35,accel=kvm -cpu EPYC-Milan "), "{l}");
}

#[test]
fn sev_snp_guest_with_measured_direct_boot() {
    // docs/system/i386/amd-memory-encryption.rst: memfd backend, sev-snp-guest object,
    // kernel-hashes=on so OVMF measures kernel, initrd and command line; the AMD SEV OVMF as BIOS.
    assert_eq!(
        line(Accel::Kvm, TeeMode::SevSnp),
        format!(
            "-name cdvm-qemu-0011223344556677 -nodefaults -nographic -no-user-config -no-reboot \
-machine q35,accel=kvm,confidential-guest-support=sev0,memory-backend=ram0 \
-object memory-backend-memfd,id=ram0,size=1024M,share=true \
-object sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on \
-cpu EPYC-Milan -bios /img/OVMF.amdsev.fd {COMMON_TAIL} -fw_cfg name=opt/cdvm/tee,string=sev-snp"
        )
    );
}

#[test]
fn tdx_guest() {
    // docs/system/i386/tdx.rst: tdx-guest object, split irqchip.
    assert_eq!(
        line(Accel::Kvm, TeeMode::Tdx),
        format!(
            "-name cdvm-qemu-0011223344556677 -nodefaults -nographic -no-user-config -no-reboot \
-machine q35,accel=kvm,kernel-irqchip=split,confidential-guest-support=tdx0 \
-object tdx-guest,id=tdx0 -cpu host -bios /img/OVMF.inteltdx.fd -shim /img/shimx64.efi \
{COMMON_TAIL} -fw_cfg name=opt/cdvm/tee,string=tdx"
        )
    );
}

#[test]
fn only_the_simulated_mode_gets_the_host_side_secure_processor() {
    for tee in [TeeMode::SevSnp, TeeMode::Tdx] {
        let l = line(Accel::Kvm, tee);
        assert!(
            !l.contains("simsp"),
            "{tee:?} must not expose a simulator: {l}"
        );
    }
}

#[test]
fn uefi_disk_boot_under_tcg() {
    let l = to_strings(&build(
        &image(),
        Accel::Tcg,
        TeeMode::Sim,
        CpuModel::Milan,
        &disk_vm(),
    ))
    .join(" ");
    assert_eq!(
        l,
        "-name cdvm-qemu-0011223344556677 -nodefaults -nographic -no-user-config -no-reboot \
-machine q35,accel=tcg -cpu max -smp 2 -m 1024M \
-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/OVMF_CODE_4M.fd \
-drive if=pflash,format=raw,unit=1,file=/vm/OVMF_VARS_4M.fd \
-drive if=none,id=disk0,format=raw,readonly=on,file=/img/disk.raw -device virtio-blk-pci,drive=disk0 \
-serial file:/vm/console.log -netdev user,id=net0 \
-device virtio-net-pci,netdev=net0,romfile= -fw_cfg name=opt/cdvm/bootstrap,file=/vm/bootstrap.json \
-fw_cfg name=opt/cdvm/tee,string=sim \
-fw_cfg name=opt/cdvm/dev-blossom,string=loopback-via-gateway -device virtio-serial-pci -chardev socket,id=simsp,path=/vm/sp.sock \
-device virtserialport,chardev=simsp,name=cdvm.sim-sp"
    );
}

#[test]
fn the_disk_boot_loads_no_kernel_and_writes_neither_the_image_nor_the_firmware() {
    for tee in [TeeMode::Sim, TeeMode::SevSnp, TeeMode::Tdx] {
        let args = to_strings(&build(
            &image(),
            Accel::Kvm,
            tee,
            CpuModel::Milan,
            &disk_vm(),
        ));
        for flag in ["-kernel", "-initrd", "-append", "-bios"] {
            assert!(
                !args.iter().any(|a| a == flag),
                "{tee:?}: {flag} in {args:?}"
            );
        }
        // Every drive naming a shared file is read-only; the only writable one is the VM's copy
        // of the variable store.
        let drives: Vec<&String> = args
            .iter()
            .zip(args.iter().skip(1))
            .filter(|(flag, _)| *flag == "-drive")
            .map(|(_, value)| value)
            .collect();
        assert_eq!(drives.len(), 3, "{drives:?}");
        for d in &drives {
            let opts: Vec<&str> = d.split(',').collect();
            let writable = !opts.contains(&"readonly=on");
            let vars = opts.contains(&"file=/vm/OVMF_VARS_4M.fd");
            assert_eq!(
                writable, vars,
                "{tee:?}: only the VM's own vars are writable: {d}"
            );
            assert!(!opts.contains(&"snapshot=off"), "{d}");
        }
        assert!(
            drives
                .iter()
                .any(|d| d.contains("readonly=on") && d.ends_with("file=/img/disk.raw")),
            "{drives:?}"
        );
    }
}
