//! Where numbers come from: kernel text files (pure parsers in [`procfs`]),
//! eBPF maps ([`ebpf`]).

pub mod ebpf;
pub mod procfs;
pub mod read;
