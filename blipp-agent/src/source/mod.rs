//! Where numbers come from: kernel text files (pure parsers in [`procfs`]
//! and [`sysfs`]; the few system calls probes make in [`kernel`]),
//! eBPF maps ([`ebpf`]), netlink and its fallbacks ([`netlink`]), configured
//! commands ([`command`]), what Nagios plugins print ([`perfdata`]), and
//! followed log files ([`tail`], [`netlogger`]).

pub mod command;
pub mod ebpf;
pub mod jsonpath;
pub mod kernel;
pub mod netlink;
pub mod netlogger;
pub mod perfdata;
pub mod procfs;
pub mod read;
pub mod sysfs;
pub mod tail;
pub mod traceroute;
pub mod words;
