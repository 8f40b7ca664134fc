//! Byte transports to a TPM: the kernel's resource-managed character device (`/dev/tpmrm0`), or
//! swtpm's command socket (Unix or TCP), plus swtpm's control channel for `CMD_INIT`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::marshal::{HEADER_LEN, MAX_TPM_MESSAGE};

/// How long one command may take (an RSA-2048 quote takes milliseconds; key creation seconds).
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one marshalled TPM2 command and returns the whole response.
pub trait TpmTransport: Send {
    /// One command/response exchange.
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>>;
    /// Where the TPM is, for error messages.
    fn describe(&self) -> String;
}

impl TpmTransport for Box<dyn TpmTransport> {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        (**self).transact(command)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A TPM character device: write the whole command, read the whole response in one `read`
/// (the kernel's TPM driver returns a complete response to a large enough read).
#[derive(Debug)]
pub struct DeviceTransport {
    path: PathBuf,
    file: File,
}

impl DeviceTransport {
    /// The in-kernel resource manager's device: what a guest agent uses.
    pub const DEFAULT_PATH: &'static str = "/dev/tpmrm0";

    /// Opens `path` read-write.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(Self { path, file })
    }
}

impl TpmTransport for DeviceTransport {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.file.write_all(command)?;
        let mut buf = vec![0u8; MAX_TPM_MESSAGE];
        let n = self.file.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Where swtpm (or the emulated paravisor in front of it) listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    /// A Unix socket (`--server type=unixio,path=...`).
    Unix(PathBuf),
    /// A TCP port (`--server type=tcp,port=...`).
    Tcp(SocketAddr),
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            SocketAddress::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn connect(addr: &SocketAddress) -> io::Result<Box<dyn Stream>> {
    Ok(match addr {
        SocketAddress::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Box::new(s)
        }
        SocketAddress::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, IO_TIMEOUT)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Box::new(s)
        }
    })
}

/// Reads one TPM command (the emulated paravisor's proxy side).
#[cfg(feature = "sim")]
pub(crate) fn read_command(r: &mut impl Read) -> io::Result<Vec<u8>> {
    read_message(r)
}

/// Reads one framed TPM message (header size field) of at most [`MAX_TPM_MESSAGE`] bytes.
pub(crate) fn read_message(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut msg = vec![0u8; HEADER_LEN];
    r.read_exact(&mut msg)?;
    let size = u32::from_be_bytes([msg[2], msg[3], msg[4], msg[5]]) as usize;
    if !(HEADER_LEN..=MAX_TPM_MESSAGE).contains(&size) {
        return Err(invalid(format!(
            "TPM message size {size} outside {HEADER_LEN}..={MAX_TPM_MESSAGE}"
        )));
    }
    msg.resize(size, 0);
    r.read_exact(&mut msg[HEADER_LEN..])?;
    Ok(msg)
}

/// swtpm's TPM command channel (raw commands, no framing besides the TPM header), connected
/// on first use and kept open (swtpm serves one connection at a time).
pub struct SocketTransport {
    addr: SocketAddress,
    stream: Option<Box<dyn Stream>>,
}

impl std::fmt::Debug for SocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketTransport")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SocketTransport {
    /// A transport to `addr` (connected lazily).
    pub fn new(addr: SocketAddress) -> Self {
        Self { addr, stream: None }
    }
    /// A transport to the Unix socket `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::new(SocketAddress::Unix(path.into()))
    }
}

impl TpmTransport for SocketTransport {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => self.stream.insert(connect(&self.addr)?),
        };
        let result = stream
            .write_all(command)
            .and_then(|()| read_message(stream));
        if result.is_err() {
            // A broken exchange leaves the stream out of step: reconnect next time.
            self.stream = None;
        }
        result
    }
    fn describe(&self) -> String {
        self.addr.to_string()
    }
}

/// swtpm control channel `CMD_INIT` (with `--flags startup-clear`, swtpm then sends
/// TPM2_Startup(CLEAR) itself). Returns swtpm's result code on failure as an error.
pub fn swtpm_ctrl_init(ctrl: &SocketAddress) -> io::Result<()> {
    const CMD_INIT: u32 = 0x0000_0002;
    let mut s = connect(ctrl)?;
    let mut cmd = Vec::with_capacity(8);
    cmd.extend_from_slice(&CMD_INIT.to_be_bytes());
    cmd.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&cmd)?;
    let mut rc = [0u8; 4];
    s.read_exact(&mut rc)?;
    match u32::from_be_bytes(rc) {
        0 => Ok(()),
        rc => Err(io::Error::other(format!(
            "swtpm control channel: CMD_INIT returned {rc:#x}"
        ))),
    }
}
