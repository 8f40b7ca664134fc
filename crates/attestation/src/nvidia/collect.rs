//! The guest side for NVIDIA H100 GPUs (feature `nvml`): collect each GPU's attestation report
//! and certificate chain through NVML, verify them here first, and only then let the GPUs accept
//! work (docs/attestation.md, "GPU evidence collection (guest side)").
//!
//! NVML calls, in order:
//!
//! 1. load `libnvidia-ml` (a path, or the system's `libnvidia-ml.so`) and `nvmlInit_v2`;
//! 2. `nvmlSystemGetConfComputeState`: confidential computing must be on, developer-tools mode
//!    off — otherwise a clear refusal, never evidence that pretends;
//! 3. `nvmlDeviceGetCount_v2` (at least one GPU), then per GPU `nvmlDeviceGetHandleByIndex_v2`,
//!    `nvmlDeviceGetConfComputeGpuAttestationReport` with the nonce [`super::gpu_nonce`] of the
//!    report data, and `nvmlDeviceGetConfComputeGpuCertificate` (its attestation chain: PEM,
//!    leaf first);
//! 4. the verifier ([`super::verify_gpus`]) under the caller's GPU policy, against the same report
//!    data — the exact checks a client runs;
//! 5. only if every GPU passed: `nvmlSystemSetConfComputeGpusReadyState(1)`, then
//!    `nvmlSystemGetConfComputeGpusReadyState` to confirm it took.
//!
//! Nothing is retried; any failure names the NVML call and the GPU, and no partial evidence is
//! returned.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cdvm_nvml::{CcSystemState, Nvml, NvmlError, RawError};

use super::{verify_gpus, GpuError, GpuEvidence, GpuPolicy};
use crate::{Check, ReportData};

/// The default library name, as NVIDIA's driver installs it.
pub const DEFAULT_LIB: &str = "libnvidia-ml.so.1";

/// Why GPU evidence could not be collected, or the GPUs not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum GpuCollectError {
    /// The library could not be loaded or `nvmlInit_v2` failed.
    #[error("nvml: cannot load and initialise {lib} (nvmlInit_v2)")]
    Open {
        /// The library path or name.
        lib: String,
        /// NVML's error.
        #[source]
        source: NvmlError,
    },
    /// A system-wide NVML call failed.
    #[error("nvml: {call} failed")]
    System {
        /// The NVML function.
        call: &'static str,
        /// NVML's error.
        #[source]
        source: NvmlError,
    },
    /// Confidential computing is off: there is no GPU evidence to give, and none is made up.
    #[error(
        "nvml: confidential computing is off on this system (cc state: {state}); GPUs in \
         CC mode are required for GPU evidence"
    )]
    CcOff {
        /// The state NVML reported.
        state: CcSystemState,
    },
    /// Developer-tools mode is on: the GPUs may be debugged, so their protections do not hold.
    #[error(
        "nvml: confidential computing is in developer-tools mode (cc state: {state}); the GPUs \
         can be debugged, so they are refused"
    )]
    DevTools {
        /// The state NVML reported.
        state: CcSystemState,
    },
    /// CC mode is on but NVML sees no GPU.
    #[error("nvml: confidential computing is on but nvmlDeviceGetCount_v2 reports no GPU")]
    NoGpu,
    /// A per-GPU NVML call failed.
    #[error("nvml: {call} failed for GPU {gpu}")]
    Device {
        /// The NVML function.
        call: &'static str,
        /// The GPU's NVML index.
        gpu: u32,
        /// NVML's error (or the driver's size beyond its buffer).
        #[source]
        source: RawError,
    },
    /// The certificate chain NVML returned is not PEM certificates.
    #[error(
        "nvml: nvmlDeviceGetConfComputeGpuCertificate for GPU {gpu} returned an unreadable \
         attestation chain"
    )]
    CertChain {
        /// The GPU's NVML index.
        gpu: u32,
        /// Why it is unreadable.
        #[source]
        source: GpuError,
    },
    /// Our own verification of the collected evidence failed: the ready state is NOT set.
    #[error("GPU evidence failed the guest's own verification; the GPUs were NOT made ready")]
    Verification {
        /// The first failed check.
        #[source]
        source: GpuError,
    },
    /// The ready state was set but NVML does not report it.
    #[error(
        "nvml: nvmlSystemSetConfComputeGpusReadyState(1) returned success but \
         nvmlSystemGetConfComputeGpusReadyState still reports not ready"
    )]
    NotReady,
}

/// NVML, loaded and initialised, for collecting GPU evidence. Shut down when dropped.
#[derive(Debug)]
pub struct GpuCollector {
    nvml: Nvml,
    lib: PathBuf,
}

impl GpuCollector {
    /// Loads `lib_path` (default [`DEFAULT_LIB`], found by the dynamic loader) and initialises
    /// NVML.
    pub fn open(lib_path: Option<&Path>) -> Result<Self, GpuCollectError> {
        let lib = lib_path.map_or_else(|| PathBuf::from(DEFAULT_LIB), Path::to_path_buf);
        let nvml = Nvml::builder()
            .lib_path(lib.as_os_str())
            .init()
            .map_err(|source| GpuCollectError::Open {
                lib: lib.display().to_string(),
                source,
            })?;
        Ok(Self { nvml, lib })
    }

    /// The library this collector loaded.
    pub fn lib(&self) -> &Path {
        &self.lib
    }

    /// The system's confidential-computing state (`nvmlSystemGetConfComputeState`).
    pub fn cc_state(&self) -> Result<CcSystemState, GpuCollectError> {
        cdvm_nvml::cc_system_state(&self.nvml).map_err(|source| GpuCollectError::System {
            call: "nvmlSystemGetConfComputeState",
            source,
        })
    }

    /// Whether the GPUs accept work (`nvmlSystemGetConfComputeGpusReadyState`).
    pub fn ready(&self) -> Result<bool, GpuCollectError> {
        cdvm_nvml::gpus_ready_state(&self.nvml).map_err(|source| GpuCollectError::System {
            call: "nvmlSystemGetConfComputeGpusReadyState",
            source,
        })
    }

    /// Every GPU's evidence, bound to `report_data` (each GPU signs
    /// [`super::gpu_nonce`]`(report_data)`), in NVML index order. Refuses when CC mode is off or
    /// in developer-tools mode, or when there is no GPU. Not verified: see
    /// [`GpuCollector::verify_and_set_ready`].
    pub fn collect(&self, report_data: &ReportData) -> Result<Vec<GpuEvidence>, GpuCollectError> {
        let state = self.cc_state()?;
        if !state.cc_enabled() {
            return Err(GpuCollectError::CcOff { state });
        }
        if state.dev_tools_on() {
            return Err(GpuCollectError::DevTools { state });
        }
        let count = self
            .nvml
            .device_count()
            .map_err(|source| GpuCollectError::System {
                call: "nvmlDeviceGetCount_v2",
                source,
            })?;
        if count == 0 {
            return Err(GpuCollectError::NoGpu);
        }
        let nonce = super::gpu_nonce(report_data.as_bytes());
        let device_err = |call: &'static str, gpu: u32| {
            move |source: RawError| GpuCollectError::Device { call, gpu, source }
        };
        let mut gpus = Vec::with_capacity(count as usize);
        for gpu in 0..count {
            let device = self
                .nvml
                .device_by_index(gpu)
                .map_err(|e| device_err("nvmlDeviceGetHandleByIndex_v2", gpu)(RawError::Nvml(e)))?;
            let report = cdvm_nvml::attestation_report(&device, nonce).map_err(device_err(
                "nvmlDeviceGetConfComputeGpuAttestationReport",
                gpu,
            ))?;
            let chain = cdvm_nvml::attestation_cert_chain(&device)
                .map_err(device_err("nvmlDeviceGetConfComputeGpuCertificate", gpu))?;
            gpus.push(GpuEvidence {
                report,
                certs: parse_chain(gpu, &chain)?,
            });
        }
        Ok(gpus)
    }

    /// Verifies `gpus` against `report_data` and `policy` at `now` with the client's own GPU
    /// verifier, and only if every GPU passes sets the GPUs' ready state (and checks it took).
    /// On any failure the ready state is left as it was. Returns the passed checks.
    pub fn verify_and_set_ready(
        &self,
        gpus: &[GpuEvidence],
        report_data: &ReportData,
        policy: &GpuPolicy,
        now: SystemTime,
    ) -> Result<Vec<Check>, GpuCollectError> {
        if gpus.is_empty() {
            return Err(GpuCollectError::Verification {
                source: GpuError::Missing,
            });
        }
        let checks = verify_gpus(gpus, report_data, Some(policy), now)
            .map_err(|source| GpuCollectError::Verification { source })?;
        cdvm_nvml::set_gpus_ready_state(&self.nvml, true).map_err(|source| {
            GpuCollectError::System {
                call: "nvmlSystemSetConfComputeGpusReadyState",
                source,
            }
        })?;
        if !self.ready()? {
            return Err(GpuCollectError::NotReady);
        }
        Ok(checks)
    }
}

/// What the agent calls: open NVML (`lib_path`, default [`DEFAULT_LIB`]), collect every GPU's
/// evidence bound to `report_data`, verify it under `policy` now, set the GPUs ready, and return
/// the evidence to attach to the CPU evidence's `gpus`. Nothing is returned unless all of it
/// succeeded.
pub fn collect_verified_gpus(
    lib_path: Option<&Path>,
    report_data: &ReportData,
    policy: &GpuPolicy,
) -> Result<Vec<GpuEvidence>, GpuCollectError> {
    let collector = GpuCollector::open(lib_path)?;
    let gpus = collector.collect(report_data)?;
    collector.verify_and_set_ready(&gpus, report_data, policy, SystemTime::now())?;
    Ok(gpus)
}

fn parse_chain(gpu: u32, bytes: &[u8]) -> Result<Vec<super::GpuCert>, GpuCollectError> {
    super::certs_from_driver_chain(bytes)
        .map_err(|source| GpuCollectError::CertChain { gpu, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chain_text_is_checked() {
        assert!(matches!(
            parse_chain(3, &[0xFF, 0xFE]),
            Err(GpuCollectError::CertChain { gpu: 3, .. })
        ));
        assert!(matches!(
            parse_chain(0, b"\0\0"),
            Err(GpuCollectError::CertChain { .. })
        ));
        let pem = include_str!("../../tests/fixtures/nvidia/trustee/hopper_cert_chain_case1.txt");
        let mut padded = pem.as_bytes().to_vec();
        padded.extend([0u8; 16]);
        assert_eq!(parse_chain(0, &padded).unwrap().len(), 5);
    }

    #[test]
    fn a_missing_library_is_named() {
        let err =
            GpuCollector::open(Some(Path::new("/nonexistent/libnvidia-ml.so.1"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot load and initialise /nonexistent/libnvidia-ml.so.1"),
            "{err}"
        );
    }
}
