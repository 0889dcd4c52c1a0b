//! Link speed and duplex from the `SIOCETHTOOL` ioctl, for kernels without
//! ethtool netlink: `ETHTOOL_GLINKSETTINGS` (4.6+, 32-bit speeds) first,
//! then the legacy `ETHTOOL_GSET` (speed split into two 16-bit halves).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::speed::{Duplex, LinkSpeed, SpeedSource};

// From <linux/ethtool.h> and <linux/sockios.h>.
/// `libc::Ioctl`: the request type differs between glibc and musl.
const SIOCETHTOOL: libc::Ioctl = 0x8946;
const ETHTOOL_GSET: u32 = 0x0000_0001;
const ETHTOOL_GLINKSETTINGS: u32 = 0x0000_004c;
/// The largest link-mode bitmap the handshake can ask for: the kernel
/// reports the size as a negative `s8`.
const MAX_NWORDS: usize = 127;

/// Why the ioctl could not answer.
#[derive(Debug, thiserror::Error)]
pub enum IoctlError {
    /// The socket the ioctl is issued on could not be created.
    #[error("socket(AF_INET, SOCK_DGRAM): {0}")]
    Socket(#[source] io::Error),
    /// The ioctl failed (`ENODEV`: no such interface, `EPERM`, ...).
    #[error("ioctl(SIOCETHTOOL, {cmd}) on {ifname}: {source}")]
    Ioctl {
        /// `ETHTOOL_GLINKSETTINGS` or `ETHTOOL_GSET`.
        cmd: &'static str,
        /// The interface.
        ifname: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The kernel's handshake reply did not make sense.
    #[error("ETHTOOL_GLINKSETTINGS handshake on {ifname} returned {nwords} words")]
    Handshake {
        /// The interface.
        ifname: String,
        /// What the kernel said.
        nwords: i8,
    },
    /// An interface name the kernel cannot hold (empty, too long, NUL).
    #[error("invalid interface name {0:?}")]
    BadName(String),
}

/// `struct ethtool_link_settings` followed by room for its three link-mode
/// bitmaps (supported, advertising, link partner).
#[repr(C)]
#[derive(Clone, Copy)]
struct LinkSettings {
    cmd: u32,
    speed: u32,
    duplex: u8,
    port: u8,
    phy_address: u8,
    autoneg: u8,
    mdio_support: u8,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    link_mode_masks_nwords: i8,
    transceiver: u8,
    master_slave_cfg: u8,
    master_slave_state: u8,
    rate_matching: u8,
    reserved: [u32; 7],
    link_mode_masks: [u32; 3 * MAX_NWORDS],
}

/// The legacy `struct ethtool_cmd`.
#[repr(C)]
#[derive(Clone, Copy)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// A datagram socket to issue `SIOCETHTOOL` on; it reaches the devices of
/// the network namespace of the thread that opened it.
pub struct EthtoolIoctl {
    fd: OwnedFd,
}

impl EthtoolIoctl {
    /// Opens the socket.
    pub fn open() -> Result<Self, IoctlError> {
        // SAFETY: plain socket(2) call; the result is checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(IoctlError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Speed and duplex of `ifname`: `ETHTOOL_GLINKSETTINGS`, or
    /// `ETHTOOL_GSET` where the kernel predates it. A driver without the
    /// query (`EOPNOTSUPP`, e.g. `lo`) or `SPEED_UNKNOWN` is
    /// [`LinkSpeed::Unknown`].
    pub fn link_speed(&self, ifname: &str) -> Result<LinkSpeed, IoctlError> {
        match self.glinksettings(ifname) {
            // Before 4.6 the command itself is unknown: EOPNOTSUPP too.
            Err(IoctlError::Ioctl { source, .. })
                if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            other => return other,
        }
        match self.gset(ifname) {
            Err(IoctlError::Ioctl { source, .. })
                if source.raw_os_error() == Some(libc::EOPNOTSUPP) =>
            {
                Ok(LinkSpeed::Unknown)
            }
            other => other,
        }
    }

    /// `ETHTOOL_GLINKSETTINGS` alone: the bitmap-size handshake, then the
    /// real request.
    pub fn glinksettings(&self, ifname: &str) -> Result<LinkSpeed, IoctlError> {
        // SAFETY: LinkSettings is plain integers; all-zero is valid.
        let mut req: Box<LinkSettings> = Box::new(unsafe { std::mem::zeroed() });
        req.cmd = ETHTOOL_GLINKSETTINGS;
        self.ioctl(
            ifname,
            "ETHTOOL_GLINKSETTINGS",
            std::ptr::from_mut(&mut *req).cast(),
        )?;
        // The kernel answers a request with the wrong bitmap size with the
        // size it wants, negated.
        let nwords = req.link_mode_masks_nwords;
        let wanted = usize::from(nwords.unsigned_abs());
        if nwords >= 0 || req.cmd != ETHTOOL_GLINKSETTINGS || wanted > MAX_NWORDS {
            return Err(IoctlError::Handshake {
                ifname: ifname.to_owned(),
                nwords,
            });
        }
        // SAFETY: as above.
        *req = unsafe { std::mem::zeroed() };
        req.cmd = ETHTOOL_GLINKSETTINGS;
        req.link_mode_masks_nwords = nwords.saturating_neg();
        self.ioctl(
            ifname,
            "ETHTOOL_GLINKSETTINGS",
            std::ptr::from_mut(&mut *req).cast(),
        )?;
        Ok(LinkSpeed::from_kernel(
            req.speed,
            Duplex::from_kernel(req.duplex),
            SpeedSource::Ioctl,
        ))
    }

    /// The legacy `ETHTOOL_GSET` alone.
    pub fn gset(&self, ifname: &str) -> Result<LinkSpeed, IoctlError> {
        // SAFETY: EthtoolCmd is plain integers; all-zero is valid.
        let mut req: EthtoolCmd = unsafe { std::mem::zeroed() };
        req.cmd = ETHTOOL_GSET;
        self.ioctl(ifname, "ETHTOOL_GSET", std::ptr::from_mut(&mut req).cast())?;
        let speed = (u32::from(req.speed_hi) << 16) | u32::from(req.speed);
        Ok(LinkSpeed::from_kernel(
            speed,
            Duplex::from_kernel(req.duplex),
            SpeedSource::Ioctl,
        ))
    }

    /// `ioctl(fd, SIOCETHTOOL, &ifreq{ifname, data})`.
    fn ioctl(
        &self,
        ifname: &str,
        cmd: &'static str,
        data: *mut libc::c_char,
    ) -> Result<(), IoctlError> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(IoctlError::BadName(ifname.to_owned()));
        }
        // SAFETY: ifreq is plain data; all-zero is valid (NUL-terminated name).
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
            *dst = libc::c_char::from_ne_bytes([*src]);
        }
        ifr.ifr_ifru.ifru_data = data;
        // SAFETY: `ifr` names a NUL-terminated interface and points at a
        // buffer of the layout the ethtool command in it expects, which
        // lives until the call returns.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL, &mut ifr) };
        if rc < 0 {
            return Err(IoctlError::Ioctl {
                cmd,
                ifname: ifname.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts must match the kernel's: 48 bytes of ethtool_link_settings
    /// before the bitmaps, 44 bytes of ethtool_cmd.
    #[test]
    fn struct_layouts() {
        assert_eq!(std::mem::offset_of!(LinkSettings, link_mode_masks), 48);
        assert_eq!(
            std::mem::offset_of!(LinkSettings, link_mode_masks_nwords),
            15
        );
        assert_eq!(std::mem::size_of::<EthtoolCmd>(), 44);
        assert_eq!(std::mem::offset_of!(EthtoolCmd, speed_hi), 28);
    }

    #[test]
    fn bad_names_are_refused() {
        let io = EthtoolIoctl::open().unwrap();
        for name in ["", "a-name-longer-than-15", "a\0b"] {
            assert!(
                matches!(io.link_speed(name), Err(IoctlError::BadName(_))),
                "{name:?}"
            );
        }
        assert!(matches!(
            io.link_speed("blipp-no-such"),
            Err(IoctlError::Ioctl { source, .. }) if source.raw_os_error() == Some(libc::ENODEV)
        ));
    }
}
