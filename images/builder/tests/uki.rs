//! The UKI: Debian's pinned systemd-stub with `.osrel`, `.cmdline`, `.initrd` and `.linux`
//! appended. binutils' `objdump -h` reads the result back; every section holds exactly its
//! input; the same inputs give the same bytes; and malformed stubs are refused (truncated, not
//! PE, no room for the section headers, signed, already a UKI), each next to its positive twin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use cdvm_image::pe::{PeError, PeLayout};
use cdvm_image::uki::{self, UkiError, UkiInputs, SECTION_ORDER};
use cdvm_image::CMDLINE;

struct Inputs {
    _dir: tempfile::TempDir,
    kernel: std::path::PathBuf,
    initrd: std::path::PathBuf,
}

fn inputs(kernel_len: usize, initrd_len: usize) -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initrd.img");
    std::fs::write(&kernel, common::noise(kernel_len, 1)).unwrap();
    std::fs::write(&initrd, common::noise(initrd_len, 2)).unwrap();
    Inputs {
        _dir: dir,
        kernel,
        initrd,
    }
}

fn build(stub: &[u8], i: &Inputs, out: &Path) -> uki::UkiWritten {
    let osrel = uki::os_release("9.9.9");
    uki::write_file(
        &UkiInputs {
            stub,
            os_release: &osrel,
            cmdline: CMDLINE,
            kernel: &i.kernel,
            initrd: &i.initrd,
        },
        out,
    )
    .expect("build the UKI")
}

#[test]
fn objdump_sees_the_four_sections_with_their_inputs_and_sizes() {
    let stub = common::stub();
    let i = inputs(3_000_001, 5_000_003);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("uki.efi");
    let written = build(&stub, &i, &out);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len() as u64, written.size);
    assert_eq!(deb_sha(&bytes), written.sha256);

    // The stub is unchanged apart from its headers.
    let pe = PeLayout::parse(&stub).unwrap();
    let first = pe.sections[0].pointer_to_raw_data as usize;
    assert_eq!(bytes[first..stub.len()], stub[first..], "stub body moved");

    let expected: [(&str, Vec<u8>); 4] = [
        (".osrel", uki::os_release("9.9.9").into_bytes()),
        // Exactly the direct boot's command line: systemd-stub adds the NUL itself.
        (".cmdline", CMDLINE.as_bytes().to_vec()),
        (".initrd", std::fs::read(&i.initrd).unwrap()),
        (".linux", std::fs::read(&i.kernel).unwrap()),
    ];
    let seen = common::objdump_sections(&out);
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names[names.len() - 4..],
        SECTION_ORDER,
        "objdump -h lists {names:?}"
    );
    for (name, content) in &expected {
        let (_, size, vma, off) = seen.iter().find(|s| s.0 == *name).unwrap();
        assert_eq!(*size, content.len() as u64, "{name}: objdump size");
        let placed = written
            .layout
            .sections
            .iter()
            .find(|s| s.name == *name)
            .unwrap();
        assert_eq!(*vma, u64::from(placed.virtual_address), "{name}: VMA");
        assert_eq!(*off, u64::from(placed.file_offset), "{name}: file offset");
        assert_eq!(
            &bytes[*off as usize..][..content.len()],
            &content[..],
            "{name}: content"
        );
        assert_eq!(placed.virtual_address % 4096, 0, "{name}: page aligned");
        assert_eq!(
            placed.file_offset % pe.file_alignment,
            0,
            "{name}: file aligned"
        );
    }

    // The UKI parses as a PE image whose headers account for the new sections.
    let out_pe = PeLayout::parse(&bytes).expect("the UKI is a valid PE image");
    assert_eq!(out_pe.sections.len(), pe.sections.len() + 4);
    let last = written.layout.sections.last().unwrap();
    assert_eq!(
        u64::from(out_pe.size_of_image),
        (u64::from(last.virtual_address) + u64::from(last.virtual_size))
            .div_ceil(u64::from(pe.section_alignment))
            * u64::from(pe.section_alignment)
    );
    let added: u32 = written
        .layout
        .sections
        .iter()
        .map(|s| s.size_of_raw_data)
        .sum();
    assert_eq!(
        out_pe.size_of_initialized_data,
        pe.size_of_initialized_data + added
    );
    // Sections do not overlap, in the file or in memory.
    let mut spans: Vec<_> = out_pe
        .sections
        .iter()
        .map(|s| (s.virtual_address, s.virtual_address + s.virtual_size.max(1)))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
}

fn deb_sha(bytes: &[u8]) -> String {
    cdvm_image::deb::sha256_hex(bytes)
}

#[test]
fn the_same_inputs_give_the_same_uki_and_another_kernel_another() {
    let stub = common::stub();
    let i = inputs(100_000, 200_000);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wa = build(&stub, &i, &a.path().join("uki.efi"));
    let wb = build(&stub, &i, &b.path().join("uki.efi"));
    assert_eq!(wa, wb);
    assert!(
        std::fs::read(a.path().join("uki.efi")).unwrap()
            == std::fs::read(b.path().join("uki.efi")).unwrap()
    );

    // Tamper twin: one changed kernel byte changes the UKI.
    let mut kernel = std::fs::read(&i.kernel).unwrap();
    kernel[1234] ^= 1;
    std::fs::write(&i.kernel, kernel).unwrap();
    let wc = build(&stub, &i, &b.path().join("uki.efi"));
    assert_ne!(wa.sha256, wc.sha256);
    assert_eq!(wa.layout, wc.layout, "same sizes, same layout");
}

fn small_layout(stub: &[u8]) -> Result<uki::UkiLayout, UkiError> {
    uki::layout(
        stub,
        &[
            (".osrel", 10),
            (".cmdline", 5),
            (".initrd", 9),
            (".linux", 7),
        ],
    )
}

#[test]
fn a_truncated_or_non_pe_stub_is_refused() {
    let stub = common::stub();
    assert!(small_layout(&stub).is_ok(), "the whole stub is accepted");
    let pe = PeLayout::parse(&stub).unwrap();
    // Cut inside the DOS header, the PE headers, the section table, and a section's data.
    for cut in [
        0,
        0x20,
        0x90,
        pe.section_table_offset + 10,
        stub.len() - 20_000,
    ] {
        match small_layout(&stub[..cut]) {
            Err(UkiError::Stub {
                source: PeError::Truncated { .. },
            }) => {}
            other => panic!("stub cut at {cut}: {other:?}"),
        }
    }
    // Not PE: an ELF file (the package's own linuxx64.elf.stub starts with \x7fELF), and a PE
    // header whose signature is broken.
    let mut elf = stub.clone();
    elf[..4].copy_from_slice(b"\x7fELF");
    assert!(matches!(
        small_layout(&elf),
        Err(UkiError::Stub {
            source: PeError::BadMagic { .. }
        })
    ));
    let mut no_pe = stub.clone();
    let lfanew = u32::from_le_bytes(stub[0x3c..0x40].try_into().unwrap()) as usize;
    no_pe[lfanew] = b'X';
    let err = small_layout(&no_pe).unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(matches!(
        err,
        UkiError::Stub {
            source: PeError::BadMagic { .. }
        }
    ));
    // A PE32 (32-bit) image and another machine are refused, not misread.
    let mut pe32 = stub.clone();
    pe32[pe.opt_offset] = 0x0b;
    pe32[pe.opt_offset + 1] = 0x01;
    assert!(matches!(
        small_layout(&pe32),
        Err(UkiError::Stub {
            source: PeError::Unsupported { .. }
        })
    ));
    let mut arm = stub.clone();
    arm[pe.coff_offset..pe.coff_offset + 2].copy_from_slice(&0xaa64u16.to_le_bytes());
    assert!(matches!(
        small_layout(&arm),
        Err(UkiError::Stub {
            source: PeError::Unsupported { .. }
        })
    ));
}

#[test]
fn a_stub_without_room_for_four_section_headers_is_refused() {
    let stub = common::stub();
    let pe = PeLayout::parse(&stub).unwrap();
    assert!(
        pe.header_room() >= 4,
        "the real stub has room: {}",
        pe.header_room()
    );
    let table_end = pe.section_table_offset + pe.sections.len() * 40;
    let size_of_headers = pe.opt_offset + 60;
    // Room for three headers only.
    let mut tight = stub.clone();
    tight[size_of_headers..size_of_headers + 4]
        .copy_from_slice(&(table_end as u32 + 3 * 40).to_le_bytes());
    match small_layout(&tight) {
        Err(UkiError::NoHeaderRoom { room: 3, needed: 4 }) => {}
        other => panic!("{other:?}"),
    }
    // Room for exactly four: accepted.
    tight[size_of_headers..size_of_headers + 4]
        .copy_from_slice(&(table_end as u32 + 4 * 40).to_le_bytes());
    assert!(small_layout(&tight).is_ok());
}

#[test]
fn a_signed_stub_or_a_uki_is_refused_as_a_stub() {
    let stub = common::stub();
    let pe = PeLayout::parse(&stub).unwrap();
    // The certificate table is data directory 4.
    let mut signed = stub.clone();
    let at = pe.opt_offset + 112 + 4 * 8;
    signed[at..at + 8].copy_from_slice(&[0x00, 0x50, 0x01, 0, 0x10, 0, 0, 0]);
    let err = small_layout(&signed).unwrap_err();
    assert!(err.to_string().contains("refused"));
    assert!(format!("{:?}", err).contains("signed"), "{err:?}");

    let i = inputs(1000, 1000);
    let dir = tempfile::tempdir().unwrap();
    build(&stub, &i, &dir.path().join("uki.efi"));
    let uki_bytes = std::fs::read(dir.path().join("uki.efi")).unwrap();
    match small_layout(&uki_bytes) {
        Err(UkiError::DuplicateSection { name }) => assert_eq!(name, ".osrel"),
        other => panic!("{other:?}"),
    }
}
