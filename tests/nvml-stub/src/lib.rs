//! A test stub of `libnvidia-ml.so`: the NVML functions the guest's GPU collector calls
//! (`cdvm_attestation::nvidia::collect`), serving simulated H100s in confidential-computing mode.
//!
//! Each GPU answers `nvmlDeviceGetConfComputeGpuAttestationReport` with an SPDM 1.1
//! GET_MEASUREMENTS request carrying the caller's nonce, followed by a MEASUREMENTS response
//! (the layout of `cdvm_attestation::nvidia::spdm`) signed ECDSA P-384 / SHA-384 by the GPU's
//! test leaf key; `nvmlDeviceGetConfComputeGpuCertificate` returns that GPU's test chain (PEM,
//! leaf first). The test makes the chain (root → intermediate → leaf) and writes a JSON
//! configuration; `CDVM_NVML_STUB_CONFIG` names it, and `nvmlInit_v2` reads it afresh (see
//! [`Config`]). `nvmlSystemSetConfComputeGpusReadyState` appends `set <value>` to the
//! configuration's `ready_log`, so a test sees whether and when the ready state was set.
//!
//! nvml-wrapper resolves every symbol at load time but keeps a missing one as an error that is
//! returned only when that function is called, so this exports only what the collector uses
//! (plus `nvmlInitWithFlags`, `nvmlErrorString` and `nvmlSystemGetDriverVersion`, which
//! nvml-wrapper itself calls or may call).
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_uint, c_void};
use std::io::Write;
use std::sync::Mutex;

use nvml_wrapper_sys::bindings::{
    nvmlConfComputeGpuAttestationReport_t, nvmlConfComputeGpuCertificate_t,
    nvmlConfComputeSystemState_t, nvmlDevice_t, nvmlReturn_t,
};
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::Private;
use openssl::sha::sha384;
use serde::Deserialize;

const SUCCESS: nvmlReturn_t = 0;
const ERROR_UNINITIALIZED: nvmlReturn_t = 1;
const ERROR_INVALID_ARGUMENT: nvmlReturn_t = 2;
const ERROR_NOT_SUPPORTED: nvmlReturn_t = 3;
const ERROR_DRIVER_NOT_LOADED: nvmlReturn_t = 9;
const ERROR_UNKNOWN: nvmlReturn_t = 999;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "CDVM_NVML_STUB_CONFIG";

/// The stub's configuration (JSON), read by every `nvmlInit_v2`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `ccFeature` of `nvmlSystemGetConfComputeState` (1 on, 0 off).
    pub cc_feature: u32,
    /// `environment` (2 production).
    #[serde(default = "production")]
    pub environment: u32,
    /// `devToolsMode` (0 off).
    #[serde(default)]
    pub dev_tools_mode: u32,
    /// The GPUs, in index order.
    pub gpus: Vec<Gpu>,
    /// A fault to inject: `flip-byte` (one measurement byte changed after signing),
    /// `wrong-nonce` (another nonce signed), `oversize-report` (a report size beyond NVML's
    /// buffer), `report-fails` (the report call returns NOT_SUPPORTED).
    #[serde(default)]
    pub tamper: Option<String>,
    /// Which GPU the fault applies to (default: every GPU).
    #[serde(default)]
    pub tamper_gpu: Option<usize>,
    /// File that `nvmlSystemSetConfComputeGpusReadyState` appends `set <value>` lines to.
    pub ready_log: String,
    /// The driver version reported in the opaque data and by `nvmlSystemGetDriverVersion`.
    #[serde(default = "driver")]
    pub driver_version: String,
}

fn production() -> u32 {
    2
}

fn driver() -> String {
    "550.90.07".into()
}

/// One simulated GPU.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// The leaf's P-384 private key, PEM.
    pub key_pem: String,
    /// The chain, PEM, leaf first (what `attestationCertChain` holds).
    pub chain_pem: String,
    /// The FWID in the leaf's DICE TcbInfo extension, hex (48 bytes); reported in opaque field 20.
    pub fwid_hex: String,
}

struct State {
    config: Config,
    keys: Vec<EcKey<Private>>,
    ready: u32,
}

/// The state, and how many `nvmlInit_v2` are not yet matched by `nvmlShutdown` (NVML counts
/// them the same way: the first reads the configuration, the last forgets it).
struct Loaded {
    state: Option<State>,
    refs: u32,
}

static STATE: Mutex<Loaded> = Mutex::new(Loaded {
    state: None,
    refs: 0,
});

fn load() -> Option<State> {
    let path = std::env::var_os(CONFIG_ENV)?;
    let text = std::fs::read_to_string(path).ok()?;
    let config: Config = serde_json::from_str(&text).ok()?;
    let keys = config
        .gpus
        .iter()
        .map(|g| EcKey::private_key_from_pem(g.key_pem.as_bytes()).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(State {
        config,
        keys,
        ready: 0,
    })
}

fn with_state(f: impl FnOnce(&mut State) -> nvmlReturn_t) -> nvmlReturn_t {
    match STATE.lock() {
        Ok(mut guard) => match guard.state.as_mut() {
            Some(state) => f(state),
            None => ERROR_UNINITIALIZED,
        },
        Err(_) => ERROR_UNKNOWN,
    }
}

fn device_index(device: nvmlDevice_t) -> usize {
    (device as usize).wrapping_sub(1)
}

/// The SPDM GET_MEASUREMENTS request ‖ signed MEASUREMENTS response for `nonce`.
fn spdm_report(
    state: &State,
    gpu: usize,
    nonce: [u8; 32],
    tamper: Option<&str>,
) -> Option<Vec<u8>> {
    let cfg = state.config.gpus.get(gpu)?;
    let key = state.keys.get(gpu)?;
    let fwid = hex::decode(&cfg.fwid_hex).ok()?;
    let signed_nonce = if tamper == Some("wrong-nonce") {
        nonce.map(|b| b ^ 0x5A)
    } else {
        nonce
    };
    // Request: SPDM 1.1, GET_MEASUREMENTS, signature requested, all measurements, slot 0.
    let mut b = vec![0x11, 0xE0, 0x01, 0xFF];
    b.extend(signed_nonce);
    b.push(0);
    // Record: four DMTF blocks, each a SHA-384 digest (a different one per GPU).
    let mut record = Vec::new();
    let blocks: u8 = 4;
    for index in 1..=blocks {
        let value = sha384(format!("cdvm nvml stub measurement {index} gpu {gpu}").as_bytes());
        record.extend([index, 0x01]);
        record.extend(u16::try_from(3 + value.len()).ok()?.to_le_bytes());
        record.push(0x01);
        record.extend(u16::try_from(value.len()).ok()?.to_le_bytes());
        record.extend(value);
    }
    b.extend([0x11, 0x60, 0x00, 0x00, blocks]);
    b.extend(&u32::try_from(record.len()).ok()?.to_le_bytes()[..3]);
    b.extend(&record);
    b.extend(sha384(format!("responder nonce {gpu}").as_bytes()).get(..32)?);
    let mut opaque = Vec::new();
    let mut field = |kind: u16, value: &[u8]| -> Option<()> {
        opaque.extend(kind.to_le_bytes());
        opaque.extend(u16::try_from(value.len()).ok()?.to_le_bytes());
        opaque.extend(value);
        Some(())
    };
    let mut driver = state.config.driver_version.as_bytes().to_vec();
    driver.push(0);
    field(3, &driver)?;
    field(6, &[0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0])?;
    field(20, &fwid)?;
    field(36, &[0, 0, 0, 0])?;
    b.extend(u16::try_from(opaque.len()).ok()?.to_le_bytes());
    b.extend(&opaque);
    let sig = EcdsaSig::sign(&sha384(&b), key).ok()?;
    b.extend(sig.r().to_vec_padded(48).ok()?);
    b.extend(sig.s().to_vec_padded(48).ok()?);
    if tamper == Some("flip-byte") {
        // The first byte of measurement block 1's value, after signing.
        let at = 37 + 8 + 7;
        *b.get_mut(at)? ^= 0x01;
    }
    Some(b)
}

fn tamper_for(state: &State, gpu: usize) -> Option<&str> {
    match (state.config.tamper.as_deref(), state.config.tamper_gpu) {
        (Some(t), None) => Some(t),
        (Some(t), Some(only)) if only == gpu => Some(t),
        _ => None,
    }
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    let Ok(mut guard) = STATE.lock() else {
        return ERROR_UNKNOWN;
    };
    if guard.refs == 0 {
        let Some(state) = load() else {
            return ERROR_DRIVER_NOT_LOADED;
        };
        guard.state = Some(state);
    }
    guard.refs += 1;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    nvmlInit_v2()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    let Ok(mut guard) = STATE.lock() else {
        return ERROR_UNKNOWN;
    };
    if guard.refs == 0 {
        return ERROR_UNINITIALIZED;
    }
    guard.refs -= 1;
    if guard.refs == 0 {
        guard.state = None;
    }
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(_result: nvmlReturn_t) -> *const c_char {
    c"nvml stub error".as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    with_state(|state| {
        let mut text = state.config.driver_version.as_bytes().to_vec();
        text.push(0);
        if version.is_null() || text.len() > length as usize {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: the caller gives a buffer of `length` bytes; `text` fits in it.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr().cast(), version, text.len()) };
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> nvmlReturn_t {
    with_state(|state| {
        if count.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: the caller's valid pointer to one unsigned int.
        unsafe { *count = state.config.gpus.len() as c_uint };
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    with_state(|state| {
        if device.is_null() || index as usize >= state.config.gpus.len() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: the caller's valid pointer to one handle. Handles are index + 1, never
        // dereferenced.
        unsafe { *device = (index as usize + 1) as *mut c_void as nvmlDevice_t };
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetConfComputeState(
    state_out: *mut nvmlConfComputeSystemState_t,
) -> nvmlReturn_t {
    with_state(|state| {
        if state_out.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: the caller's valid pointer to the struct.
        unsafe {
            (*state_out).environment = state.config.environment;
            (*state_out).ccFeature = state.config.cc_feature;
            (*state_out).devToolsMode = state.config.dev_tools_mode;
        }
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetConfComputeGpusReadyState(
    ready: *mut c_uint,
) -> nvmlReturn_t {
    with_state(|state| {
        if ready.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: the caller's valid pointer to one unsigned int.
        unsafe { *ready = state.ready };
        SUCCESS
    })
}

#[no_mangle]
pub extern "C" fn nvmlSystemSetConfComputeGpusReadyState(ready: c_uint) -> nvmlReturn_t {
    with_state(|state| {
        if state.config.cc_feature != 1 {
            return ERROR_NOT_SUPPORTED;
        }
        let logged = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&state.config.ready_log)
            .and_then(|mut f| writeln!(f, "set {ready}"));
        if logged.is_err() {
            return ERROR_UNKNOWN;
        }
        state.ready = ready;
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetConfComputeGpuAttestationReport(
    device: nvmlDevice_t,
    report: *mut nvmlConfComputeGpuAttestationReport_t,
) -> nvmlReturn_t {
    with_state(|state| {
        let gpu = device_index(device);
        if report.is_null() || gpu >= state.config.gpus.len() {
            return ERROR_INVALID_ARGUMENT;
        }
        if state.config.cc_feature != 1 {
            return ERROR_NOT_SUPPORTED;
        }
        let tamper = tamper_for(state, gpu);
        if tamper == Some("report-fails") {
            return ERROR_NOT_SUPPORTED;
        }
        // SAFETY: the caller's valid, exclusive pointer to the struct.
        let report = unsafe { &mut *report };
        let Some(bytes) = spdm_report(state, gpu, report.nonce, tamper) else {
            return ERROR_UNKNOWN;
        };
        let Some(dest) = report.attestationReport.get_mut(..bytes.len()) else {
            return ERROR_UNKNOWN;
        };
        dest.copy_from_slice(&bytes);
        report.attestationReportSize = if tamper == Some("oversize-report") {
            report.attestationReport.len() as c_uint + 1
        } else {
            bytes.len() as c_uint
        };
        report.isCecAttestationReportPresent = 0;
        report.cecAttestationReportSize = 0;
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetConfComputeGpuCertificate(
    device: nvmlDevice_t,
    cert: *mut nvmlConfComputeGpuCertificate_t,
) -> nvmlReturn_t {
    with_state(|state| {
        let gpu = device_index(device);
        let Some(cfg) = state.config.gpus.get(gpu) else {
            return ERROR_INVALID_ARGUMENT;
        };
        if cert.is_null() {
            return ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: the caller's valid, exclusive pointer to the struct.
        let cert = unsafe { &mut *cert };
        let pem = cfg.chain_pem.as_bytes();
        let Some(dest) = cert.attestationCertChain.get_mut(..pem.len()) else {
            return ERROR_UNKNOWN;
        };
        dest.copy_from_slice(pem);
        cert.attestationCertChainSize = pem.len() as c_uint;
        cert.certChainSize = 0;
        SUCCESS
    })
}
