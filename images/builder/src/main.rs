//! `cdvm-image`: builds the guest image and prints its expected SEV-SNP launch digests.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use cdvm_image::inputs::Places;
use cdvm_image::lock::InputId;
use cdvm_image::recipe::{self, BuildConfig, BuildOutcome};
use cdvm_image::{CpuModel, Firmware};
use clap::{Parser, Subcommand};

mod cli_inputs;
#[cfg(feature = "publish")]
mod cli_publish;
use cli_inputs::{inputs, load_lock, InputsCommand};

/// ConfidentialDVM guest image recipe.
#[derive(Debug, Parser)]
#[command(name = "cdvm-image", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build vmlinuz, initrd.img, cmdline, OVMF.amdsev.fd, uki.efi, disk.raw and manifest.json
    /// (scripts/build-image runs this with the right inputs).
    Build {
        /// The input lock every input is checked against (a differing one stops the build).
        #[arg(long, default_value = LOCK_DEFAULT)]
        lock: PathBuf,
        /// The Debian kernel package (default: the lock's `kernel`, in target/image-cache/).
        #[arg(long)]
        kernel_deb: Option<PathBuf>,
        /// The AMD-SEV OVMF package (default: the lock's `ovmf-amdsev`, in images/firmware/).
        #[arg(long)]
        ovmf_deb: Option<PathBuf>,
        /// The systemd-boot-efi package whose EFI stub the UKI (uki.efi, and disk.raw's
        /// EFI/BOOT/BOOTX64.EFI) is built on (default: the lock's `efi-stub`, in
        /// target/image-cache/).
        #[arg(long)]
        stub_deb: Option<PathBuf>,
        /// The static agent binary.
        #[arg(long)]
        agent: PathBuf,
        /// The agent's crate version (recorded in the manifest).
        #[arg(long)]
        agent_version: String,
        /// Output folder.
        #[arg(long, default_value = "target/image")]
        out: PathBuf,
        /// The policy whose roots and rules the image policy copies.
        #[arg(long, default_value = "policies/default-snp.yaml")]
        base_policy: PathBuf,
        /// Where to write the image policy.
        #[arg(long, default_value = "policies/image-snp.yaml")]
        policy_out: PathBuf,
        /// A model directory (scripts/fetch-models writes target/models/): its models.json and
        /// exactly the files it lists, each checked against the manifest's SHA-256, go into
        /// /models/ as an uncompressed archive ahead of the gzip one.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Rebuild even when the manifest says nothing changed.
        #[arg(long)]
        force: bool,
    },
    /// Build `uki.efi` and `disk.raw` from an already built image folder (its vmlinuz,
    /// initrd.img, cmdline and the agent version its manifest records), e.g. to compare hashes
    /// with a build elsewhere. `build` does this too.
    Disk {
        /// A folder written by `build`.
        #[arg(long, default_value = "target/image")]
        image: PathBuf,
        /// The input lock whose `efi-stub` pins the stub package.
        #[arg(long, default_value = LOCK_DEFAULT)]
        lock: PathBuf,
        /// The systemd-boot-efi package with the EFI stub (default: the lock's `efi-stub`, in
        /// target/image-cache/).
        #[arg(long)]
        stub_deb: Option<PathBuf>,
        /// Where to write uki.efi and disk.raw (default: the image folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the per-platform policies (image-gcp-tdx.yaml, image-azure-snp.yaml,
    /// image-azure-tdx.yaml, image-aws-snp.yaml, image-gcp-snp.yaml from the UEFI disk's expected
    /// values; image-tdx.yaml from the pinned TDX firmware and shim, which it copies into the
    /// image folder, and the direct-boot files) and the base policies default-snp.yaml and
    /// default-tdx.yaml (scripts/build-image runs this).
    Policies {
        /// A folder written by `build`.
        #[arg(long, default_value = "target/image")]
        image: PathBuf,
        /// The folder with the base policies, where the generated ones go.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The input lock pinning the TDX firmware and shim (image-tdx.yaml).
        #[arg(long, default_value = cdvm_image::lock::LOCK_FILE)]
        lock: PathBuf,
        /// The repository root (the lock's committed paths start here).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The Debian package cache scripts/build-image fetches shim into.
        #[arg(long, default_value = "target/image-cache")]
        cache: PathBuf,
    },
    /// Convert a built image's disk.raw to a cloud's upload format: a fixed VHD for Azure
    /// (`disk.vhd`), `disk.raw` in a GNU tar.gz for GCE (`disk.tar.gz`). AWS imports disk.raw as
    /// it is. Deterministic: the same disk gives the same bytes.
    Export {
        /// A folder written by `build`.
        #[arg(long, default_value = "target/image")]
        image: PathBuf,
        /// `azure` or `gcp`.
        #[arg(long, value_parser = ["azure", "gcp"])]
        cloud: String,
        /// The file to write (default: disk.vhd / disk.tar.gz in the image folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Upload the checked disk to a cloud and register it as a confidential-VM image (AWS: EBS
    /// snapshot + AMI, UEFI and TPM 2.0; GCP: Cloud Storage + image with the confidential guest
    /// OS features; Azure: page blob + gallery image version, ConfidentialVMSupported). Prints
    /// the image as JSON; what a failed publish created is deleted again.
    Publish {
        /// A folder written by `build`.
        #[arg(long, default_value = "target/image")]
        image: PathBuf,
        /// `aws`, `gcp` or `azure`.
        #[arg(long, value_parser = ["aws", "gcp", "azure"])]
        cloud: String,
        /// Where to publish (images/publish/publish.example.yaml shows the keys).
        #[arg(long)]
        config: PathBuf,
    },
    /// The input lock (images/inputs.lock): check the cached inputs, print where one is, list
    /// the Debian packages to fetch, or re-pin one entry (scripts/build-image runs these).
    Inputs {
        /// The lock.
        #[arg(long, default_value = LOCK_DEFAULT, global = true)]
        lock: PathBuf,
        /// The repository root (the lock's paths are relative to it).
        #[arg(long, default_value = ".", global = true)]
        repo: PathBuf,
        /// The package cache (scripts/build-image's).
        #[arg(long, default_value = "target/image-cache", global = true)]
        cache: PathBuf,
        /// The model directory (scripts/fetch-models').
        #[arg(long, default_value = "target/models", global = true)]
        models: PathBuf,
        #[command(subcommand)]
        command: InputsCommand,
    },
    /// Print expected SEV-SNP launch digests, for a built image folder or for given files.
    Measure {
        /// A folder written by `build` (uses its OVMF.amdsev.fd, vmlinuz, initrd.img, cmdline).
        #[arg(long, default_value = "target/image", conflicts_with_all = ["ovmf", "kernel", "initrd", "cmdline"])]
        image: PathBuf,
        /// OVMF image (AMD-SEV build).
        #[arg(long, requires_all = ["kernel", "initrd", "cmdline"])]
        ovmf: Option<PathBuf>,
        /// Kernel file.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Initrd file.
        #[arg(long)]
        initrd: Option<PathBuf>,
        /// Kernel command line, exactly as given to -append.
        #[arg(long)]
        cmdline: Option<String>,
        /// vCPU counts (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', default_values_t = recipe::DIGEST_VCPUS)]
        vcpus: Vec<u32>,
        /// vCPU models: milan, genoa (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', default_values = ["milan", "genoa"])]
        cpu: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Where the lock is, relative to the repository root (the scripts run from there).
const LOCK_DEFAULT: &str = cdvm_image::lock::LOCK_FILE;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build {
            lock,
            kernel_deb,
            ovmf_deb,
            stub_deb,
            agent,
            agent_version,
            out,
            base_policy,
            policy_out,
            models,
            force,
        } => {
            let started = Instant::now();
            // Defaults: where the lock says each input is (the script passes them explicitly).
            let pins = load_lock(&lock)?;
            let places = Places::under(std::path::Path::new("."));
            let or_pinned =
                |given: Option<PathBuf>, id| given.unwrap_or_else(|| places.path(&pins, id));
            let cfg = BuildConfig {
                kernel_deb: or_pinned(kernel_deb, InputId::Kernel),
                ovmf_deb: or_pinned(ovmf_deb, InputId::OvmfAmdsev),
                stub_deb: or_pinned(stub_deb, InputId::EfiStub),
                lock,
                agent,
                agent_version,
                out_dir: out.clone(),
                base_policy: Some(base_policy),
                policy_out: Some(policy_out.clone()),
                models,
                force,
            };
            let mut progress = |line: &str| {
                println!(
                    "[cdvm-image {:5.1}s] {line}",
                    started.elapsed().as_secs_f64()
                )
            };
            let outcome = recipe::build(&cfg, &mut progress).context("building the image")?;
            let m = outcome.manifest();
            let verb = match outcome {
                BuildOutcome::Built(_) => "built",
                BuildOutcome::UpToDate(_) => "up to date",
            };
            println!(
                "[cdvm-image] {} {verb} in {:.1} s: kernel {} {}, {} modules, cmdline {:?}",
                out.display(),
                started.elapsed().as_secs_f64(),
                m.inputs.kernel_deb.package,
                m.inputs.kernel_deb.version,
                m.modules.load_order.len(),
                m.cmdline
            );
            match &m.inputs.models {
                Some(models) => {
                    for model in &models.models {
                        println!(
                            "[cdvm-image]   /models/{:<32} {:>11} bytes  sha256 {}  ({})",
                            model.file, model.size, model.sha256, model.name
                        );
                    }
                }
                None => {
                    println!("[cdvm-image]   no models (/models absent; --models DIR adds them)")
                }
            }
            for (name, rec) in &m.outputs {
                println!(
                    "[cdvm-image]   {name:<16} {:>11} bytes  sha256 {}",
                    rec.size, rec.sha256
                );
            }
            println!(
                "[cdvm-image] SEV-SNP launch digests (guest features {}):",
                m.snp.guest_features
            );
            for d in &m.snp.digests {
                println!(
                    "[cdvm-image]   {:<10} {} vCPU  {}",
                    d.cpu, d.vcpus, d.measurement
                );
            }
            if let Some(u) = &m.uefi {
                println!(
                    "[cdvm-image] UEFI disk: GPT {}, ESP {} at LBA {} ({} sectors, FAT32, {}-byte clusters), UKI at byte {}",
                    u.disk.disk_guid,
                    u.disk.esp_guid,
                    u.disk.esp_first_lba,
                    u.disk.esp_sectors,
                    u.disk.esp_cluster_bytes,
                    u.disk.uki_offset
                );
            }
            println!("[cdvm-image] image policy: {}", policy_out.display());
        }
        Command::Disk {
            image,
            lock,
            stub_deb,
            out,
        } => {
            let pins = load_lock(&lock)?;
            let stub_deb = stub_deb.unwrap_or_else(|| {
                Places::under(std::path::Path::new(".")).path(&pins, InputId::EfiStub)
            });
            let started = Instant::now();
            let (_, manifest) = read_manifest(&image)?;
            let work = tempfile::tempdir().context("temporary folder")?;
            let stub =
                cdvm_image::uki::extract_stub(&stub_deb, &pins.efi_stub.sha256, work.path())?;
            let out = out.unwrap_or_else(|| image.clone());
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let built = recipe::build_uefi(
                &stub,
                &manifest.inputs.agent.version,
                &image.join(recipe::VMLINUZ),
                &image.join(recipe::INITRD),
                &manifest.cmdline,
                &out,
            )?;
            for s in &built.uki.layout.sections {
                println!(
                    "[cdvm-image]   {:<9} rva {:#010x} file {:#010x} size {:>10}",
                    s.name, s.virtual_address, s.file_offset, s.virtual_size
                );
            }
            println!(
                "[cdvm-image] {} {:>11} bytes  sha256 {}",
                recipe::UKI_FILE,
                built.uki.size,
                built.uki.sha256
            );
            println!(
                "[cdvm-image] {} {:>11} bytes  sha256 {}  ({:.1} s)",
                recipe::DISK_FILE,
                built.disk.size,
                built.disk.sha256,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Export { image, cloud, out } => {
            let started = Instant::now();
            let raw = image.join(recipe::DISK_FILE);
            let out = match (cloud.as_str(), out) {
                (_, Some(out)) => out,
                ("azure", None) => image.join("disk.vhd"),
                (_, None) => image.join("disk.tar.gz"),
            };
            if cloud == "azure" {
                cdvm_image::vhd::write_file(&raw, &out)?;
            } else {
                cdvm_image::gce_tar::write_file(&raw, &out)?;
            }
            let bytes =
                std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
            println!(
                "[cdvm-image] {cloud}: {} {} bytes  sha256 {}  ({:.1} s)",
                out.display(),
                bytes.len(),
                cdvm_image::deb::sha256_hex(&bytes),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Publish {
            image,
            cloud,
            config,
        } => {
            #[cfg(feature = "publish")]
            {
                let cloud = match cloud.as_str() {
                    "aws" => cdvm_publish::Cloud::Aws,
                    "gcp" => cdvm_publish::Cloud::Gcp,
                    _ => cdvm_publish::Cloud::Azure,
                };
                cli_publish::publish(&image, cloud, &config)?;
            }
            #[cfg(not(feature = "publish"))]
            anyhow::bail!(
                "this cdvm-image was built without publishing ({cloud}, {}, {}): run `cargo run -p cdvm-image -- publish …` (the default features)",
                image.display(),
                config.display()
            );
        }
        Command::Policies {
            image,
            policies,
            lock,
            repo,
            cache,
        } => {
            let (manifest_path, manifest) = read_manifest(&image)?;
            let uefi = manifest.uefi.as_ref().with_context(|| {
                format!(
                    "{} records no UEFI disk: run scripts/build-image",
                    manifest_path.display()
                )
            })?;
            let read = |name: &str| {
                let path = policies.join(name);
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))
            };
            let uki = manifest.outputs.get(recipe::UKI_FILE).with_context(|| {
                format!(
                    "{} records no {}",
                    manifest_path.display(),
                    recipe::UKI_FILE
                )
            })?;
            let source = format!(
                "{}: uki.efi sha256 {} (initrd.img sha256 {})",
                manifest.builder,
                uki.sha256,
                manifest
                    .outputs
                    .get(recipe::INITRD)
                    .map_or("?", |r| r.sha256.as_str())
            );
            let e = &uefi.expected;
            println!(
                "[cdvm-image] UKI Authenticode sha256 {}",
                e.authenticode_sha256
            );
            println!(
                "[cdvm-image] UKI Authenticode sha384 {}",
                e.authenticode_sha384
            );
            println!(
                "[cdvm-image] vTPM PCR4 {}  PCR11 {}  PCR12 {}",
                e.pcr4, e.pcr11, e.pcr12
            );
            let (pins, _) = cdvm_image::lock::Lock::load(&lock)?;
            let places = Places {
                models: repo.join("target/models"),
                repo,
                cache,
            };
            let tdx = cdvm_image::tdx_direct::prepare(&image, &pins, &places)
                .context("computing the QEMU TDX expected values")?;
            println!(
                "[cdvm-image] QEMU TDX: MRTD {}  CFV {}  shim {}  kernel {}",
                tdx.mrtd, tdx.cfv, tdx.shim, tdx.kernel
            );
            // MRTD covers the firmware alone.
            let tdx_source = format!(
                "{}: {} {}",
                manifest.builder, pins.ovmf_inteltdx.package, pins.ovmf_inteltdx.version
            );
            let mut all = cdvm_image::platform_policy::all(
                &read("default-snp.yaml")?,
                &read("default-tdx.yaml")?,
                e,
                &source,
            )?;
            all.push(cdvm_image::platform_policy::qemu_tdx(
                &read("default-tdx.yaml")?,
                &tdx,
                &tdx_source,
            )?);
            for generated in all {
                let path = policies.join(generated.file);
                if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.text.as_str()) {
                    std::fs::write(&path, &generated.text)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                println!("[cdvm-image] platform policy: {}", path.display());
            }
        }
        Command::Inputs {
            lock,
            repo,
            cache,
            models,
            command,
        } => inputs(
            lock,
            Places {
                repo,
                cache,
                models,
            },
            command,
        )?,
        Command::Measure {
            image,
            ovmf,
            kernel,
            initrd,
            cmdline,
            vcpus,
            cpu,
            json,
        } => {
            let (ovmf, kernel, initrd, cmdline) = match (ovmf, kernel, initrd, cmdline) {
                (Some(o), Some(k), Some(i), Some(c)) => (o, k, i, c),
                _ => {
                    let cmdline_path = image.join(recipe::CMDLINE_FILE);
                    let cmdline = std::fs::read_to_string(&cmdline_path).with_context(|| {
                        format!(
                            "reading {} (run scripts/build-image, or give --ovmf --kernel --initrd --cmdline)",
                            cmdline_path.display()
                        )
                    })?;
                    (
                        image.join(recipe::OVMF_FILE),
                        image.join(recipe::VMLINUZ),
                        image.join(recipe::INITRD),
                        cmdline,
                    )
                }
            };
            let cpus = cpu
                .iter()
                .map(|c| {
                    CpuModel::parse(c)
                        .with_context(|| format!("unknown vCPU model {c:?} (milan, genoa)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let started = Instant::now();
            let fw = Firmware::load(&ovmf)?;
            let loaded = started.elapsed();
            let mut rows = Vec::new();
            for cpu in &cpus {
                for n in &vcpus {
                    let d = fw.launch_digest(&kernel, &initrd, &cmdline, *n, *cpu)?;
                    rows.push(serde_json::json!({
                        "cpu": cpu.qemu_name(),
                        "vcpus": n,
                        "measurement": hex::encode(d),
                    }));
                }
            }
            let took = started.elapsed();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "ovmf": ovmf.display().to_string(),
                        "kernel": kernel.display().to_string(),
                        "initrd": initrd.display().to_string(),
                        "cmdline": cmdline,
                        "guest_features": format!("{:#x}", cdvm_image::GUEST_FEATURES),
                        "digests": rows,
                    }))?
                );
            } else {
                for r in &rows {
                    println!(
                        "{:<10} {} vCPU  {}",
                        r["cpu"].as_str().unwrap_or_default(),
                        r["vcpus"],
                        r["measurement"].as_str().unwrap_or_default()
                    );
                }
                eprintln!(
                    "(guest features {:#x}; OVMF pages hashed in {:.0} ms, then {} digest(s) in {:.0} ms)",
                    cdvm_image::GUEST_FEATURES,
                    loaded.as_secs_f64() * 1000.0,
                    rows.len(),
                    (took - loaded).as_secs_f64() * 1000.0,
                );
            }
        }
    }
    Ok(())
}

/// The manifest of a built image folder, with its path (for messages).
fn read_manifest(
    image: &std::path::Path,
) -> anyhow::Result<(PathBuf, cdvm_image::manifest::Manifest)> {
    let path = image.join(recipe::MANIFEST);
    let manifest = cdvm_image::manifest::Manifest::from_json(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    Ok((path, manifest))
}
