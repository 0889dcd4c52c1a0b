//! Link speed and duplex from ethtool's generic netlink family (Linux 5.6+):
//! `ETHTOOL_MSG_LINKMODES_GET` for one device, named in the request header.
//! This is what `ethtool IF` itself asks on modern kernels.

use std::iter::once;

use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF};
use neli::consts::socket::NlFamily;
use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, NlattrBuilder};
use neli::types::GenlBuffer;

use super::socket::{NetlinkError, Socket};
use super::speed::{Duplex, LinkSpeed, SpeedSource};

// From <linux/ethtool_netlink.h> (uapi, stable since 5.6).
const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_MSG_LINKMODES_GET: u8 = 4;
const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;
const ETHTOOL_A_HEADER_FLAGS: u16 = 3;
/// Bitsets as value/mask pairs instead of one attribute per link mode: the
/// reply shrinks from kilobytes to a few hundred bytes.
const ETHTOOL_FLAG_COMPACT_BITSETS: u32 = 1;
const ETHTOOL_A_LINKMODES_HEADER: u16 = 1;
const ETHTOOL_A_LINKMODES_SPEED: u16 = 5;
const ETHTOOL_A_LINKMODES_DUPLEX: u16 = 6;

/// Why the ethtool netlink family could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EthtoolError {
    /// The kernel has no "ethtool" generic netlink family (before 5.6, or
    /// built without `CONFIG_ETHTOOL_NETLINK`).
    #[error("no ethtool generic netlink family in this kernel")]
    NoFamily,
    /// The request failed (socket, parse, or an error from the kernel such
    /// as `ENODEV`).
    #[error("ethtool netlink: {0}")]
    Netlink(#[from] NetlinkError),
    /// An interface name the kernel cannot hold (empty, too long, NUL).
    #[error("invalid interface name {0:?}")]
    BadName(String),
}

/// A generic netlink socket with the ethtool family resolved.
pub struct EthtoolNetlink {
    socket: Socket,
    family: u16,
}

impl EthtoolNetlink {
    /// Opens a socket (in the calling thread's network namespace) and
    /// resolves the family.
    pub fn open() -> Result<Self, EthtoolError> {
        let mut socket = Socket::connect(NlFamily::Generic)?;
        let name = NlattrBuilder::default()
            .nla_type(
                AttrTypeBuilder::default()
                    .nla_type(CtrlAttr::FamilyName)
                    .build()
                    .map_err(NetlinkError::build)?,
            )
            .nla_payload(ETHTOOL_GENL_NAME)
            .build()
            .map_err(NetlinkError::build)?;
        let request = GenlmsghdrBuilder::default()
            .cmd(CtrlCmd::Getfamily)
            .version(2)
            .attrs(once(name).collect::<GenlBuffer<_, _>>())
            .build()
            .map_err(NetlinkError::build)?;
        let mut family = None;
        let result = socket.request(
            GenlId::Ctrl,
            NlmF::empty(),
            request,
            |reply: &Genlmsghdr<CtrlCmd, CtrlAttr>| {
                family = reply
                    .attrs()
                    .get_attr_handle()
                    .get_attr_payload_as::<u16>(CtrlAttr::FamilyId)
                    .ok();
                Ok(())
            },
        );
        match result {
            Err(e) if e.errno() == Some(libc::ENOENT) => return Err(EthtoolError::NoFamily),
            other => other?,
        }
        Ok(Self {
            socket,
            family: family.ok_or(EthtoolError::NoFamily)?,
        })
    }

    /// Speed and duplex of `ifname`. A driver without the query
    /// (`EOPNOTSUPP`, e.g. `lo`), a reply without a speed, or
    /// `SPEED_UNKNOWN` is [`LinkSpeed::Unknown`].
    pub fn link_speed(&mut self, ifname: &str) -> Result<LinkSpeed, EthtoolError> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(EthtoolError::BadName(ifname.to_owned()));
        }
        let header = attr(ETHTOOL_A_LINKMODES_HEADER, ())?
            .nest(&attr(ETHTOOL_A_HEADER_DEV_NAME, ifname)?)
            .map_err(NetlinkError::build)?
            .nest(&attr(ETHTOOL_A_HEADER_FLAGS, ETHTOOL_FLAG_COMPACT_BITSETS)?)
            .map_err(NetlinkError::build)?;
        let request = GenlmsghdrBuilder::<u8, u16>::default()
            .cmd(ETHTOOL_MSG_LINKMODES_GET)
            .version(ETHTOOL_GENL_VERSION)
            .attrs(once(header).collect::<GenlBuffer<_, _>>())
            .build()
            .map_err(NetlinkError::build)?;
        let mut speed = LinkSpeed::Unknown;
        let result = self.socket.request(
            self.family,
            NlmF::empty(),
            request,
            |reply: &Genlmsghdr<u8, u16>| {
                let attrs = reply.attrs().get_attr_handle();
                // A missing speed attribute is the kernel's "no speed".
                if let Ok(mbps) = attrs.get_attr_payload_as::<u32>(ETHTOOL_A_LINKMODES_SPEED) {
                    let duplex = attrs
                        .get_attr_payload_as::<u8>(ETHTOOL_A_LINKMODES_DUPLEX)
                        .ok()
                        .and_then(Duplex::from_kernel);
                    speed = LinkSpeed::from_kernel(mbps, duplex, SpeedSource::Netlink);
                }
                Ok(())
            },
        );
        match result {
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => Ok(LinkSpeed::Unknown),
            Err(e) => Err(e.into()),
            Ok(()) => Ok(speed),
        }
    }
}

/// One attribute of type `ty` holding `payload`.
fn attr<P: neli::Size + neli::ToBytes>(
    ty: u16,
    payload: P,
) -> Result<neli::genl::Nlattr<u16, neli::types::Buffer>, NetlinkError> {
    NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(ty)
                .build()
                .map_err(NetlinkError::build)?,
        )
        .nla_payload(payload)
        .build()
        .map_err(NetlinkError::build)
}
