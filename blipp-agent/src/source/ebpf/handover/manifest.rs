//! The list of descriptors one image of blippd hands to the next, and its
//! validation: every descriptor must be open and be what the list says,
//! before the next image takes ownership of it.

use std::collections::BTreeSet;
use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

use crate::source::ebpf::info::kernel_name;

/// The manifest's layout; the next image is the same executable, but one
/// replaced on disk in between would read another.
pub const FORMAT: u32 = 1;

/// What the image that loaded the eBPF object hands over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The process's name (`/proc/self/comm`), which executing
    /// `/proc/self/exe` would change to `exe`.
    pub comm: String,
    /// Every program a probe asked for.
    pub programs: Vec<Program>,
    /// The object's maps, by name.
    pub maps: Vec<Map>,
    /// The descriptor that keeps the kernel's BPF run-time statistics on.
    pub stats: Option<RawFd>,
    /// The attachments (BPF links, perf events) that keep the programs
    /// attached while they are open.
    pub links: Vec<RawFd>,
    /// The text of the configuration file as the first image read and
    /// checked it: the next image runs that configuration, whatever the
    /// file says by then.
    pub config_file: Option<String>,
}

/// One program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// Its name in the object.
    pub name: String,
    /// Its descriptor, or why it could not be attached.
    pub outcome: Outcome,
}

/// How attaching a program went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Attached: its descriptor.
    Fd(RawFd),
    /// Not attached: the error, as the fallback line says it.
    Error(String),
}

/// One map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Map {
    /// Its name in the object.
    pub name: String,
    /// Its descriptor.
    pub fd: RawFd,
}

/// What a descriptor turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A BPF program with this (kernel, so at most 15 bytes) name.
    Program(String),
    /// A BPF map with this name.
    Map(String),
    /// The BPF run-time statistics switch.
    Stats,
    /// A BPF link or a perf event.
    Link,
    /// Something else: where `/proc/self/fd` points.
    Other(String),
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Program(name) => write!(f, "BPF program {name:?}"),
            Kind::Map(name) => write!(f, "BPF map {name:?}"),
            Kind::Stats => f.write_str("the BPF statistics switch"),
            Kind::Link => f.write_str("a BPF link or perf event"),
            Kind::Other(target) => f.write_str(target),
        }
    }
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Another layout.
    #[error(
        "manifest format {0}, this blippd reads format {FORMAT} (was the executable replaced while blippd started?)"
    )]
    Format(u32),
    /// A process name the kernel would not keep.
    #[error("process name {0:?} is not 1 to 15 bytes without NUL")]
    Comm(String),
    /// A program this blippd does not have.
    #[error("program {0:?} is not one of this blippd's programs")]
    UnknownProgram(String),
    /// A program listed twice.
    #[error("program {0:?} is listed twice")]
    DuplicateProgram(String),
    /// A map listed twice.
    #[error("map {0:?} is listed twice")]
    DuplicateMap(String),
    /// A map without a name.
    #[error("a map without a name")]
    UnnamedMap,
    /// A failed program without a reason.
    #[error("program {0:?} failed without a reason")]
    NoReason(String),
    /// stdin, stdout, stderr or a negative number.
    #[error("descriptor {fd} for {what} is not one blippd hands over")]
    Reserved {
        /// The descriptor.
        fd: RawFd,
        /// What it was said to be.
        what: String,
    },
    /// A descriptor listed twice.
    #[error("descriptor {fd} is listed twice (for {what})")]
    Twice {
        /// The descriptor.
        fd: RawFd,
        /// What it was said to be the second time.
        what: String,
    },
    /// A descriptor that cannot be inspected (not open).
    #[error("descriptor {fd} for {what}: {error}")]
    Unreadable {
        /// The descriptor.
        fd: RawFd,
        /// What it was said to be.
        what: String,
        /// Why.
        error: String,
    },
    /// A descriptor that is something else.
    #[error("descriptor {fd} should be {want} but is {found}")]
    WrongKind {
        /// The descriptor.
        fd: RawFd,
        /// What it was said to be.
        want: Kind,
        /// What it is.
        found: Kind,
    },
}

/// A manifest whose descriptors were checked, programs named as this
/// blippd names them.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    /// Each program's descriptor or error.
    pub programs: Vec<(&'static str, Result<RawFd, String>)>,
    /// Each map's descriptor.
    pub maps: Vec<(String, RawFd)>,
    /// The statistics switch.
    pub stats: Option<RawFd>,
    /// The attachments.
    pub links: Vec<RawFd>,
}

/// Checks `manifest`: its format and names, that no descriptor is listed
/// twice or is stdio, and that `inspect` finds each one to be what the
/// manifest says (a program or map of that name, the statistics switch,
/// an attachment). `known` are this blippd's program names.
pub fn validate(
    manifest: &Manifest,
    known: &[&'static str],
    mut inspect: impl FnMut(RawFd) -> Result<Kind, String>,
) -> Result<Checked, ManifestError> {
    if manifest.format != FORMAT {
        return Err(ManifestError::Format(manifest.format));
    }
    let comm = &manifest.comm;
    if comm.is_empty() || comm.len() > 15 || comm.contains('\0') {
        return Err(ManifestError::Comm(comm.clone()));
    }
    let mut seen = BTreeSet::new();
    let mut check = |fd: RawFd, want: Kind| {
        let what = want.to_string();
        if fd < 3 {
            return Err(ManifestError::Reserved { fd, what });
        }
        if !seen.insert(fd) {
            return Err(ManifestError::Twice { fd, what });
        }
        let found = inspect(fd).map_err(|error| ManifestError::Unreadable {
            fd,
            what: what.clone(),
            error,
        })?;
        if found == want {
            Ok(fd)
        } else {
            Err(ManifestError::WrongKind { fd, want, found })
        }
    };
    let mut programs: Vec<(&'static str, Result<RawFd, String>)> = Vec::new();
    for p in &manifest.programs {
        let name = known
            .iter()
            .copied()
            .find(|k| *k == p.name)
            .ok_or_else(|| ManifestError::UnknownProgram(p.name.clone()))?;
        if programs.iter().any(|(n, _)| *n == name) {
            return Err(ManifestError::DuplicateProgram(p.name.clone()));
        }
        let outcome = match &p.outcome {
            Outcome::Fd(fd) => Ok(check(*fd, Kind::Program(kernel_name(name).to_owned()))?),
            Outcome::Error(why) if why.is_empty() => {
                return Err(ManifestError::NoReason(p.name.clone()));
            }
            Outcome::Error(why) => Err(why.clone()),
        };
        programs.push((name, outcome));
    }
    let mut maps: Vec<(String, RawFd)> = Vec::new();
    for m in &manifest.maps {
        if m.name.is_empty() {
            return Err(ManifestError::UnnamedMap);
        }
        if maps.iter().any(|(n, _)| *n == m.name) {
            return Err(ManifestError::DuplicateMap(m.name.clone()));
        }
        let fd = check(m.fd, Kind::Map(kernel_name(&m.name).to_owned()))?;
        maps.push((m.name.clone(), fd));
    }
    let stats = manifest
        .stats
        .map(|fd| check(fd, Kind::Stats))
        .transpose()?;
    let links = manifest
        .links
        .iter()
        .map(|fd| check(*fd, Kind::Link))
        .collect::<Result<_, _>>()?;
    Ok(Checked {
        programs,
        maps,
        stats,
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["block_rq_complete", "net_dev_xmit", "kfree_skb"];

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            comm: "blippd".to_owned(),
            programs: vec![
                Program {
                    name: "block_rq_complete".to_owned(),
                    outcome: Outcome::Fd(10),
                },
                Program {
                    name: "kfree_skb".to_owned(),
                    outcome: Outcome::Error("program kfree_skb: verifier says no".to_owned()),
                },
            ],
            maps: vec![
                Map {
                    name: "DISK_SLOT_OVERFLOW".to_owned(),
                    fd: 11,
                },
                Map {
                    name: "NET_INTERFACES".to_owned(),
                    fd: 12,
                },
            ],
            stats: Some(13),
            links: vec![14],
            config_file: Some("{}".to_owned()),
        }
    }

    /// The descriptors of [`manifest`] as the kernel would show them.
    fn kernel(fd: RawFd) -> Result<Kind, String> {
        Ok(match fd {
            10 => Kind::Program("block_rq_comple".to_owned()),
            11 => Kind::Map("DISK_SLOT_OVERF".to_owned()),
            12 => Kind::Map("NET_INTERFACES".to_owned()),
            13 => Kind::Stats,
            14 => Kind::Link,
            20 => Kind::Other("/dev/null".to_owned()),
            _ => return Err("Bad file descriptor (os error 9)".to_owned()),
        })
    }

    #[test]
    fn a_good_manifest_passes_and_round_trips() {
        let m = manifest();
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""outcome":{"fd":10}"#), "{text}");
        let back: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        let checked = validate(&back, KNOWN, kernel).unwrap();
        assert_eq!(
            checked,
            Checked {
                programs: vec![
                    ("block_rq_complete", Ok(10)),
                    (
                        "kfree_skb",
                        Err("program kfree_skb: verifier says no".to_owned())
                    ),
                ],
                maps: vec![
                    ("DISK_SLOT_OVERFLOW".to_owned(), 11),
                    ("NET_INTERFACES".to_owned(), 12)
                ],
                stats: Some(13),
                links: vec![14],
            }
        );
    }

    #[test]
    fn unknown_fields_and_outcomes_do_not_parse() {
        let text = serde_json::to_string(&manifest()).unwrap();
        let extra = text.replacen('{', r#"{"exec":"/bin/sh","#, 1);
        assert!(serde_json::from_str::<Manifest>(&extra).is_err());
        let both = text.replace(r#"{"fd":10}"#, r#"{"fd":10,"error":"x"}"#);
        assert!(serde_json::from_str::<Manifest>(&both).is_err());
    }

    #[test]
    fn a_closed_descriptor_is_refused() {
        let mut m = manifest();
        m.maps[1].fd = 99;
        let e = validate(&m, KNOWN, kernel).unwrap_err();
        assert!(
            matches!(&e, ManifestError::Unreadable { fd: 99, what, .. } if what.contains("NET_INTERFACES")),
            "{e}"
        );
    }

    #[test]
    fn the_wrong_kind_is_refused() {
        let mut m = manifest();
        // A map's descriptor given as the program's, and the other way.
        m.programs[0].outcome = Outcome::Fd(12);
        m.maps[1].fd = 10;
        let e = validate(&m, KNOWN, kernel).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"descriptor 12 should be BPF program "block_rq_comple" but is BPF map "NET_INTERFACES""#
        );
        let mut m = manifest();
        m.links = vec![20];
        let e = validate(&m, KNOWN, kernel).unwrap_err();
        assert_eq!(
            e.to_string(),
            "descriptor 20 should be a BPF link or perf event but is /dev/null"
        );
        let mut m = manifest();
        m.stats = Some(14);
        m.links = vec![];
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::WrongKind {
                fd: 14,
                want: Kind::Stats,
                found: Kind::Link
            })
        ));
    }

    #[test]
    fn a_map_of_another_name_is_refused() {
        let mut m = manifest();
        m.maps.swap(0, 1);
        (m.maps[0].fd, m.maps[1].fd) = (11, 12);
        let e = validate(&m, KNOWN, kernel).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"descriptor 11 should be BPF map "NET_INTERFACES" but is BPF map "DISK_SLOT_OVERF""#
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let mut m = manifest();
        m.maps.push(Map {
            name: "NET_INTERFACES".to_owned(),
            fd: 12,
        });
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::DuplicateMap(n)) if n == "NET_INTERFACES"
        ));
        let mut m = manifest();
        m.programs.push(m.programs[1].clone());
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::DuplicateProgram(n)) if n == "kfree_skb"
        ));
        let mut m = manifest();
        m.links = vec![14, 14];
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::Twice { fd: 14, .. })
        ));
        let mut m = manifest();
        m.stats = Some(12);
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::Twice { fd: 12, .. })
        ));
    }

    #[test]
    fn stdio_unknown_programs_and_other_formats_are_refused() {
        let mut m = manifest();
        m.links = vec![1];
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::Reserved { fd: 1, .. })
        ));
        let mut m = manifest();
        m.programs[0].name = "rootkit".to_owned();
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::UnknownProgram(n)) if n == "rootkit"
        ));
        let mut m = manifest();
        m.format = FORMAT + 1;
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::Format(_))
        ));
        let mut m = manifest();
        m.comm = "a-name-longer-than-15".to_owned();
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::Comm(_))
        ));
        let mut m = manifest();
        m.programs[1].outcome = Outcome::Error(String::new());
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::NoReason(_))
        ));
        let mut m = manifest();
        m.maps[0].name = String::new();
        assert!(matches!(
            validate(&m, KNOWN, kernel),
            Err(ManifestError::UnnamedMap)
        ));
    }
}
