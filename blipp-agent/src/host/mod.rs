//! Facts about the host the agent runs on, gathered once at start-up for
//! the UNIS node and its ports: names, kernel, OS, CPUs, memory, boot time,
//! NUMA nodes and network interfaces with their addresses and link speeds.
//!
//! Files are read under `proc_dir`, `sys_dir` and the os-release paths, so
//! a fixture tree (or a container with the host's /proc and /sys mounted)
//! works; names come from `uname(2)` and the resolver, interfaces from
//! rtnetlink in the calling thread's network namespace.

pub mod parse;
mod sysconf;
mod uname;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::limits::{KERNEL_FILE_MAX, SMALL_FILE_MAX};
pub use crate::source::netlink::{Duplex, LinkSpeed, SpeedSource};
use crate::source::netlink::{LinkSpeedReader, rtnetlink};
use crate::source::procfs::{meminfo, stat};
use crate::source::sysfs;
pub use sysconf::{clock_ticks_per_second, page_size};
pub use uname::{Uname, canonical_name, uname};

/// The running kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// `uname -r`, e.g. `6.1.0-18-amd64`.
    pub release: String,
    /// `uname -m`, e.g. `x86_64`.
    pub machine: String,
}

/// One network interface, as a UNIS port describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Hardware address, `aa:bb:cc:dd:ee:ff`; `None` for loopback, tunnels.
    pub mac: Option<String>,
    /// IPv4 and IPv6 addresses with prefix lengths, primary first.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Link speed and duplex.
    pub speed: LinkSpeed,
}

/// Everything blipp tells UNIS about its node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// `uname -n`.
    pub hostname: String,
    /// The resolver's canonical name for `hostname`, else `hostname`.
    pub fqdn: String,
    /// The running kernel.
    pub kernel: Kernel,
    /// os-release's `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os_release: Option<String>,
    /// `/proc/cpuinfo`'s model name (none on arm64).
    pub cpu_model: Option<String>,
    /// Online CPUs.
    pub cpus: u32,
    /// `MemTotal` of `/proc/meminfo`, kB.
    pub mem_total_kb: Option<u64>,
    /// `btime` of `/proc/stat`: boot time, seconds since the Unix epoch.
    pub boot_time: Option<u64>,
    /// Online NUMA nodes (`[0]` on a machine without NUMA).
    pub numa_nodes: Vec<u32>,
    /// Network interfaces, by kernel index.
    pub interfaces: Vec<Interface>,
    /// The interface of the default IPv4 route (`/proc/net/route`).
    pub default_interface: Option<String>,
}

/// Where [`HostInfo::gather_at`] reads its files.
#[derive(Clone, Debug)]
pub struct HostPaths {
    /// Root of /proc.
    pub proc_dir: PathBuf,
    /// Root of /sys.
    pub sys_dir: PathBuf,
    /// os-release(5) candidates, first readable wins.
    pub os_release: Vec<PathBuf>,
}

impl HostPaths {
    /// /proc and /sys where given; os-release at `/etc/os-release`, then
    /// `/usr/lib/os-release` (the fallback os-release(5) prescribes).
    pub fn new(proc_dir: &Path, sys_dir: &Path) -> Self {
        Self::with_root(proc_dir, sys_dir, Path::new("/"))
    }

    /// As [`HostPaths::new`], with os-release under `root`.
    pub fn with_root(proc_dir: &Path, sys_dir: &Path, root: &Path) -> Self {
        Self {
            proc_dir: proc_dir.to_owned(),
            sys_dir: sys_dir.to_owned(),
            os_release: vec![root.join("etc/os-release"), root.join("usr/lib/os-release")],
        }
    }
}

/// Reads a text file of at most `cap` bytes, logging why not when it
/// cannot.
fn read(path: &Path, cap: u64) -> Option<String> {
    crate::bounded::read_to_string(path, cap)
        .inspect_err(|e| tracing::debug!(path = %path.display(), error = %e, "host information file unreadable"))
        .ok()
}

impl HostInfo {
    /// Gathers everything, reading /proc and /sys under the given roots.
    /// Facts that cannot be read are `None` (or empty) and logged at debug
    /// level; nothing here fails. Resolving the FQDN may wait on DNS and
    /// each interface's speed costs a netlink request: call it at start-up.
    pub fn gather(proc_dir: &Path, sys_dir: &Path) -> HostInfo {
        Self::gather_at(&HostPaths::new(proc_dir, sys_dir))
    }

    /// [`HostInfo::gather`] with every path given.
    pub fn gather_at(paths: &HostPaths) -> HostInfo {
        let u = uname().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "uname failed");
            Uname {
                nodename: String::new(),
                release: String::new(),
                machine: String::new(),
            }
        });
        let fqdn = canonical_name(&u.nodename).unwrap_or_else(|| u.nodename.clone());
        let proc = &paths.proc_dir;
        let sys = &paths.sys_dir;
        let cpuinfo = read(&proc.join("cpuinfo"), KERNEL_FILE_MAX);
        let cpus = online_cpus_listed(sys)
            .or_else(|| {
                let n = cpuinfo.as_deref().map(parse::cpuinfo_processors)?;
                u32::try_from(n).ok().filter(|n| *n > 0)
            })
            .unwrap_or_else(online_cpus_sysconf);
        let os_release = paths
            .os_release
            .iter()
            .find_map(|p| crate::bounded::read_to_string(p, SMALL_FILE_MAX).ok())
            .and_then(|t| parse::os_release(&t));
        let numa_nodes = read(&sys.join("devices/system/node/online"), SMALL_FILE_MAX)
            .and_then(|t| sysfs::id_list(&t))
            .unwrap_or_default();
        HostInfo {
            fqdn,
            kernel: Kernel {
                release: u.release,
                machine: u.machine,
            },
            hostname: u.nodename,
            os_release,
            cpu_model: cpuinfo.as_deref().and_then(parse::cpu_model),
            cpus,
            mem_total_kb: read(&proc.join("meminfo"), KERNEL_FILE_MAX)
                .and_then(|t| meminfo::parse(&t).ok()?.total),
            boot_time: read(&proc.join("stat"), KERNEL_FILE_MAX).and_then(|t| stat::boot_time(&t)),
            numa_nodes,
            interfaces: interfaces(sys),
            default_interface: read(&proc.join("net/route"), KERNEL_FILE_MAX)
                .and_then(|t| parse::default_route_interface(&t)),
        }
    }

    /// The node's URN, derived as the original BLiPP did (its
    /// `settings.HOST_URN`), so that a node it registered is found again:
    /// - the FQDN differs from the host name:
    ///   `urn:ogf:network:domain=<fqdn minus "hostname.">:node=<hostname>:`
    /// - else, with a default route whose interface has an IPv4 address and
    ///   a MAC: `urn:ogf:network:domain=<fqdn>:node=<ip>_<mac, hex digits
    ///   only>_<hostname>` (no trailing colon, as the original wrote it)
    /// - else `urn:ogf:network:domain=<fqdn>:node=<hostname>:`.
    pub fn urn(&self) -> String {
        let host = &self.hostname;
        if self.fqdn != *host {
            let domain = self.fqdn.replace(&format!("{host}."), "");
            return format!("urn:ogf:network:domain={domain}:node={host}:");
        }
        let default = self
            .default_interface
            .as_ref()
            .and_then(|name| self.interfaces.iter().find(|i| &i.name == name));
        let ip = default.and_then(|i| {
            i.addresses
                .iter()
                .find_map(|(a, _)| a.is_ipv4().then_some(*a))
        });
        let mac = default.and_then(|i| i.mac.as_deref()).and_then(clean_mac);
        match (ip, mac) {
            (Some(ip), Some(mac)) => {
                format!(
                    "urn:ogf:network:domain={}:node={ip}_{mac}_{host}",
                    self.fqdn
                )
            }
            _ => format!("urn:ogf:network:domain={}:node={host}:", self.fqdn),
        }
    }

    /// A port's URN: the node's URN, `port=` and the interface name. The
    /// original appended `port=` directly, which glued it to the host name
    /// when the node URN had no trailing colon; blipp inserts the colon.
    pub fn port_urn(&self, ifname: &str) -> String {
        let mut urn = self.urn();
        if !urn.ends_with(':') {
            urn.push(':');
        }
        format!("{urn}port={ifname}")
    }
}

/// The original's `clean_mac`: the first 12 hex digits of a MAC written in
/// lower case without separators.
pub fn clean_mac(mac: &str) -> Option<String> {
    let digits: String = mac
        .chars()
        .filter(|c| *c != ':' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect();
    let bytes = digits.as_bytes();
    bytes
        .windows(12)
        .find(|w| w.iter().all(u8::is_ascii_hexdigit))
        .map(|w| String::from_utf8_lossy(w).into_owned())
}

/// Online CPUs: `sys_dir/devices/system/cpu/online`, else the C library's
/// count.
pub fn online_cpus(sys_dir: &Path) -> u32 {
    online_cpus_listed(sys_dir).unwrap_or_else(online_cpus_sysconf)
}

fn online_cpus_listed(sys_dir: &Path) -> Option<u32> {
    let list = read(&sys_dir.join("devices/system/cpu/online"), SMALL_FILE_MAX)?;
    u32::try_from(sysfs::id_list(&list)?.len())
        .ok()
        .filter(|n| *n > 0)
}

/// Online CPUs as the C library counts them, the last resort when neither
/// sysfs nor cpuinfo can be read.
fn online_cpus_sysconf() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

/// The interfaces of this network namespace with their speeds.
fn interfaces(sys_dir: &Path) -> Vec<Interface> {
    let links = match rtnetlink::links() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the network interfaces");
            return Vec::new();
        }
    };
    let mut speeds = LinkSpeedReader::new(sys_dir);
    links
        .into_iter()
        .map(|l| Interface {
            speed: speeds.read(&l.name),
            name: l.name,
            mac: l.mac,
            addresses: l.addresses,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn fixture() -> HostPaths {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/host/fixtures");
        HostPaths::with_root(&dir.join("proc"), &dir.join("sys"), &dir)
    }

    #[test]
    fn fixture_tree() {
        let h = HostInfo::gather_at(&fixture());
        assert_eq!(h.os_release.as_deref(), Some("Fixture Linux 7 (test)"));
        assert_eq!(
            h.cpu_model.as_deref(),
            Some("AMD EPYC 7763 64-Core Processor")
        );
        // sysfs says 0-5 online although cpuinfo lists 8: sysfs wins.
        assert_eq!(h.cpus, 6);
        assert_eq!(h.mem_total_kb, Some(263_873_516));
        assert_eq!(h.boot_time, Some(1_716_900_000));
        assert_eq!(h.numa_nodes, vec![0, 1]);
        assert_eq!(h.default_interface.as_deref(), Some("eno1"));
    }

    /// Only /usr/lib/os-release present: it is used.
    #[test]
    fn os_release_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(
            dir.path().join("usr/lib/os-release"),
            "PRETTY_NAME=\"Lib OS\"\n",
        )
        .unwrap();
        let mut paths = fixture();
        paths.os_release = HostPaths::with_root(dir.path(), dir.path(), dir.path()).os_release;
        assert_eq!(
            HostInfo::gather_at(&paths).os_release.as_deref(),
            Some("Lib OS")
        );
        // Nothing readable: unknown, and the rest still gathered.
        let empty = HostPaths::with_root(dir.path(), dir.path(), Path::new("/nonexistent"));
        let h = HostInfo::gather_at(&empty);
        assert_eq!(h.os_release, None);
        assert_eq!(h.mem_total_kb, None);
        assert!(h.cpus >= 1);
    }

    /// On this host: the live files and interfaces.
    #[test]
    fn this_host() {
        let h = HostInfo::gather(Path::new("/proc"), Path::new("/sys"));
        let u = uname().unwrap();
        assert_eq!(h.hostname, u.nodename);
        assert_eq!(h.kernel.release, u.release);
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        assert_eq!(h.cpus as usize, sysfs::id_list(&online).unwrap().len());
        assert!(h.mem_total_kb.unwrap() > 0);
        assert!(h.boot_time.unwrap() > 1_000_000_000);
        assert!(!h.numa_nodes.is_empty());
        let lo = h.interfaces.iter().find(|i| i.name == "lo").unwrap();
        assert_eq!(lo.speed, LinkSpeed::Unknown);
        assert!(lo.addresses.contains(&(IpAddr::V4(Ipv4Addr::LOCALHOST), 8)));
        assert!(h.urn().starts_with("urn:ogf:network:domain="));
    }

    fn host(hostname: &str, fqdn: &str) -> HostInfo {
        HostInfo {
            hostname: hostname.to_owned(),
            fqdn: fqdn.to_owned(),
            kernel: Kernel {
                release: "6.1.0".to_owned(),
                machine: "x86_64".to_owned(),
            },
            os_release: None,
            cpu_model: None,
            cpus: 1,
            mem_total_kb: None,
            boot_time: None,
            numa_nodes: vec![0],
            interfaces: vec![Interface {
                name: "eth0".to_owned(),
                mac: Some("02:FC:00:00:00:01".to_owned()),
                addresses: vec![
                    ("fe80::1".parse().unwrap(), 64),
                    ("192.0.2.10".parse().unwrap(), 24),
                ],
                speed: LinkSpeed::Unknown,
            }],
            default_interface: Some("eth0".to_owned()),
        }
    }

    /// The three cases of the original's settings.py.
    #[test]
    fn urns() {
        let h = host("monitor", "monitor.incentre.iu.edu");
        assert_eq!(
            h.urn(),
            "urn:ogf:network:domain=incentre.iu.edu:node=monitor:"
        );
        assert_eq!(
            h.port_urn("eth0"),
            "urn:ogf:network:domain=incentre.iu.edu:node=monitor:port=eth0"
        );
        let h = host("vm", "vm");
        assert_eq!(
            h.urn(),
            "urn:ogf:network:domain=vm:node=192.0.2.10_02fc00000001_vm"
        );
        assert_eq!(
            h.port_urn("eth0"),
            "urn:ogf:network:domain=vm:node=192.0.2.10_02fc00000001_vm:port=eth0"
        );
        let mut h = host("vm", "vm");
        h.default_interface = None;
        assert_eq!(h.urn(), "urn:ogf:network:domain=vm:node=vm:");
    }

    #[test]
    fn clean_macs() {
        assert_eq!(
            clean_mac("02:FC:00:00:00:01").as_deref(),
            Some("02fc00000001")
        );
        assert_eq!(clean_mac("zz"), None);
    }
}
