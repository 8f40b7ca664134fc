//! Failures of the configfs-tsm interface. Each names the step and the file.

use thiserror::Error;

/// A configfs-tsm failure. Nothing is retried forever and no partial report is returned.
#[derive(Debug, Error)]
pub enum TsmError {
    /// The report directory does not exist (no configfs, kernel older than 6.7, or no TSM core).
    #[error("configfs-tsm: {root} does not exist (needs Linux >= 6.7 with configfs mounted)")]
    Absent {
        /// The report directory looked for.
        root: String,
    },
    /// Making the report entry failed.
    #[error("configfs-tsm: creating report entry {path}")]
    CreateEntry {
        /// The entry.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Writing an attribute failed.
    #[error("configfs-tsm: writing {attribute} ({path})")]
    Write {
        /// Attribute name (`inblob`, `privlevel`).
        attribute: &'static str,
        /// The file.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Reading an attribute failed.
    #[error("configfs-tsm: reading {attribute} ({path})")]
    Read {
        /// Attribute name.
        attribute: &'static str,
        /// The file.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// No TSM provider is registered (the kernel answers ENXIO): no SEV-SNP or TDX guest driver
    /// is bound, for example on a machine without the hardware.
    #[error("configfs-tsm: no TSM provider is registered (ENXIO reading {attribute}): is this a SEV-SNP or TDX guest with its driver loaded?")]
    NoProvider {
        /// The attribute whose read said so.
        attribute: &'static str,
    },
    /// The firmware or the kernel was busy (EBUSY / EAGAIN) for every one of our tries.
    #[error("configfs-tsm: the report request stayed busy after {tries} tries while {step}")]
    Busy {
        /// What was being done.
        step: &'static str,
        /// How many tries were made.
        tries: u32,
        /// The last failure.
        #[source]
        source: std::io::Error,
    },
    /// The provider is not the one this guest's TEE needs.
    #[error("configfs-tsm: provider is `{found}`, expected `{expected}`")]
    WrongProvider {
        /// What we need.
        expected: &'static str,
        /// What the kernel says.
        found: String,
    },
    /// An attribute's text is not what the ABI says it is.
    #[error("configfs-tsm: {attribute} holds `{text}`, not {expected}")]
    BadAttribute {
        /// Attribute name.
        attribute: &'static str,
        /// What it holds (attribute text is public, never secret).
        text: String,
        /// What the ABI promises.
        expected: &'static str,
    },
    /// Another writer changed the request between our writes and our reads.
    #[error("configfs-tsm: generation changed from {expected} to {found} while {step}: another writer used this report entry, the report is discarded")]
    GenerationChanged {
        /// The generation our own writes account for.
        expected: u64,
        /// The generation found.
        found: u64,
        /// What was being done.
        step: &'static str,
    },
    /// The requested privilege level is below the provider's floor.
    #[error("configfs-tsm: privlevel {requested} is below the provider's privlevel_floor {floor}")]
    PrivlevelBelowFloor {
        /// Requested level.
        requested: u32,
        /// The floor.
        floor: u32,
    },
    /// A blob is larger than any real report or certificate table.
    #[error("configfs-tsm: {attribute} is larger than {limit} bytes")]
    TooLarge {
        /// Attribute name.
        attribute: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The report is empty.
    #[error("configfs-tsm: {attribute} is empty")]
    Empty {
        /// Attribute name.
        attribute: &'static str,
    },
}
