//! blippd's re-execution after loading its eBPF programs.
//!
//! Loading the object with aya parses the kernel's whole BTF (several
//! megabytes of text into some 17 MB of structures, twice: aya#1172), and
//! runs code that is never needed again. A process's peak resident memory
//! (`VmHWM`) never goes down, and what loading touched (heap kept by
//! glibc, pages of the executable only loading ran) stays resident. So the
//! image that loaded and attached the programs hands them over to a fresh
//! image of the same executable, in the same process (same PID): it clears
//! `FD_CLOEXEC` on exactly the descriptors that matter — programs, maps,
//! the statistics switch and the attachments (closing those would detach
//! the programs) — writes a [`Manifest`] of them, with the text of the
//! configuration file it checked, into a sealed memfd named
//! `blipp-handover`, and executes `/proc/self/exe` with its own arguments
//! and environment. The new image finds the memfd by its name, checks
//! every descriptor against the manifest before it takes them ([`take`]),
//! and never re-executes.
//!
//! The memfd is found by its name rather than through an environment
//! variable: a variable added at exec stays in `/proc/PID/environ` for the
//! life of the process (removing it from the environment changes what
//! children get, not what the kernel shows).

mod fds;
pub mod manifest;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;

use manifest::{Manifest, ManifestError, Outcome};

use super::Kernel;

/// Why the handover failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// This kernel did not load the object itself.
    #[error("nothing to hand over: the eBPF objects were inherited")]
    Inherited,
    /// Preparing the descriptors or the memfd failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The manifest could not be written.
    #[error("writing the manifest: {0}")]
    Encode(#[source] serde_json::Error),
    /// `/proc/self/exe` is another program than blippd.
    #[error(
        "/proc/self/exe is {0}, not this blippd (started through the dynamic loader or a tool that loads it?)"
    )]
    ForeignExe(String),
    /// The exec failed.
    #[error("executing /proc/self/exe: {0}")]
    Exec(#[source] std::io::Error),
    /// The manifest could not be found or read.
    #[error("the eBPF handover of a re-executed blippd: reading the manifest: {0}")]
    Read(#[source] std::io::Error),
    /// The manifest is not JSON of the right shape.
    #[error("the eBPF handover of a re-executed blippd: the manifest does not parse: {0}")]
    Parse(#[source] serde_json::Error),
    /// The manifest and the descriptors disagree.
    #[error("the eBPF handover of a re-executed blippd: {0}")]
    Invalid(#[from] ManifestError),
}

/// What a re-executed image inherited, checked and owned.
pub struct Handover {
    pub(in crate::source::ebpf) programs: BTreeMap<&'static str, Result<OwnedFd, String>>,
    pub(in crate::source::ebpf) maps: BTreeMap<String, OwnedFd>,
    pub(in crate::source::ebpf) links: Vec<OwnedFd>,
    pub(in crate::source::ebpf) stats: Option<OwnedFd>,
    config_file: Option<String>,
}

impl Handover {
    /// The text of the configuration file the first image read and
    /// checked (`None` when it had none), once.
    pub fn take_config_file(&mut self) -> Option<String> {
        self.config_file.take()
    }
}

/// The descriptors an exec must keep open, kept so while this lives: it
/// puts `FD_CLOEXEC` back when dropped, which only happens when the exec
/// failed (the image carries on, and its children must not inherit them).
struct KeptOpen(Vec<RawFd>);

impl KeptOpen {
    fn new(fds: Vec<RawFd>) -> std::io::Result<Self> {
        let mut kept = Self(Vec::with_capacity(fds.len()));
        for fd in fds {
            fds::set_cloexec(fd, false)?;
            kept.0.push(fd);
        }
        Ok(kept)
    }
}

impl Drop for KeptOpen {
    fn drop(&mut self) {
        for &fd in &self.0 {
            if let Err(e) = fds::set_cloexec(fd, true) {
                tracing::warn!(fd, error = %e, "a BPF descriptor stays open across exec");
            }
        }
    }
}

/// Replaces this image with a fresh one of the same executable that takes
/// over `kernel`'s programs and maps, and `config_file`, the text of the
/// configuration file this image checked. Returns only when that failed:
/// then every descriptor is as it was, and this image can carry on. Call
/// it before any other thread exists.
pub fn reexecute(kernel: &Kernel, config_file: Option<&str>) -> Result<Infallible, HandoverError> {
    let exports = kernel.exports().ok_or(HandoverError::Inherited)?;
    if !fds::exe_is_this_program()? {
        let exe = std::fs::read_link("/proc/self/exe")?;
        return Err(HandoverError::ForeignExe(exe.display().to_string()));
    }
    let links = fds::attachments()?;
    let manifest = Manifest {
        format: manifest::FORMAT,
        comm: fds::comm()?,
        programs: exports
            .programs
            .iter()
            .map(|(name, outcome)| manifest::Program {
                name: (*name).to_owned(),
                outcome: match outcome {
                    Ok(fd) => Outcome::Fd(fd.as_raw_fd()),
                    Err(why) => Outcome::Error((*why).to_owned()),
                },
            })
            .collect(),
        maps: exports
            .maps
            .iter()
            .map(|(name, fd)| manifest::Map {
                name: (*name).to_owned(),
                fd: fd.as_raw_fd(),
            })
            .collect(),
        stats: exports.stats.map(|fd| fd.as_raw_fd()),
        links,
        config_file: config_file.map(str::to_owned),
    };
    let json = serde_json::to_vec(&manifest).map_err(HandoverError::Encode)?;
    let memfd = fds::memfd(&json)?;
    let mut handed: Vec<RawFd> = manifest
        .programs
        .iter()
        .filter_map(|p| match p.outcome {
            Outcome::Fd(fd) => Some(fd),
            Outcome::Error(_) => None,
        })
        .chain(manifest.maps.iter().map(|m| m.fd))
        .chain(manifest.stats)
        .chain(manifest.links.iter().copied())
        .collect();
    handed.push(memfd.as_raw_fd());
    let kept = KeptOpen::new(handed)?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "blippd".into());
    let peak = fds::peak_rss_kb().map_or_else(|| "unknown".to_owned(), |kb| kb.to_string());
    tracing::info!(
        peak_rss_kb = %peak,
        programs = exports.programs.iter().filter(|(_, o)| o.is_ok()).count(),
        "eBPF programs attached; re-executing to leave the loading memory behind"
    );
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .exec();
    drop(kept);
    Err(HandoverError::Exec(error))
}

/// In an image that [`reexecute`] started: takes the handed-over
/// descriptors after checking each against the manifest, closes the
/// manifest's memfd, and names the process as before. `None` in an image
/// started otherwise (no manifest among its descriptors).
///
/// # Safety
///
/// Call it first thing in `main`, before any other thread exists: it
/// takes ownership of descriptors that nothing else in the process may
/// own.
pub unsafe fn take() -> Result<Option<Handover>, HandoverError> {
    let Some(memfd) = fds::find_memfd().map_err(HandoverError::Read)? else {
        return Ok(None);
    };
    let bytes = fds::read_memfd(memfd).map_err(HandoverError::Read)?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(HandoverError::Parse)?;
    let checked = manifest::validate(&manifest, &super::runtime::program_names(), fds::inspect)?;
    let own = |fd: RawFd| -> std::io::Result<OwnedFd> {
        fds::set_cloexec(fd, true)?;
        // SAFETY: the descriptor is open, listed once, and is the object
        // the manifest says; the previous image made it for this one, and
        // nothing else in this image knows of it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut programs = BTreeMap::new();
    for (name, outcome) in checked.programs {
        let outcome = match outcome {
            Ok(fd) => Ok(own(fd)?),
            Err(why) => Err(why),
        };
        programs.insert(name, outcome);
    }
    let mut maps = BTreeMap::new();
    for (name, fd) in checked.maps {
        maps.insert(name, own(fd)?);
    }
    let handover = Handover {
        programs,
        maps,
        links: checked
            .links
            .into_iter()
            .map(&own)
            .collect::<Result<_, _>>()?,
        stats: checked.stats.map(&own).transpose()?,
        config_file: manifest.config_file,
    };
    fds::set_comm(&manifest.comm)?;
    Ok(Some(handover))
}

/// The descriptor flags of a handover on a fake kernel: the paths of a
/// failing `fcntl`, no root and no exec needed.
#[cfg(test)]
mod fake_kernel {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::source::ebpf::sys::{Call, fake};

    /// Runs `body` on a kernel whose descriptors 100 to 104 have
    /// `FD_CLOEXEC` set and where `F_SETFD` on `failing` fails with
    /// EBADF; returns the descriptors' flags afterwards.
    fn on_kernel<T>(failing: RawFd, body: impl FnOnce() -> T) -> (T, BTreeMap<RawFd, i32>) {
        let flags: BTreeMap<RawFd, i32> = (100..105).map(|fd| (fd, libc::FD_CLOEXEC)).collect();
        let state = Rc::new(RefCell::new(flags));
        let kernel = Rc::clone(&state);
        let out = fake::with(
            move |call| match *call {
                Call::GetFd(fd) => Some(Ok(kernel.borrow()[&fd].into())),
                Call::SetFd(fd, _) if fd == failing => fake::errno(libc::EBADF),
                Call::SetFd(fd, new) => {
                    kernel.borrow_mut().insert(fd, new);
                    Some(Ok(0))
                }
                _ => None,
            },
            body,
        );
        let flags = state.borrow().clone();
        (out, flags)
    }

    #[test]
    fn kept_open_clears_cloexec_and_puts_it_back_when_the_exec_failed() {
        let flag = |fd| crate::source::ebpf::sys::call_plain(Call::GetFd(fd)).unwrap();
        let (while_kept, after) = on_kernel(-1, || {
            let kept = KeptOpen::new(vec![100, 102, 104]).unwrap();
            let flags: Vec<_> = (100..105).map(flag).collect();
            drop(kept);
            flags
        });
        let cloexec = libc::c_long::from(libc::FD_CLOEXEC);
        assert_eq!(while_kept, [0, cloexec, 0, cloexec, 0]);
        assert!(after.values().all(|f| *f == libc::FD_CLOEXEC), "{after:?}");
    }

    /// One descriptor that cannot be changed: the error names it, and the
    /// ones already cleared get `FD_CLOEXEC` back (the image carries on,
    /// and its children must not inherit them).
    #[test]
    fn a_descriptor_that_cannot_be_kept_undoes_the_others() {
        let (result, after) = on_kernel(103, || KeptOpen::new(vec![100, 101, 103, 104]).err());
        let e = result.expect("KeptOpen failed");
        assert_eq!(e.raw_os_error(), None);
        assert!(e.to_string().starts_with("descriptor 103: "), "{e}");
        assert!(
            after.values().all(|f| *f == libc::FD_CLOEXEC),
            "every flag as it was: {after:?}"
        );
    }
}
