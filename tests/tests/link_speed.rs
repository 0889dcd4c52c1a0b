//! Link speed through every path blipp has (ethtool netlink, the
//! SIOCETHTOOL ioctl, sysfs), checked against ethtool(8) on a veth pair in
//! a network namespace of the test's own; `lo` is unknown on every path.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, Result};
use blipp::host::HostInfo;
use blipp::source::netlink::ethtool::EthtoolNetlink;
use blipp::source::netlink::ioctl::EthtoolIoctl;
use blipp::source::netlink::{Duplex, LinkSpeed, LinkSpeedReader, SpeedSource, sysfs};
use blipp_tests::netns::{NetNs, PrivateSysfs};
use blipp_tests::require_root;

/// `Speed: 10000Mb/s` and `Duplex: Full` of `ethtool IF`.
fn ethtool_says(text: &str) -> Result<(u64, Duplex)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .with_context(|| format!("no {name} in ethtool output:\n{text}"))
    };
    let speed = field("Speed:")?
        .strip_suffix("Mb/s")
        .context("speed not in Mb/s")?
        .parse()?;
    let duplex = match field("Duplex:")? {
        "Full" => Duplex::Full,
        "Half" => Duplex::Half,
        other => anyhow::bail!("duplex {other}"),
    };
    Ok((speed, duplex))
}

/// A namespace with `lo` up and a veth pair `veth0`/`veth1`, both up.
fn veth_namespace() -> Result<NetNs> {
    let ns = NetNs::new("speed")?;
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ])?;
    for dev in ["lo", "veth0", "veth1"] {
        ns.ip(&["link", "set", dev, "up"])?;
    }
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "veth0"])?;
    Ok(ns)
}

#[test]
fn veth_speed_on_every_path_and_lo_unknown() -> Result<()> {
    if !require_root("link speed of a veth pair in a network namespace") {
        return Ok(());
    }
    let ns = veth_namespace()?;
    let (mbps, duplex) = ethtool_says(&ns.exec(&["ethtool", "veth0"])?)?;
    let known = |via| LinkSpeed::Known {
        mbps,
        duplex: Some(duplex),
        via,
    };
    ns.run(|| -> Result<()> {
        let mut nl = EthtoolNetlink::open()?;
        assert_eq!(nl.link_speed("veth0")?, known(SpeedSource::Netlink));
        assert_eq!(nl.link_speed("lo")?, LinkSpeed::Unknown);

        let io = EthtoolIoctl::open()?;
        assert_eq!(io.glinksettings("veth0")?, known(SpeedSource::Ioctl));
        assert_eq!(io.gset("veth0")?, known(SpeedSource::Ioctl));
        assert_eq!(io.link_speed("veth0")?, known(SpeedSource::Ioctl));
        assert_eq!(io.link_speed("lo")?, LinkSpeed::Unknown);

        let sys = PrivateSysfs::mount()?;
        assert_eq!(
            sysfs::link_speed(sys.path(), "veth0")?,
            known(SpeedSource::Sysfs)
        );
        assert_eq!(sysfs::link_speed(sys.path(), "lo")?, LinkSpeed::Unknown);

        // The chain takes the first path: netlink on this kernel.
        let mut reader = LinkSpeedReader::new(sys.path());
        assert_eq!(reader.read("veth0"), known(SpeedSource::Netlink));
        assert_eq!(reader.read("lo"), LinkSpeed::Unknown);
        assert_eq!(reader.read("blipp-absent0"), LinkSpeed::Unknown);
        Ok(())
    })??;
    Ok(())
}

/// What blippd keeps after start-up (no `CAP_NET_ADMIN`) is enough for
/// both ethtool paths: they are reads the kernel allows every user.
#[test]
fn veth_speed_with_only_the_capabilities_blippd_keeps() -> Result<()> {
    if !require_root("link speed of a veth pair in a network namespace") {
        return Ok(());
    }
    let ns = veth_namespace()?;
    let (mbps, duplex) = ethtool_says(&ns.exec(&["ethtool", "veth0"])?)?;
    let known = |via| LinkSpeed::Known {
        mbps,
        duplex: Some(duplex),
        via,
    };
    ns.run(|| -> Result<()> {
        let kept = blipp::source::ebpf::caps::KEPT
            .iter()
            .fold(0, |m, (c, _)| m | 1 << c);
        // Capabilities are per thread: this one (ns.run's own) only.
        blipp::source::command::sandbox::capset(kept)?;
        let mut nl = EthtoolNetlink::open()?;
        assert_eq!(nl.link_speed("veth0")?, known(SpeedSource::Netlink));
        let io = EthtoolIoctl::open()?;
        assert_eq!(io.glinksettings("veth0")?, known(SpeedSource::Ioctl));
        assert_eq!(io.gset("veth0")?, known(SpeedSource::Ioctl));
        Ok(())
    })??;
    Ok(())
}

/// Host information inside the namespace: exactly its interfaces, with
/// the address the test gave and the MAC sysfs shows.
#[test]
fn host_interfaces_in_a_namespace() -> Result<()> {
    if !require_root("host interfaces in a network namespace") {
        return Ok(());
    }
    let ns = veth_namespace()?;
    let (mbps, _) = ethtool_says(&ns.exec(&["ethtool", "veth0"])?)?;
    let mac = ns.exec(&["cat", "/sys/class/net/veth0/address"])?;
    ns.run(|| -> Result<()> {
        let sys = PrivateSysfs::mount()?;
        let host = HostInfo::gather(Path::new("/proc"), sys.path());
        let mut names: Vec<&str> = host.interfaces.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["lo", "veth0", "veth1"]);
        let veth0 = host
            .interfaces
            .iter()
            .find(|i| i.name == "veth0")
            .context("veth0")?;
        assert_eq!(veth0.mac.as_deref(), Some(mac.trim()));
        assert!(
            veth0
                .addresses
                .contains(&("192.0.2.1".parse::<IpAddr>()?, 24)),
            "{veth0:?}"
        );
        assert_eq!(veth0.speed.mbps(), Some(mbps));
        let lo = host
            .interfaces
            .iter()
            .find(|i| i.name == "lo")
            .context("lo")?;
        assert_eq!(lo.speed, LinkSpeed::Unknown);
        assert_eq!(lo.mac, None);
        Ok(())
    })??;
    Ok(())
}

/// blippd with a `port` probe, run inside the namespace as an operator
/// would (`ip netns exec`): veth0's capacity in bytes per second and its
/// duplex, nothing for `lo`.
#[test]
fn blippd_port_probe_in_a_namespace() -> Result<()> {
    if !require_root("blippd's port probe in a network namespace") {
        return Ok(());
    }
    let ns = veth_namespace()?;
    let (mbps, duplex) = ethtool_says(&ns.exec(&["ethtool", "veth0"])?)?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("blipp.json");
    std::fs::write(
        &config,
        r#"{"properties":{"configurations":{"probes":{"port":{"probe_module":"port","refresh":600}}}}}"#,
    )?;
    let blippd = blipp_tests::agent_bin("blippd");
    let out = ns.exec(&[
        blippd.to_str().context("UTF-8 path")?,
        "--once",
        "-c",
        config.to_str().context("UTF-8 path")?,
    ])?;
    let samples: Vec<serde_json::Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let value = |subject: &str, event_type: &str| {
        samples
            .iter()
            .find(|s| s["subject"] == subject && s["eventType"] == event_type)
            .map(|s| s["value"].clone())
    };
    assert_eq!(
        value("port:veth0", "ps:tools:blipp:linux:network:link:capacity"),
        Some(serde_json::json!(mbps * 125_000)),
        "{out}"
    );
    assert_eq!(
        value("port:veth0", "ps:tools:blipp:linux:network:link:duplex"),
        Some(serde_json::json!(duplex.as_str())),
        "{out}"
    );
    assert!(
        samples.iter().all(|s| s["subject"] != "port:lo"),
        "lo has no speed: {out}"
    );
    Ok(())
}
