//! blipp's eBPF programs on the user side: loading the embedded object,
//! attaching programs, reading their maps.

pub mod attach_btf;
mod batch;
pub mod blob;
pub mod btf;
pub mod caps;
pub mod count;
pub mod disk;
mod error;
pub mod handover;
mod info;
pub mod klog;
pub mod loader;
pub mod net;
pub mod object;
pub mod process;
pub mod runtime;
pub mod stats;
mod sys;
pub mod tracefs;

pub use error::EbpfError;
pub use runtime::{Kernel, KernelAccess};
pub use stats::{ProgramHandle, ProgramStats};

/// The object built from `blipp-ebpf` by the build script.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blipp"));
