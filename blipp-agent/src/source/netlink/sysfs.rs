//! Link speed and duplex from `/sys/class/net/IF/speed` and `duplex`, the
//! last resort. The kernel prints the speed as a signed decimal (so
//! `SPEED_UNKNOWN` shows as `-1`) and fails the read with `EINVAL` when the
//! interface is down or its driver has no speed. A sysfs shows the devices
//! of the network namespace it was mounted from.

use std::io;
use std::path::{Path, PathBuf};

use crate::limits::SMALL_FILE_MAX;

use super::speed::{Duplex, LinkSpeed, SpeedSource};

/// Why sysfs could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The file is not there or not readable (no such interface, no sysfs).
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file holds something other than a decimal speed.
    #[error("{}: {text:?} is not a speed", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Its text (truncated).
        text: String,
    },
    /// An interface name that is not a single path component.
    #[error("invalid interface name {0:?}")]
    BadName(String),
}

/// The text of a `speed` file: Mb/s, or `None` for the kernel's unknown
/// (a negative number).
pub fn parse_speed(text: &str) -> Result<Option<u32>, std::num::ParseIntError> {
    let v: i64 = text.trim().parse()?;
    Ok(u32::try_from(v).ok())
}

/// The text of a `duplex` file (`full`, `half`, `unknown`).
pub fn parse_duplex(text: &str) -> Option<Duplex> {
    match text.trim() {
        "full" => Some(Duplex::Full),
        "half" => Some(Duplex::Half),
        _ => None,
    }
}

/// Speed and duplex of `ifname` under `sys_dir/class/net`.
pub fn link_speed(sys_dir: &Path, ifname: &str) -> Result<LinkSpeed, SysfsError> {
    if ifname.is_empty() || ifname.contains('/') || ifname == "." || ifname == ".." {
        return Err(SysfsError::BadName(ifname.to_owned()));
    }
    let dir = sys_dir.join("class/net").join(ifname);
    let path = dir.join("speed");
    let text = match crate::bounded::read_to_string(&path, SMALL_FILE_MAX) {
        Ok(t) => t,
        // Down, or no speed to tell: the kernel's way of saying unknown.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(LinkSpeed::Unknown),
        Err(source) => return Err(SysfsError::Read { path, source }),
    };
    let speed = match parse_speed(&text) {
        Ok(Some(mbps)) => mbps,
        Ok(None) => return Ok(LinkSpeed::Unknown),
        Err(_) => {
            return Err(SysfsError::Parse {
                path,
                text: text.chars().take(32).collect(),
            });
        }
    };
    let duplex = crate::bounded::read_to_string(&dir.join("duplex"), SMALL_FILE_MAX)
        .ok()
        .and_then(|t| parse_duplex(&t));
    Ok(LinkSpeed::from_kernel(speed, duplex, SpeedSource::Sysfs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_texts() {
        assert_eq!(parse_speed("10000\n"), Ok(Some(10_000)));
        assert_eq!(parse_speed("-1\n"), Ok(None));
        assert!(parse_speed("fast").is_err());
        assert_eq!(parse_duplex("full\n"), Some(Duplex::Full));
        assert_eq!(parse_duplex("half"), Some(Duplex::Half));
        assert_eq!(parse_duplex("unknown\n"), None);
    }

    #[test]
    fn fixture_tree() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/source/netlink/fixtures/sys");
        assert_eq!(
            link_speed(&dir, "eth0").unwrap(),
            LinkSpeed::Known {
                mbps: 25_000,
                duplex: Some(Duplex::Full),
                via: SpeedSource::Sysfs
            }
        );
        // A speed of -1 (a link that is up but has no carrier speed).
        assert_eq!(link_speed(&dir, "eth1").unwrap(), LinkSpeed::Unknown);
        // No duplex file: the speed alone.
        assert_eq!(link_speed(&dir, "eth2").unwrap().duplex(), None);
        assert_eq!(link_speed(&dir, "eth2").unwrap().mbps(), Some(100));
        assert!(matches!(
            link_speed(&dir, "nope"),
            Err(SysfsError::Read { .. })
        ));
        assert!(matches!(
            link_speed(&dir, "../x"),
            Err(SysfsError::BadName(_))
        ));
    }
}
