//! The NVML confidential-computing calls the guest agent needs to attest NVIDIA H100 GPUs, with
//! every size the driver returns checked against its buffer.
//!
//! `nvml-wrapper` loads `libnvidia-ml.so` at run time, so this builds and links on machines
//! without a driver. Its safe API covers most calls, but it has no plain query for the system's
//! confidential-computing state (`nvmlSystemGetConfComputeState`), and it slices the report and
//! certificate buffers with the driver's sizes unchecked (a size beyond the buffer panics). The
//! raw calls here, through the library `nvml-wrapper` already loaded, are the only `unsafe` code
//! on the guest's GPU path; each says why it is sound.

use std::fmt;

pub use nvml_wrapper::error::NvmlError;
pub use nvml_wrapper::{Device, Nvml};

use nvml_wrapper::error::{nvml_sym, nvml_try};
use nvml_wrapper_sys::bindings::{
    nvmlConfComputeGpuAttestationReport_t, nvmlConfComputeGpuCertificate_t,
    nvmlConfComputeSystemState_t, NVML_CC_ACCEPTING_CLIENT_REQUESTS_FALSE,
    NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE, NVML_CC_GPU_ATTESTATION_REPORT_SIZE,
    NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE, NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF,
    NVML_CC_SYSTEM_DEVTOOLS_MODE_ON, NVML_CC_SYSTEM_ENVIRONMENT_PROD,
    NVML_CC_SYSTEM_ENVIRONMENT_SIM, NVML_CC_SYSTEM_ENVIRONMENT_UNAVAILABLE,
    NVML_CC_SYSTEM_FEATURE_DISABLED, NVML_CC_SYSTEM_FEATURE_ENABLED,
    NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE, NVML_GPU_CERT_CHAIN_SIZE,
};

/// Length of the nonce NVML passes to the GPU (`NVML_CC_GPU_CEC_NONCE_SIZE`).
pub const NONCE_LEN: usize = 32;
/// Capacity of NVML's attestation-report buffer (`NVML_CC_GPU_ATTESTATION_REPORT_SIZE`).
pub const REPORT_CAPACITY: usize = NVML_CC_GPU_ATTESTATION_REPORT_SIZE as usize;
/// Capacity of NVML's attestation certificate-chain buffer
/// (`NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE`).
pub const CERT_CHAIN_CAPACITY: usize = NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE as usize;

/// Why a raw call failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// NVML returned an error (or the library lacks the symbol).
    #[error(transparent)]
    Nvml(#[from] NvmlError),
    /// The driver claims more bytes than its own buffer holds.
    #[error("{what}: the driver reports {size} bytes, more than the {capacity}-byte buffer")]
    SizeOutOfRange {
        /// Which buffer.
        what: &'static str,
        /// The size the driver returned.
        size: u32,
        /// The buffer's capacity.
        capacity: usize,
    },
}

/// `nvmlConfComputeSystemState_t`: the system's confidential-computing state, raw values kept
/// (an unknown value is shown as such, never guessed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcSystemState {
    /// `NVML_CC_SYSTEM_ENVIRONMENT_*`: 0 unavailable, 1 simulation, 2 production.
    pub environment: u32,
    /// `NVML_CC_SYSTEM_FEATURE_*`: 0 disabled, 1 enabled.
    pub cc_feature: u32,
    /// `NVML_CC_SYSTEM_DEVTOOLS_MODE_*`: 0 off, 1 on (GPU debugging allowed).
    pub dev_tools_mode: u32,
}

impl CcSystemState {
    /// Confidential computing is enabled.
    pub fn cc_enabled(&self) -> bool {
        self.cc_feature == NVML_CC_SYSTEM_FEATURE_ENABLED
    }

    /// Developer-tools mode is on: the GPU may be debugged, so its protections do not hold.
    pub fn dev_tools_on(&self) -> bool {
        self.dev_tools_mode != NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF
    }
}

impl fmt::Display for CcSystemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let feature = match self.cc_feature {
            NVML_CC_SYSTEM_FEATURE_DISABLED => "off".to_string(),
            NVML_CC_SYSTEM_FEATURE_ENABLED => "on".to_string(),
            n => format!("unknown ({n})"),
        };
        let environment = match self.environment {
            NVML_CC_SYSTEM_ENVIRONMENT_UNAVAILABLE => "unavailable".to_string(),
            NVML_CC_SYSTEM_ENVIRONMENT_SIM => "simulation".to_string(),
            NVML_CC_SYSTEM_ENVIRONMENT_PROD => "production".to_string(),
            n => format!("unknown ({n})"),
        };
        let dev_tools = match self.dev_tools_mode {
            NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF => "off".to_string(),
            NVML_CC_SYSTEM_DEVTOOLS_MODE_ON => "on".to_string(),
            n => format!("unknown ({n})"),
        };
        write!(
            f,
            "cc feature {feature}, environment {environment}, devtools mode {dev_tools}"
        )
    }
}

/// `nvmlSystemGetConfComputeState`.
#[allow(unsafe_code)]
pub fn cc_system_state(nvml: &Nvml) -> Result<CcSystemState, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlSystemGetConfComputeState.as_ref())?;
    let mut state = nvmlConfComputeSystemState_t {
        environment: 0,
        ccFeature: 0,
        devToolsMode: 0,
    };
    // SAFETY: `sym` is `nvmlSystemGetConfComputeState` from the library `nvml` loaded and
    // initialised (it lives as long as `nvml`); its one argument is a valid, exclusive pointer to
    // an `nvmlConfComputeSystemState_t` (the layout nvml.h declares: three unsigned ints) that it
    // fills and does not keep.
    let code = unsafe { sym(&mut state) };
    nvml_try(code)?;
    Ok(CcSystemState {
        environment: state.environment,
        cc_feature: state.ccFeature,
        dev_tools_mode: state.devToolsMode,
    })
}

/// `nvmlSystemGetConfComputeGpusReadyState`: true when the GPUs accept work (CUDA refuses work
/// before).
#[allow(unsafe_code)]
pub fn gpus_ready_state(nvml: &Nvml) -> Result<bool, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlSystemGetConfComputeGpusReadyState.as_ref())?;
    let mut ready: u32 = NVML_CC_ACCEPTING_CLIENT_REQUESTS_FALSE;
    // SAFETY: `sym` is `nvmlSystemGetConfComputeGpusReadyState` from the loaded, initialised
    // library; its argument is a valid, exclusive pointer to one unsigned int, which it writes.
    let code = unsafe { sym(&mut ready) };
    nvml_try(code)?;
    Ok(ready == NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE)
}

/// `nvmlSystemSetConfComputeGpusReadyState`: lets the GPUs accept work (`true`), or not. Call it
/// with `true` only after the GPUs' evidence verified.
#[allow(unsafe_code)]
pub fn set_gpus_ready_state(nvml: &Nvml, ready: bool) -> Result<(), NvmlError> {
    let value = if ready {
        NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE
    } else {
        NVML_CC_ACCEPTING_CLIENT_REQUESTS_FALSE
    };
    let sym = nvml_sym(nvml.lib().nvmlSystemSetConfComputeGpusReadyState.as_ref())?;
    // SAFETY: `sym` is `nvmlSystemSetConfComputeGpusReadyState` from the loaded, initialised
    // library; it takes one unsigned int by value.
    let code = unsafe { sym(value) };
    nvml_try(code)
}

/// `nvmlDeviceGetConfComputeGpuAttestationReport` with `nonce`: the GPU's attestation report
/// (SPDM GET_MEASUREMENTS request ‖ signed MEASUREMENTS response), exactly
/// `attestationReportSize` bytes.
#[allow(unsafe_code)]
pub fn attestation_report(
    device: &Device<'_>,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, RawError> {
    let sym = nvml_sym(
        device
            .nvml()
            .lib()
            .nvmlDeviceGetConfComputeGpuAttestationReport
            .as_ref(),
    )?;
    let mut report = Box::new(nvmlConfComputeGpuAttestationReport_t {
        isCecAttestationReportPresent: 0,
        attestationReportSize: 0,
        cecAttestationReportSize: 0,
        nonce,
        attestationReport: [0; REPORT_CAPACITY],
        cecAttestationReport: [0; NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE as usize],
    });
    // SAFETY: `sym` is `nvmlDeviceGetConfComputeGpuAttestationReport` from the library that
    // produced `device` (still loaded: `device` borrows its `Nvml`); `handle()` is that library's
    // handle for this GPU; the second argument is a valid, exclusive pointer to a zero-initialised
    // `nvmlConfComputeGpuAttestationReport_t` (nvml.h layout, from nvml-wrapper-sys) whose nonce
    // the driver reads and whose sizes and buffers it writes; it keeps neither pointer.
    let code = unsafe { sym(device.handle(), &mut *report) };
    nvml_try(code)?;
    let size = report.attestationReportSize;
    report
        .attestationReport
        .get(..size as usize)
        .map(<[u8]>::to_vec)
        .ok_or(RawError::SizeOutOfRange {
            what: "attestation report",
            size,
            capacity: REPORT_CAPACITY,
        })
}

/// `nvmlDeviceGetConfComputeGpuCertificate`: the GPU's attestation certificate chain, exactly
/// `attestationCertChainSize` bytes (concatenated PEM, leaf first, as the driver gives it).
#[allow(unsafe_code)]
pub fn attestation_cert_chain(device: &Device<'_>) -> Result<Vec<u8>, RawError> {
    let sym = nvml_sym(
        device
            .nvml()
            .lib()
            .nvmlDeviceGetConfComputeGpuCertificate
            .as_ref(),
    )?;
    let mut cert = Box::new(nvmlConfComputeGpuCertificate_t {
        certChainSize: 0,
        attestationCertChainSize: 0,
        certChain: [0; NVML_GPU_CERT_CHAIN_SIZE as usize],
        attestationCertChain: [0; CERT_CHAIN_CAPACITY],
    });
    // SAFETY: as in `attestation_report`: the function comes from the library behind `device`,
    // the handle is its handle, and the pointer is to a valid, exclusive, zero-initialised
    // `nvmlConfComputeGpuCertificate_t` that the driver fills and does not keep.
    let code = unsafe { sym(device.handle(), &mut *cert) };
    nvml_try(code)?;
    let size = cert.attestationCertChainSize;
    cert.attestationCertChain
        .get(..size as usize)
        .map(<[u8]>::to_vec)
        .ok_or(RawError::SizeOutOfRange {
            what: "attestation certificate chain",
            size,
            capacity: CERT_CHAIN_CAPACITY,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_shown_with_unknown_values_kept() {
        let on = CcSystemState {
            environment: 2,
            cc_feature: 1,
            dev_tools_mode: 0,
        };
        assert!(on.cc_enabled() && !on.dev_tools_on());
        assert_eq!(
            on.to_string(),
            "cc feature on, environment production, devtools mode off"
        );
        let odd = CcSystemState {
            environment: 9,
            cc_feature: 7,
            dev_tools_mode: 3,
        };
        assert!(!odd.cc_enabled() && odd.dev_tools_on());
        assert_eq!(
            odd.to_string(),
            "cc feature unknown (7), environment unknown (9), devtools mode unknown (3)"
        );
    }

    #[test]
    fn a_missing_library_is_an_error_not_a_crash() {
        let err = Nvml::builder()
            .lib_path(std::ffi::OsStr::new("/nonexistent/libnvidia-ml.so.1"))
            .init()
            .err();
        assert!(err.is_some());
    }
}
