//! The Linux configfs-tsm report interface (`/sys/kernel/config/tsm/report`, Linux ≥ 6.7), the
//! one way a guest asks its SEV-SNP or TDX firmware for evidence on a current kernel.
//!
//! The protocol follows the kernel ABI (`Documentation/ABI/testing/configfs-tsm`) and
//! go-configfs-tsm's report flow: make an entry (`mkdir`), remember its `generation`, write
//! `inblob` (and, for SNP, `privlevel`), each write advancing `generation` by one, read `outblob`
//! and `auxblob`, then check that `generation` is exactly what our own writes make it — anything
//! else means another writer changed the request between our write and our read, and the report
//! may carry someone else's data. The entry is removed afterwards, whatever happened.
//!
//! [`TsmReportClient`] is the interface; [`TsmAttester`] turns its output into [`crate::Evidence`].
//! Tests run this same code against a FUSE emulation of the directory (crate `cdvm-tsm-fuse`).

mod attester;
mod ccel;
mod error;
mod report;

pub use attester::TsmAttester;
pub use ccel::{read_ccel, DEFAULT_ACPI_TABLES};
pub use error::TsmError;
pub use report::{TsmProvider, TsmReport, TsmReportClient, TsmRequest, DEFAULT_REPORT_ROOT};
