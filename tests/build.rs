//! Same probe as the FUSE emulation crate's (one definition): sets `cfg(fuse_available)` for
//! the end-to-end tests that run a simulated guest over the emulated configfs-tsm.
include!("../crates/tsm-fuse/build.rs");
