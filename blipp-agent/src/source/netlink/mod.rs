//! What the kernel's network stack says about links: interfaces and
//! addresses ([`rtnetlink`]), and link speed and duplex along a fallback
//! chain ([`LinkSpeedReader`]): ethtool over generic netlink ([`ethtool`]),
//! the `SIOCETHTOOL` ioctl ([`ioctl`]), `/sys/class/net` ([`sysfs`]). Each
//! path can be used on its own.
//!
//! Netlink and ioctl sockets reach the network namespace of the thread
//! that opened them; sysfs shows the namespace it was mounted from.

pub mod ethtool;
pub mod ioctl;
pub mod rtnetlink;
mod socket;
mod speed;
pub mod sysfs;

pub use socket::NetlinkError;
pub use speed::{Duplex, LinkSpeed, LinkSpeedReader, SpeedSource};
