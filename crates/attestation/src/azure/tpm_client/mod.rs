//! A small TPM 2.0 client: raw command marshalling over a byte transport, no C TSS (the guest
//! agent is a static binary; docs/attestation.md, "Why raw TPM2 commands"). Only the commands
//! the Azure vTPM attester and the emulated paravisor need. Every response code is checked and
//! named with its command; every length read from the TPM is bounded.

pub mod marshal;
mod transport;

pub use marshal::{NvPublic, TpmRsaPublic};
#[cfg(feature = "sim")]
pub(crate) use transport::read_command;
pub use transport::{
    swtpm_ctrl_init, DeviceTransport, SocketAddress, SocketTransport, TpmTransport,
};

use marshal::{parse_response, Cmd, ResponseError};

/// `TPM_RH_OWNER`.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
/// `TPM_RH_ENDORSEMENT`.
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000b;
/// `TPMA_NV_OWNERWRITE`.
pub const TPMA_NV_OWNERWRITE: u32 = 1 << 1;
/// `TPMA_NV_AUTHWRITE`.
pub const TPMA_NV_AUTHWRITE: u32 = 1 << 2;
/// `TPMA_NV_OWNERREAD`.
pub const TPMA_NV_OWNERREAD: u32 = 1 << 17;
/// `TPMA_NV_AUTHREAD`.
pub const TPMA_NV_AUTHREAD: u32 = 1 << 18;
/// `TPMA_NV_NO_DA`.
pub const TPMA_NV_NO_DA: u32 = 1 << 25;
/// `TPMA_NV_WRITTEN`.
pub const TPMA_NV_WRITTEN: u32 = 1 << 29;

const CC_NV_DEFINE_SPACE: u32 = 0x12a;
const CC_EVICT_CONTROL: u32 = 0x120;
const CC_CREATE_PRIMARY: u32 = 0x131;
const CC_NV_WRITE: u32 = 0x137;
const CC_NV_READ: u32 = 0x14e;
const CC_QUOTE: u32 = 0x158;
const CC_FLUSH_CONTEXT: u32 = 0x165;
const CC_NV_READ_PUBLIC: u32 = 0x169;
const CC_READ_PUBLIC: u32 = 0x173;
const CC_GET_CAPABILITY: u32 = 0x17a;
const CC_PCR_READ: u32 = 0x17e;
const CC_PCR_EXTEND: u32 = 0x182;
const CC_STARTUP: u32 = 0x144;

/// `TPM_RC_RETRY`, `TPM_RC_TESTING`, `TPM_RC_YIELDED`: warnings that ask to send again.
const RETRYABLE: [u32; 3] = [0x922, 0x90a, 0x908];
/// How often a retryable warning is retried before it is an error.
const MAX_RETRIES: usize = 5;

/// A failed TPM command. The message names the command (and its target) and the step.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The transport failed (device, socket).
    #[error("vtpm: {command}: I/O with the TPM at {tpm} failed")]
    Io {
        /// Command and target, e.g. `NV_Write 0x01400002`.
        command: String,
        /// The transport's description.
        tpm: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The TPM answered with a non-zero response code.
    #[error("vtpm: {command} failed: TPM_RC {rc:#x}")]
    Code {
        /// Command and target.
        command: String,
        /// The `TPM_RC`.
        rc: u32,
    },
    /// The response is not what the command returns.
    #[error("vtpm: {command}: malformed response: {reason}")]
    Malformed {
        /// Command and target.
        command: String,
        /// Why.
        reason: String,
    },
}

impl TpmError {
    /// True if this is `TPM_RC_HANDLE` (format-1, any handle number): the handle does not exist.
    pub fn is_missing_handle(&self) -> bool {
        matches!(self, TpmError::Code { rc, .. } if rc & 0x80 != 0 && rc & 0x3f == 0x0b)
    }
}

/// A TPM reached over `T`.
#[derive(Debug)]
pub struct Tpm<T: TpmTransport> {
    transport: T,
}

impl<T: TpmTransport> Tpm<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        Self { transport }
    }

    /// The transport (the emulated paravisor forwards raw commands through it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn run(
        &mut self,
        command: &str,
        bytes: &[u8],
        handles: usize,
        sessions: bool,
    ) -> Result<(Vec<u32>, Vec<u8>), TpmError> {
        for _ in 0..MAX_RETRIES {
            let response = self
                .transport
                .transact(bytes)
                .map_err(|source| TpmError::Io {
                    command: command.to_string(),
                    tpm: self.transport.describe(),
                    source,
                })?;
            match parse_response(&response, handles, sessions) {
                Ok(r) => return Ok((r.handles, r.params.to_vec())),
                Err(ResponseError::Code(rc)) if RETRYABLE.contains(&rc) => continue,
                Err(ResponseError::Code(rc)) => {
                    return Err(TpmError::Code {
                        command: command.to_string(),
                        rc,
                    })
                }
                Err(ResponseError::Malformed(reason)) => {
                    return Err(TpmError::Malformed {
                        command: command.to_string(),
                        reason,
                    })
                }
            }
        }
        Err(TpmError::Malformed {
            command: command.to_string(),
            reason: format!("still asking to retry after {MAX_RETRIES} tries"),
        })
    }

    fn malformed(command: &str) -> impl FnOnce(String) -> TpmError + '_ {
        move |reason| TpmError::Malformed {
            command: command.to_string(),
            reason,
        }
    }

    /// TPM2_NV_ReadPublic.
    pub fn nv_read_public(&mut self, index: u32) -> Result<NvPublic, TpmError> {
        let what = format!("NV_ReadPublic {index:#010x}");
        let mut c = Cmd::new(CC_NV_READ_PUBLIC, false);
        c.u32(index);
        let (_, params) = self.run(&what, &c.finish(), 0, false)?;
        let public = marshal::parse_nv_read_public(&params).map_err(Self::malformed(&what))?;
        if public.index != index {
            return Err(TpmError::Malformed {
                command: what,
                reason: format!("describes index {:#010x}", public.index),
            });
        }
        Ok(public)
    }

    /// One TPM property (GetCapability TPM_CAP_TPM_PROPERTIES).
    pub fn property(&mut self, property: u32) -> Result<u32, TpmError> {
        let what = format!("GetCapability TPM_PT {property:#x}");
        let mut c = Cmd::new(CC_GET_CAPABILITY, false);
        c.u32(6).u32(property).u32(1);
        let (_, params) = self.run(&what, &c.finish(), 0, false)?;
        let props = marshal::parse_tpm_properties(&params).map_err(Self::malformed(&what))?;
        props
            .into_iter()
            .find(|(p, _)| *p == property)
            .map(|(_, v)| v)
            .ok_or(TpmError::Malformed {
                command: what,
                reason: "property not returned".into(),
            })
    }

    /// `TPM_PT_NV_BUFFER_MAX`: the largest NV_Read/NV_Write chunk, capped at 1024 and at least 64.
    pub fn nv_buffer_max(&mut self) -> Result<usize, TpmError> {
        const TPM_PT_NV_BUFFER_MAX: u32 = 0x100 + 44;
        let v = self.property(TPM_PT_NV_BUFFER_MAX)?;
        Ok((v as usize).clamp(64, 1024))
    }

    /// The handle that authorizes reading (`read`) or writing an index: the owner if the index
    /// allows owner access (as Azure's indices do), else the index itself.
    fn nv_auth(public: &NvPublic, read: bool) -> u32 {
        let owner = if read {
            TPMA_NV_OWNERREAD
        } else {
            TPMA_NV_OWNERWRITE
        };
        if public.attributes & owner != 0 {
            TPM_RH_OWNER
        } else {
            public.index
        }
    }

    /// TPM2_NV_Read of the whole index, in chunks of the TPM's NV buffer size.
    pub fn nv_read(&mut self, index: u32) -> Result<Vec<u8>, TpmError> {
        let public = self.nv_read_public(index)?;
        let auth = Self::nv_auth(&public, true);
        let chunk = self.nv_buffer_max()?;
        let total = usize::from(public.data_size);
        let mut out = Vec::with_capacity(total);
        while out.len() < total {
            let n = chunk.min(total - out.len());
            let what = format!("NV_Read {index:#010x} at {}", out.len());
            let mut c = Cmd::new(CC_NV_READ, true);
            // n ≤ 1024 and the offset < 65536 (data_size is a u16).
            c.u32(auth)
                .u32(index)
                .pw_sessions(1)
                .u16(n as u16)
                .u16(out.len() as u16);
            let (_, params) = self.run(&what, &c.finish(), 0, true)?;
            let data = marshal::parse_nv_read(&params, n).map_err(Self::malformed(&what))?;
            if data.len() != n {
                return Err(TpmError::Malformed {
                    command: what,
                    reason: format!("{} bytes returned, {n} asked", data.len()),
                });
            }
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// TPM2_NV_Write of `data` at offset 0, in chunks of the TPM's NV buffer size.
    pub fn nv_write(&mut self, index: u32, data: &[u8]) -> Result<(), TpmError> {
        let public = self.nv_read_public(index)?;
        let what = format!("NV_Write {index:#010x}");
        if data.len() > usize::from(public.data_size) {
            return Err(TpmError::Malformed {
                command: what,
                reason: format!(
                    "{} bytes do not fit the index's {} bytes",
                    data.len(),
                    public.data_size
                ),
            });
        }
        let auth = Self::nv_auth(&public, false);
        let chunk = self.nv_buffer_max()?;
        for (i, part) in data.chunks(chunk).enumerate() {
            let mut c = Cmd::new(CC_NV_WRITE, true);
            c.u32(auth)
                .u32(index)
                .pw_sessions(1)
                .tpm2b(part)
                .u16((i * chunk) as u16);
            self.run(&what, &c.finish(), 0, true)?;
        }
        Ok(())
    }

    /// TPM2_NV_DefineSpace by the owner (empty auth value), SHA-256 name.
    pub fn nv_define_space(
        &mut self,
        index: u32,
        size: u16,
        attributes: u32,
    ) -> Result<(), TpmError> {
        let what = format!("NV_DefineSpace {index:#010x}");
        let mut public = Cmd::new(0, false);
        public
            .u32(index)
            .u16(crate::azure::TPM_ALG_SHA256)
            .u32(attributes)
            .u16(0)
            .u16(size);
        let public = public.finish().split_off(HEADER);
        let mut c = Cmd::new(CC_NV_DEFINE_SPACE, true);
        c.u32(TPM_RH_OWNER).pw_sessions(1).u16(0).tpm2b(&public);
        self.run(&what, &c.finish(), 0, true)?;
        Ok(())
    }

    /// TPM2_PCR_Read of SHA-256 `pcrs` (each < 24), as many calls as the TPM needs (8 a call).
    pub fn pcr_read(&mut self, pcrs: &[u32]) -> Result<Vec<(u32, [u8; 32])>, TpmError> {
        let mut left: Vec<u32> = pcrs.iter().copied().filter(|&p| p < 24).collect();
        left.sort_unstable();
        left.dedup();
        let mut out = Vec::new();
        // Each round returns at least one PCR or fails: at most 24 rounds.
        for _ in 0..24 {
            if left.is_empty() {
                break;
            }
            let what = "PCR_Read sha256";
            let mut c = Cmd::new(CC_PCR_READ, false);
            marshal::pcr_selection(&mut c, &left);
            let (_, params) = self.run(what, &c.finish(), 0, false)?;
            let got = marshal::parse_pcr_read(&params).map_err(Self::malformed(what))?;
            if got.is_empty() {
                return Err(TpmError::Malformed {
                    command: what.into(),
                    reason: format!("no value returned for PCRs {left:?}"),
                });
            }
            for (i, v) in got {
                let Some(pos) = left.iter().position(|&p| p == i) else {
                    return Err(TpmError::Malformed {
                        command: what.into(),
                        reason: format!("PCR {i} returned, not asked"),
                    });
                };
                left.remove(pos);
                out.push((i, v));
            }
        }
        out.sort_unstable_by_key(|(i, _)| *i);
        Ok(out)
    }

    /// TPM2_Quote by `ak` (password session, empty password) over SHA-256 `pcrs`, scheme
    /// RSASSA/SHA-256. Returns the `TPMS_ATTEST` bytes and the raw signature.
    pub fn quote(
        &mut self,
        ak: u32,
        qualifying_data: &[u8],
        pcrs: &[u32],
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let what = format!("Quote by {ak:#010x}");
        let mut c = Cmd::new(CC_QUOTE, true);
        c.u32(ak)
            .pw_sessions(1)
            .tpm2b(qualifying_data)
            .u16(crate::azure::TPM_ALG_RSASSA)
            .u16(crate::azure::TPM_ALG_SHA256);
        marshal::pcr_selection(&mut c, pcrs);
        let (_, params) = self.run(&what, &c.finish(), 0, true)?;
        marshal::parse_quote(&params).map_err(Self::malformed(&what))
    }

    /// TPM2_ReadPublic of an RSA key.
    pub fn read_public(&mut self, handle: u32) -> Result<TpmRsaPublic, TpmError> {
        let what = format!("ReadPublic {handle:#010x}");
        let mut c = Cmd::new(CC_READ_PUBLIC, false);
        c.u32(handle);
        let (_, params) = self.run(&what, &c.finish(), 0, false)?;
        marshal::parse_read_public(&params).map_err(Self::malformed(&what))
    }

    /// TPM2_CreatePrimary in the endorsement hierarchy of an RSA-2048 restricted signing key
    /// (RSASSA/SHA-256), the shape of Azure's vTPM attestation key. Returns its transient handle.
    pub fn create_primary_ak(&mut self) -> Result<u32, TpmError> {
        self.create_primary("CreatePrimary AK", TPM_RH_ENDORSEMENT, &Self::ak_template())
    }

    /// TPM2_CreatePrimary under `hierarchy` (empty authorization) of the key whose `TPMT_PUBLIC`
    /// template is `public` (e.g. read from an NV index, as GCE's AK template is). The same
    /// template gives the same key on the same TPM. Returns its transient handle.
    pub fn create_primary(
        &mut self,
        what: &str,
        hierarchy: u32,
        public: &[u8],
    ) -> Result<u32, TpmError> {
        let mut c = Cmd::new(CC_CREATE_PRIMARY, true);
        c.u32(hierarchy)
            .pw_sessions(1)
            .tpm2b(&[0, 0, 0, 0]) // inSensitive: empty userAuth and data
            .tpm2b(public)
            .u16(0) // outsideInfo
            .u32(0); // creationPCR
        let (handles, _) = self.run(what, &c.finish(), 1, true)?;
        handles.first().copied().ok_or(TpmError::Malformed {
            command: what.into(),
            reason: "no handle".into(),
        })
    }

    /// The `TPMT_PUBLIC` template [`Tpm::create_primary_ak`] uses (an RSA-2048 restricted
    /// RSASSA/SHA-256 signing key), for provisioning an emulated cloud vTPM's NV template.
    pub fn ak_template() -> Vec<u8> {
        // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign
        let attributes: u32 = 1 << 1 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 16 | 1 << 18;
        let mut public = Cmd::new(0, false);
        public
            .u16(0x0001) // TPM_ALG_RSA
            .u16(crate::azure::TPM_ALG_SHA256)
            .u32(attributes)
            .u16(0) // authPolicy
            .u16(0x0010) // symmetric: TPM_ALG_NULL
            .u16(crate::azure::TPM_ALG_RSASSA)
            .u16(crate::azure::TPM_ALG_SHA256)
            .u16(2048)
            .u32(0)
            .u16(0); // unique
        public.finish().split_off(HEADER)
    }

    /// TPM2_EvictControl by the owner: makes `object` persistent at `persistent`.
    pub fn evict_control(&mut self, object: u32, persistent: u32) -> Result<(), TpmError> {
        let what = format!("EvictControl {object:#010x} to {persistent:#010x}");
        let mut c = Cmd::new(CC_EVICT_CONTROL, true);
        c.u32(TPM_RH_OWNER)
            .u32(object)
            .pw_sessions(1)
            .u32(persistent);
        self.run(&what, &c.finish(), 0, true)?;
        Ok(())
    }

    /// TPM2_Startup(TPM_SU_CLEAR). `TPM_RC_INITIALIZE` (already started) is success.
    pub fn startup_clear(&mut self) -> Result<(), TpmError> {
        const TPM_RC_INITIALIZE: u32 = 0x100;
        let mut c = Cmd::new(CC_STARTUP, false);
        c.u16(0);
        match self.run("Startup CLEAR", &c.finish(), 0, false) {
            Err(TpmError::Code { rc, .. }) if rc == TPM_RC_INITIALIZE => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// TPM2_PCR_Extend of SHA-256 `pcr` (< 24) with `digest` (what a firmware does as it boots;
    /// the emulated vTPMs' tests use it).
    pub fn pcr_extend(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), TpmError> {
        let what = format!("PCR_Extend {pcr}");
        let mut c = Cmd::new(CC_PCR_EXTEND, true);
        c.u32(pcr)
            .pw_sessions(1)
            .u32(1) // TPML_DIGEST_VALUES.count
            .u16(crate::azure::TPM_ALG_SHA256)
            .bytes(digest);
        self.run(&what, &c.finish(), 0, true)?;
        Ok(())
    }

    /// TPM2_FlushContext of a transient object.
    pub fn flush_context(&mut self, handle: u32) -> Result<(), TpmError> {
        let what = format!("FlushContext {handle:#010x}");
        let mut c = Cmd::new(CC_FLUSH_CONTEXT, false);
        c.u32(handle);
        self.run(&what, &c.finish(), 0, false)?;
        Ok(())
    }
}

/// The command header length, stripped from a `Cmd` used to marshal a structure.
const HEADER: usize = marshal::HEADER_LEN;
