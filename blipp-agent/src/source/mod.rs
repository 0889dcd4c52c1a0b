//! Where numbers come from: kernel text files (pure parsers in [`procfs`]),
//! eBPF maps ([`ebpf`]), netlink and its fallbacks ([`netlink`]), configured
//! commands ([`command`]) and what Nagios plugins print ([`perfdata`]).

pub mod command;
pub mod ebpf;
pub mod netlink;
pub mod perfdata;
pub mod procfs;
pub mod read;
pub mod words;
