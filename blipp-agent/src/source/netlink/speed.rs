//! A link's speed and duplex, and the order in which blipp asks for them:
//! ethtool over generic netlink (5.6+), the `SIOCETHTOOL` ioctl (every
//! kernel), `/sys/class/net/IF/speed` (needs the interface up and a sysfs
//! of the right network namespace).
//!
//! All three end in the same driver callback, so a driver that has no speed
//! to tell answers "unknown" on every path; the next path is tried only when
//! a path itself does not work (no ethtool family, no socket, no file).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ethtool::EthtoolNetlink;
use super::ioctl::EthtoolIoctl;
use super::sysfs;

/// Full or half duplex; a link whose duplex is unknown has `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Duplex {
    /// Both directions at once.
    Full,
    /// One direction at a time.
    Half,
}

impl Duplex {
    /// The kernel's `DUPLEX_*` value (`DUPLEX_UNKNOWN` = 0xff is `None`).
    pub fn from_kernel(value: u8) -> Option<Duplex> {
        match value {
            0 => Some(Duplex::Half),
            1 => Some(Duplex::Full),
            _ => None,
        }
    }

    /// `"full"` or `"half"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Duplex::Full => "full",
            Duplex::Half => "half",
        }
    }
}

/// Which kernel interface answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeedSource {
    /// `ETHTOOL_MSG_LINKMODES_GET` over generic netlink.
    Netlink,
    /// `SIOCETHTOOL` with `ETHTOOL_GLINKSETTINGS` or `ETHTOOL_GSET`.
    Ioctl,
    /// `/sys/class/net/IF/speed` and `duplex`.
    Sysfs,
}

/// What the kernel says about a link's speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum LinkSpeed {
    /// The driver reports a speed.
    Known {
        /// Megabits per second, as ethtool reports it.
        mbps: u64,
        /// Full or half, when the driver says.
        duplex: Option<Duplex>,
        /// Which interface answered.
        via: SpeedSource,
    },
    /// No speed: a virtual device without one (`lo`), a link that is down,
    /// a driver that does not implement the query, or no path worked.
    Unknown,
}

impl LinkSpeed {
    /// A speed as the kernel encodes it in ethtool replies: `SPEED_UNKNOWN`
    /// (-1, i.e. `u32::MAX`), 0 and the 16-bit -1 of old drivers mean
    /// unknown, the rule ethtool(8) itself applies.
    pub fn from_kernel(speed: u32, duplex: Option<Duplex>, via: SpeedSource) -> LinkSpeed {
        match speed {
            0 | 0xffff | u32::MAX => LinkSpeed::Unknown,
            mbps => LinkSpeed::Known {
                mbps: u64::from(mbps),
                duplex,
                via,
            },
        }
    }

    /// Megabits per second, when known.
    pub fn mbps(&self) -> Option<u64> {
        match self {
            LinkSpeed::Known { mbps, .. } => Some(*mbps),
            LinkSpeed::Unknown => None,
        }
    }

    /// Bytes per second (UNIS's port `capacity` unit), when known.
    pub fn bytes_per_second(&self) -> Option<u64> {
        self.mbps().map(|m| m.saturating_mul(125_000))
    }

    /// The duplex, when known.
    pub fn duplex(&self) -> Option<Duplex> {
        match self {
            LinkSpeed::Known { duplex, .. } => *duplex,
            LinkSpeed::Unknown => None,
        }
    }
}

/// How a path that is not there is remembered: opened once, and after a
/// failure to open never tried again by this reader.
enum Lazy<T> {
    NotYet,
    Open(T),
    Failed,
}

impl<T> Lazy<T> {
    fn get(&mut self, open: impl FnOnce() -> Option<T>) -> Option<&mut T> {
        if matches!(self, Lazy::NotYet) {
            *self = open().map_or(Lazy::Failed, Lazy::Open);
        }
        match self {
            Lazy::Open(t) => Some(t),
            _ => None,
        }
    }
}

/// Reads link speeds along the fallback chain, keeping its sockets open
/// between reads. Sockets belong to the network namespace of the thread
/// that first uses the reader.
pub struct LinkSpeedReader {
    netlink: Lazy<EthtoolNetlink>,
    ioctl: Lazy<EthtoolIoctl>,
    sys_dir: PathBuf,
}

impl LinkSpeedReader {
    /// A reader whose last resort is `sys_dir/class/net`.
    pub fn new(sys_dir: &Path) -> Self {
        Self {
            netlink: Lazy::NotYet,
            ioctl: Lazy::NotYet,
            sys_dir: sys_dir.to_owned(),
        }
    }

    /// The speed of `ifname` from the first path that works.
    pub fn read(&mut self, ifname: &str) -> LinkSpeed {
        let netlink = self.netlink.get(|| {
            EthtoolNetlink::open()
                .inspect_err(
                    |e| tracing::debug!(error = %e, "ethtool netlink unavailable, using the ioctl"),
                )
                .ok()
        });
        if let Some(nl) = netlink {
            match nl.link_speed(ifname) {
                Ok(s) => return s,
                Err(e) => tracing::debug!(interface = ifname, error = %e, "ethtool netlink failed"),
            }
        }
        let ioctl = self.ioctl.get(|| {
            EthtoolIoctl::open()
                .inspect_err(|e| tracing::debug!(error = %e, "ethtool ioctl socket unavailable"))
                .ok()
        });
        if let Some(io) = ioctl {
            match io.link_speed(ifname) {
                Ok(s) => return s,
                Err(e) => tracing::debug!(interface = ifname, error = %e, "ethtool ioctl failed"),
            }
        }
        match sysfs::link_speed(&self.sys_dir, ifname) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(interface = ifname, error = %e, "no path knows the link speed");
                LinkSpeed::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_encodings_of_unknown() {
        for unknown in [0, 0xffff, u32::MAX] {
            assert_eq!(
                LinkSpeed::from_kernel(unknown, Some(Duplex::Full), SpeedSource::Ioctl),
                LinkSpeed::Unknown
            );
        }
        let s = LinkSpeed::from_kernel(25_000, Duplex::from_kernel(1), SpeedSource::Netlink);
        assert_eq!(s.mbps(), Some(25_000));
        assert_eq!(s.bytes_per_second(), Some(3_125_000_000));
        assert_eq!(s.duplex(), Some(Duplex::Full));
        assert_eq!(Duplex::from_kernel(0), Some(Duplex::Half));
        assert_eq!(Duplex::from_kernel(0xff), None);
        assert_eq!(LinkSpeed::Unknown.mbps(), None);
    }
}
