//! The network interfaces, their link-layer addresses and IP addresses,
//! from two rtnetlink dumps (`RTM_GETLINK`, `RTM_GETADDR`): what `ip addr`
//! shows, for the network namespace of the calling thread.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Arphrd, Ifa, Ifla, RtAddrFamily, RtScope, Rtm};
use neli::consts::socket::NlFamily;
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder};

use super::socket::{NetlinkError, Socket};

/// Why the interfaces could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum RtnetlinkError {
    /// A dump failed.
    #[error("rtnetlink: {0}")]
    Netlink(#[from] NetlinkError),
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The kernel's interface index.
    pub index: u32,
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// The Ethernet or InfiniBand hardware address, lower-case hex with
    /// colons; `None` for links without one (loopback, tunnels) or an
    /// all-zero address.
    pub mac: Option<String>,
    /// IPv4 and IPv6 addresses with their prefix lengths, in the kernel's
    /// order (primary address first).
    pub addresses: Vec<(IpAddr, u8)>,
}

/// `aa:bb:cc:dd:ee:ff` for a hardware address, `None` when all zero.
pub fn format_mac(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(hex.join(":"))
}

/// An address attribute's bytes as an IP address of `family`.
fn ip(family: RtAddrFamily, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        RtAddrFamily::Inet => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        RtAddrFamily::Inet6 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// Every interface with its addresses, ordered by index.
pub fn links() -> Result<Vec<Link>, RtnetlinkError> {
    let mut socket = Socket::connect(NlFamily::Route)?;
    let mut by_index: BTreeMap<u32, Link> = BTreeMap::new();
    let request = IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .build()
        .map_err(NetlinkError::build)?;
    socket.request(Rtm::Getlink, NlmF::DUMP, request, |msg: &Ifinfomsg| {
        let Ok(index) = u32::try_from(*msg.ifi_index()) else {
            return Ok(());
        };
        let attrs = msg.rtattrs().get_attr_handle();
        let Ok(name) = attrs.get_attr_payload_as_with_len::<String>(Ifla::Ifname) else {
            return Ok(());
        };
        let has_mac = matches!(msg.ifi_type(), Arphrd::Ether | Arphrd::Infiniband);
        let mac = attrs
            .get_attribute(Ifla::Address)
            .filter(|_| has_mac)
            .and_then(|a| format_mac(a.rta_payload().as_ref()));
        by_index.insert(
            index,
            Link {
                index,
                name,
                mac,
                addresses: Vec::new(),
            },
        );
        Ok(())
    })?;
    let request = IfaddrmsgBuilder::default()
        .ifa_family(RtAddrFamily::Unspecified)
        .ifa_prefixlen(0)
        .ifa_scope(RtScope::Universe)
        .ifa_index(0)
        .build()
        .map_err(NetlinkError::build)?;
    socket.request(Rtm::Getaddr, NlmF::DUMP, request, |msg: &Ifaddrmsg| {
        let Some(link) = by_index.get_mut(msg.ifa_index()) else {
            return Ok(());
        };
        let attrs = msg.rtattrs().get_attr_handle();
        // IFA_LOCAL is the interface's own IPv4 address; IFA_ADDRESS is the
        // peer's on point-to-point links (and the only one for IPv6).
        let attr = attrs
            .get_attribute(Ifa::Local)
            .or_else(|| attrs.get_attribute(Ifa::Address));
        if let Some(addr) = attr.and_then(|a| ip(*msg.ifa_family(), a.rta_payload().as_ref())) {
            link.addresses.push((addr, *msg.ifa_prefixlen()));
        }
        Ok(())
    })?;
    Ok(by_index.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            format_mac(&[0x02, 0xfc, 0, 0, 0, 1]).as_deref(),
            Some("02:fc:00:00:00:01")
        );
        assert_eq!(format_mac(&[0; 6]), None);
        assert_eq!(format_mac(&[]), None);
    }

    /// The loopback interface is in every network namespace, with 127.0.0.1/8
    /// once it is up (it is up in the namespace the tests run in).
    #[test]
    fn loopback_is_listed() {
        let links = links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo is listed");
        assert_eq!(lo.mac, None);
        assert!(
            lo.addresses.contains(&(IpAddr::V4(Ipv4Addr::LOCALHOST), 8)),
            "{lo:?}"
        );
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        let sys: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for s in &sys {
            assert!(names.contains(&s.as_str()), "{s} missing from {names:?}");
        }
    }
}
