//! The configfs-tsm report protocol: one entry per request, generation-checked.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::tsm::TsmError;
use crate::ReportData;

/// Where the kernel puts the report directory when configfs is mounted at its usual place.
pub const DEFAULT_REPORT_ROOT: &str = "/sys/kernel/config/tsm/report";

/// Largest `outblob` accepted: an SNP report is 1184 bytes and a TDX quote with its PCK chain a
/// few KiB, so 1 MiB only guards against a misbehaving (or emulated) filesystem.
const MAX_OUTBLOB: usize = 1 << 20;
/// Largest `auxblob` accepted (the SNP certificate table: a few certificates).
const MAX_AUXBLOB: usize = 1 << 20;
/// Attribute text files are tiny (`sev_guest\n`, a counter).
const MAX_TEXT: usize = 4096;
/// EBUSY / EAGAIN are retried this many times in all, then reported.
const BUSY_TRIES: u32 = 3;
/// Wait between busy retries (the firmware throttles guest requests for about this long).
const BUSY_WAIT: Duration = Duration::from_millis(200);

// Linux errno values (asm-generic/errno-base.h); the interface is Linux-only.
const ENXIO: i32 = 6;
const EAGAIN: i32 = 11;
const EBUSY: i32 = 16;

/// The TSM provider a guest driver registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsmProvider {
    /// AMD SEV-SNP (`sev-guest` driver): `outblob` is the 1184-byte ATTESTATION_REPORT, `auxblob`
    /// the host's certificate table (possibly empty), `privlevel` selects the VMPL.
    SevGuest,
    /// Intel TDX (`tdx-guest` driver): `outblob` is a DCAP quote; no `auxblob`, no `privlevel`.
    TdxGuest,
}

impl TsmProvider {
    /// The name the kernel shows in `provider`.
    pub fn name(self) -> &'static str {
        match self {
            TsmProvider::SevGuest => "sev_guest",
            TsmProvider::TdxGuest => "tdx_guest",
        }
    }
}

/// What to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsmRequest {
    /// The 64 bytes written to `inblob` (REPORT_DATA).
    pub inblob: ReportData,
    /// SNP only: the VMPL to write to `privlevel` (`None` leaves the kernel's default).
    pub privlevel: Option<u32>,
}

/// What the kernel returned for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsmReport {
    /// The provider that produced it.
    pub provider: TsmProvider,
    /// The report (SNP) or quote (TDX).
    pub outblob: Vec<u8>,
    /// SNP: the certificate table, empty when the host supplies none. TDX: empty.
    pub auxblob: Vec<u8>,
    /// The entry's generation when the report was read.
    pub generation: u64,
}

/// A client of the configfs-tsm report directory at a given root.
#[derive(Clone, Debug)]
pub struct TsmReportClient {
    root: PathBuf,
}

/// Unique entry names within this process (several requests may run at once).
static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

impl TsmReportClient {
    /// A client of the report directory `root` (normally [`DEFAULT_REPORT_ROOT`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The report directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the report directory exists.
    pub fn present(&self) -> bool {
        self.root.is_dir()
    }

    /// The registered provider's name, read through a short-lived entry (the kernel shows
    /// `provider` only inside an entry). `Ok(None)` when the directory exists but no provider is
    /// registered (ENXIO), as on a guest without SEV-SNP or TDX hardware.
    pub fn provider(&self) -> Result<Option<String>, TsmError> {
        let entry = Entry::create(&self.root)?;
        match entry.read_text("provider") {
            Ok(name) => Ok(Some(name)),
            Err(TsmError::NoProvider { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks `expected`'s firmware for a report over `request.inblob`.
    pub fn get_report(
        &self,
        expected: TsmProvider,
        request: &TsmRequest,
    ) -> Result<TsmReport, TsmError> {
        if !self.present() {
            return Err(TsmError::Absent {
                root: self.root.display().to_string(),
            });
        }
        let entry = Entry::create(&self.root)?;
        let provider = entry.read_text("provider")?;
        if provider != expected.name() {
            return Err(TsmError::WrongProvider {
                expected: expected.name(),
                found: provider,
            });
        }
        // Every successful write advances the generation by exactly one; count ours.
        let mut generation = entry.generation()?;
        if let Some(level) = request.privlevel {
            if expected != TsmProvider::SevGuest {
                return Err(TsmError::BadAttribute {
                    attribute: "privlevel",
                    text: level.to_string(),
                    expected: "no privlevel for this provider",
                });
            }
            let floor = entry.read_u64("privlevel_floor")?;
            if u64::from(level) < floor {
                return Err(TsmError::PrivlevelBelowFloor {
                    requested: level,
                    floor: u32::try_from(floor).unwrap_or(u32::MAX),
                });
            }
            entry.write("privlevel", level.to_string().as_bytes())?;
            generation = generation.wrapping_add(1);
        }
        entry.write("inblob", &request.inblob.0)?;
        generation = generation.wrapping_add(1);

        let outblob = entry.read_blob("outblob", MAX_OUTBLOB)?;
        entry.expect_generation(generation, "reading outblob")?;
        if outblob.is_empty() {
            return Err(TsmError::Empty {
                attribute: "outblob",
            });
        }
        let auxblob = match expected {
            TsmProvider::SevGuest => {
                let aux = entry.read_blob("auxblob", MAX_AUXBLOB)?;
                entry.expect_generation(generation, "reading auxblob")?;
                aux
            }
            TsmProvider::TdxGuest => Vec::new(),
        };
        Ok(TsmReport {
            provider: expected,
            outblob,
            auxblob,
            generation,
        })
    }
}

/// One report entry; removed when dropped, whatever happened.
struct Entry {
    path: PathBuf,
}

impl Entry {
    fn create(root: &Path) -> Result<Self, TsmError> {
        let n = NEXT_ENTRY.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!("cdvm-{}-{n}", std::process::id()));
        fs::create_dir(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TsmError::Absent {
                    root: root.display().to_string(),
                }
            } else {
                TsmError::CreateEntry {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
        Ok(Self { path })
    }

    fn attr(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes an attribute in one `write(2)` then closes it: configfs binary attributes take
    /// their value when the file is closed.
    fn write(&self, attribute: &'static str, bytes: &[u8]) -> Result<(), TsmError> {
        let path = self.attr(attribute);
        retry_busy(|| fs::write(&path, bytes)).map_err(|e| match e {
            Failure::Busy { tries, source } => TsmError::Busy {
                step: attribute_step(attribute, true),
                tries,
                source,
            },
            Failure::Io(source) => TsmError::Write {
                attribute,
                path: path.display().to_string(),
                source,
            },
        })
    }

    fn read_blob(&self, attribute: &'static str, limit: usize) -> Result<Vec<u8>, TsmError> {
        let path = self.attr(attribute);
        let bytes = retry_busy(|| {
            let mut out = Vec::new();
            fs::File::open(&path)?
                .take(limit as u64 + 1)
                .read_to_end(&mut out)?;
            Ok(out)
        })
        .map_err(|e| match e {
            Failure::Busy { tries, source } => TsmError::Busy {
                step: attribute_step(attribute, false),
                tries,
                source,
            },
            Failure::Io(source) if source.raw_os_error() == Some(ENXIO) => {
                TsmError::NoProvider { attribute }
            }
            Failure::Io(source) => TsmError::Read {
                attribute,
                path: path.display().to_string(),
                source,
            },
        })?;
        if bytes.len() > limit {
            return Err(TsmError::TooLarge { attribute, limit });
        }
        Ok(bytes)
    }

    fn read_text(&self, attribute: &'static str) -> Result<String, TsmError> {
        let bytes = self.read_blob(attribute, MAX_TEXT)?;
        let text = String::from_utf8(bytes).map_err(|e| TsmError::BadAttribute {
            attribute,
            text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            expected: "UTF-8 text",
        })?;
        Ok(text.trim_end_matches('\n').to_string())
    }

    fn read_u64(&self, attribute: &'static str) -> Result<u64, TsmError> {
        let text = self.read_text(attribute)?;
        text.trim().parse().map_err(|_| TsmError::BadAttribute {
            attribute,
            text,
            expected: "a decimal number",
        })
    }

    fn generation(&self) -> Result<u64, TsmError> {
        self.read_u64("generation")
    }

    fn expect_generation(&self, expected: u64, step: &'static str) -> Result<(), TsmError> {
        let found = self.generation()?;
        if found != expected {
            return Err(TsmError::GenerationChanged {
                expected,
                found,
                step,
            });
        }
        Ok(())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir(&self.path) {
            tracing::warn!(entry = %self.path.display(), "configfs-tsm: removing the report entry failed: {e}");
        }
    }
}

enum Failure {
    Busy { tries: u32, source: io::Error },
    Io(io::Error),
}

/// Runs `op`, retrying a bounded number of times while the kernel says EBUSY or EAGAIN.
fn retry_busy<T>(mut op: impl FnMut() -> io::Result<T>) -> Result<T, Failure> {
    let mut tries = 0;
    loop {
        tries += 1;
        match op() {
            Ok(v) => return Ok(v),
            Err(e) if matches!(e.raw_os_error(), Some(EBUSY | EAGAIN)) => {
                if tries >= BUSY_TRIES {
                    return Err(Failure::Busy { tries, source: e });
                }
                std::thread::sleep(BUSY_WAIT);
            }
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

fn attribute_step(attribute: &'static str, write: bool) -> &'static str {
    match (attribute, write) {
        ("inblob", true) => "writing inblob",
        ("privlevel", true) => "writing privlevel",
        ("outblob", false) => "reading outblob",
        ("auxblob", false) => "reading auxblob",
        (_, true) => "writing an attribute",
        (_, false) => "reading an attribute",
    }
}
