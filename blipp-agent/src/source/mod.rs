//! Where numbers come from: kernel text files (pure parsers in [`procfs`]),
//! eBPF maps ([`ebpf`]), netlink and its fallbacks ([`netlink`]), configured
//! commands ([`command`]), what Nagios plugins print ([`perfdata`]), and
//! followed log files ([`tail`], [`netlogger`]).

pub mod command;
pub mod ebpf;
pub mod netlink;
pub mod netlogger;
pub mod perfdata;
pub mod procfs;
pub mod read;
pub mod tail;
pub mod words;
