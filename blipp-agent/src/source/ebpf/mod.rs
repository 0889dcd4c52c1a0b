//! blipp's eBPF programs on the user side: loading the embedded object,
//! attaching programs, reading their maps.

pub mod disk;
mod error;
pub mod runtime;
pub mod tracefs;

pub use error::EbpfError;
pub use runtime::{Kernel, KernelAccess};

/// The object built from `blipp-ebpf` by the build script.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blipp"));
