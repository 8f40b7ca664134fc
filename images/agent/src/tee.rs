//! Choosing the attester. Always explicit: `--tee` (or fw_cfg `opt/cdvm/tee` in the image) names
//! it, `auto` accepts exactly one detected real interface and says which, and nothing ever falls
//! back to the simulated secure processor.

use std::path::{Path, PathBuf};

use anyhow::bail;
use cdvm_attestation::snp::{SevGuestAttester, SEV_GUEST_DEVICE};
use cdvm_attestation::tsm::{TsmAttester, TsmReportClient};
use cdvm_attestation::Attester;

/// Where and how to look for the real interfaces.
#[derive(Clone, Debug)]
pub(crate) struct HardwareOptions {
    /// The configfs-tsm report directory.
    pub tsm_root: PathBuf,
    /// SEV-SNP: the VMPL to request reports at.
    pub vmpl: u32,
}

/// A real SEV-SNP attester: configfs-tsm when the kernel has it, else `/dev/sev-guest`.
pub(crate) fn sev_snp(opts: &HardwareOptions) -> anyhow::Result<Box<dyn Attester>> {
    if TsmReportClient::new(&opts.tsm_root).present() {
        tracing::info!(root = %opts.tsm_root.display(), "SEV-SNP evidence through configfs-tsm");
        return Ok(Box::new(TsmAttester::sev_snp(&opts.tsm_root, opts.vmpl)));
    }
    if Path::new(SEV_GUEST_DEVICE).exists() {
        tracing::info!(
            "SEV-SNP evidence through {SEV_GUEST_DEVICE} (no configfs-tsm in this kernel)"
        );
        return Ok(Box::new(SevGuestAttester::new(opts.vmpl)));
    }
    bail!(
        "no SEV-SNP interface: neither configfs-tsm ({}) nor {SEV_GUEST_DEVICE} exists",
        opts.tsm_root.display()
    )
}

/// A real TDX attester (configfs-tsm only: the legacy `/dev/tdx_guest` quote path needs a
/// host quoting service that this agent does not speak).
pub(crate) fn tdx(opts: &HardwareOptions) -> anyhow::Result<Box<dyn Attester>> {
    if !TsmReportClient::new(&opts.tsm_root).present() {
        bail!(
            "no TDX interface: configfs-tsm ({}) does not exist (needs Linux >= 6.7 with tdx-guest)",
            opts.tsm_root.display()
        );
    }
    tracing::info!(root = %opts.tsm_root.display(), "TDX evidence through configfs-tsm");
    Ok(Box::new(TsmAttester::tdx(&opts.tsm_root)))
}

/// `--tee auto`: the one real interface present, named on stderr; an error when there is none
/// or the provider is unknown. Never the simulator.
pub(crate) fn auto(opts: &HardwareOptions) -> anyhow::Result<Box<dyn Attester>> {
    let client = TsmReportClient::new(&opts.tsm_root);
    if client.present() {
        match client.provider()?.as_deref() {
            Some("sev_guest") => {
                eprintln!("--tee auto: SEV-SNP through configfs-tsm ({})", opts.tsm_root.display());
                return Ok(Box::new(TsmAttester::sev_snp(&opts.tsm_root, opts.vmpl)));
            }
            Some("tdx_guest") => {
                eprintln!("--tee auto: TDX through configfs-tsm ({})", opts.tsm_root.display());
                return Ok(Box::new(TsmAttester::tdx(&opts.tsm_root)));
            }
            Some(other) => bail!("--tee auto: configfs-tsm provider `{other}` is not one this agent knows; pass --tee"),
            // The directory exists but no provider: look for the device.
            None => {}
        }
    }
    if Path::new(SEV_GUEST_DEVICE).exists() {
        eprintln!("--tee auto: SEV-SNP through {SEV_GUEST_DEVICE}");
        return Ok(Box::new(SevGuestAttester::new(opts.vmpl)));
    }
    bail!(
        "--tee auto found no real TEE interface (configfs-tsm at {} with a provider, or {SEV_GUEST_DEVICE}); \
         pass --tee explicitly (the simulator is never chosen automatically)",
        opts.tsm_root.display()
    )
}

/// The vTPM device a cloud VM's kernel exposes (the resource-managed one).
const TPM_DEVICE: &str = "/dev/tpmrm0";

/// On a cloud whose vTPM pins the image for SEV-SNP (`image_binding: cloud-vtpm`), the SNP
/// evidence also carries the vTPM's part: on GCE, a quote by the Shielded VM AK with its
/// certificate. AWS's NitroTPM vouches through an attestation document, which this agent does not
/// collect yet: it says so, and policies requiring the part refuse the evidence.
pub(crate) fn with_cloud_vtpm(
    inner: Box<dyn Attester>,
    cloud: cdvm_protocol::bootstrap::metadata::MetadataService,
) -> anyhow::Result<Box<dyn Attester>> {
    use cdvm_protocol::bootstrap::metadata::MetadataService;
    if inner.tee() != cdvm_attestation::TeeKind::SevSnp {
        return Ok(inner);
    }
    match cloud {
        MetadataService::Gcp if Path::new(TPM_DEVICE).exists() => {
            use anyhow::Context;
            let transport = cdvm_attestation::azure::tpm_client::DeviceTransport::open(TPM_DEVICE)
                .with_context(|| format!("gce vtpm: opening {TPM_DEVICE}"))?;
            tracing::info!(
                tpm = TPM_DEVICE,
                "GCE: SEV-SNP evidence plus the Shielded VM vTPM's quote and AK certificate \
                 (image_binding: cloud-vtpm)"
            );
            Ok(Box::new(
                cdvm_attestation::cloud_vtpm::GceVtpmAttester::new(inner, transport),
            ))
        }
        MetadataService::Gcp => {
            tracing::warn!(
                "GCE without {TPM_DEVICE}: plain SEV-SNP evidence, which cloud-vtpm policies refuse"
            );
            Ok(inner)
        }
        MetadataService::Aws => {
            tracing::warn!(
                "AWS: NitroTPM evidence is not collected (not built): plain SEV-SNP evidence, \
                 which cloud-vtpm policies (image-aws-snp.yaml) refuse"
            );
            Ok(inner)
        }
        // Azure's vTPM evidence comes from its own attester (`--tee azure-*-vtpm`).
        MetadataService::Azure => Ok(inner),
    }
}

/// Where the Azure vTPM and IMDS are (real CVM: `/dev/tpmrm0` and 169.254.169.254).
#[derive(Clone, Debug)]
pub(crate) struct AzureOptions {
    /// `/dev/tpmrm0`, or `unix:<path>` for a TPM command socket (swtpm behind the emulated
    /// paravisor).
    pub tpm: String,
    /// IMDS address, `host:port`.
    pub imds: std::net::SocketAddr,
}

/// An Azure confidential VM's vTPM attester (SEV-SNP or TDX underneath).
pub(crate) fn azure(opts: &AzureOptions, tdx: bool) -> anyhow::Result<Box<dyn Attester>> {
    use anyhow::Context;
    use cdvm_attestation::azure::imds::HttpImds;
    use cdvm_attestation::azure::tpm_client::{DeviceTransport, SocketTransport};
    use cdvm_attestation::azure::AzureVtpmAttester;
    let imds = HttpImds::new(opts.imds);
    let attester = match opts.tpm.strip_prefix("unix:") {
        Some(path) => {
            let transport = SocketTransport::unix(path);
            if tdx {
                AzureVtpmAttester::tdx(transport, imds)
            } else {
                AzureVtpmAttester::new(transport, imds)
            }
        }
        None => {
            let transport = DeviceTransport::open(&opts.tpm)
                .with_context(|| format!("vtpm: opening {}", opts.tpm))?;
            if tdx {
                AzureVtpmAttester::tdx(transport, imds)
            } else {
                AzureVtpmAttester::new(transport, imds)
            }
        }
    };
    tracing::info!(tpm = %opts.tpm, imds = %opts.imds, tdx, "Azure vTPM evidence (paravisor HCL report + TPM quote)");
    Ok(Box::new(attester))
}

/// Wraps a CPU attester: after its evidence, collects every GPU's evidence through NVML bound to
/// the same report data, verifies it here and sets the GPUs ready (CUDA refuses work before),
/// and attaches it. A GPU failure fails the whole attestation: no partial evidence leaves.
pub(crate) struct WithGpus {
    pub inner: Box<dyn Attester>,
    pub nvml_lib: Option<PathBuf>,
    pub policy: cdvm_attestation::nvidia::GpuPolicy,
}

impl Attester for WithGpus {
    fn tee(&self) -> cdvm_attestation::TeeKind {
        self.inner.tee()
    }

    fn interface(&self) -> &'static str {
        self.inner.interface()
    }

    fn evidence(
        &self,
        report_data: &cdvm_attestation::ReportData,
    ) -> Result<cdvm_attestation::Evidence, cdvm_attestation::AttestError> {
        let mut evidence = self.inner.evidence(report_data)?;
        let gpus = cdvm_attestation::nvidia::collect::collect_verified_gpus(
            self.nvml_lib.as_deref(),
            report_data,
            &self.policy,
        )
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            cdvm_attestation::AttestError::BadResponse(format!("GPU evidence: {msg}"))
        })?;
        tracing::info!(
            gpus = gpus.len(),
            "GPU evidence collected, verified, GPUs set ready"
        );
        *evidence.gpus_mut() = gpus;
        Ok(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nowhere() -> HardwareOptions {
        HardwareOptions {
            tsm_root: "/nonexistent/tsm/report".into(),
            vmpl: 0,
        }
    }

    #[test]
    fn auto_never_falls_back_to_the_simulator() {
        // No configfs-tsm at that path: on an SNP guest auto takes /dev/sev-guest, anywhere else
        // it refuses, naming what it looked for.
        let result = auto(&nowhere());
        if Path::new(SEV_GUEST_DEVICE).exists() {
            assert_eq!(result.expect("sev-guest").interface(), "sev-guest-ioctl");
            return;
        }
        let err = result.err().expect("no interface").to_string();
        assert!(err.contains("found no real TEE interface"), "{err}");
        assert!(err.contains("never chosen automatically"), "{err}");
    }

    #[test]
    fn explicit_tees_name_the_missing_interface() {
        let err = tdx(&nowhere()).err().expect("no tdx").to_string();
        assert!(err.contains("/nonexistent/tsm/report"), "{err}");
        if !Path::new(SEV_GUEST_DEVICE).exists() {
            let err = sev_snp(&nowhere()).err().expect("no snp").to_string();
            assert!(
                err.contains(SEV_GUEST_DEVICE) && err.contains("configfs-tsm"),
                "{err}"
            );
        }
    }
}
