//! Building blocks for backends whose VMs are processes on a host this orchestrator controls
//! (the process provider's agents, the QEMU provider's emulators): one folder per VM and
//! marker-based process supervision. Behind the `host` feature.

pub mod process;
pub mod vm_dir;
