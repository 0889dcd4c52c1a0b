//! Where numbers come from: kernel text files (pure parsers in [`procfs`]),
//! eBPF maps ([`ebpf`]), netlink and its fallbacks ([`netlink`]).

pub mod ebpf;
pub mod netlink;
pub mod procfs;
pub mod read;
