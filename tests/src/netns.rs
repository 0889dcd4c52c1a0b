//! Network namespaces for tests: made with `ip netns add` (iproute2),
//! deleted on drop, and entered by a dedicated thread so that the test
//! process itself never leaves its own namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result, bail};

/// A named network namespace that exists while this value lives.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `blipp-<tag>-<pid>-<n>`, unique per test.
    pub fn new(tag: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("blipp-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        Ok(Self { name })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip netns exec NAME ARGS...`: a program run inside the namespace
    /// (with its own /sys, as iproute2 mounts one), its stdout.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    /// Runs `f` on a new thread that has entered the namespace: sockets it
    /// opens reach the namespace's devices. A panic in `f` is re-raised.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = Path::new("/run/netns").join(&self.name);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a valid namespace descriptor; CLONE_NEWNET moves
                // only this thread.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!(
                        "setns({}): {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    );
                }
                Ok(f())
            })
            .join()
            // An assertion that failed in the namespace fails the test.
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A sysfs mounted on a temporary directory in a private mount namespace of
/// the calling thread: it shows the devices of the thread's network
/// namespace. Call it from [`NetNs::run`]; it is unmounted on drop.
pub struct PrivateSysfs {
    dir: tempfile::TempDir,
}

impl PrivateSysfs {
    /// Unshares the thread's mount namespace (so nothing leaks to the
    /// host) and mounts sysfs.
    pub fn mount() -> Result<Self> {
        // SAFETY: affects only this thread's mount namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            bail!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error());
        }
        let root = c"/";
        // SAFETY: valid NUL-terminated path; makes every mount private to
        // this namespace so the sysfs mount does not propagate.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            bail!("making / private: {}", std::io::Error::last_os_error());
        }
        let dir = tempfile::tempdir()?;
        let target = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes())?;
        // SAFETY: valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"sysfs".as_ptr(),
                target.as_ptr(),
                c"sysfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            bail!("mounting sysfs: {}", std::io::Error::last_os_error());
        }
        Ok(Self { dir })
    }

    /// Where it is mounted: a `sys_dir`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivateSysfs {
    fn drop(&mut self) {
        if let Ok(target) = std::ffi::CString::new(self.dir.path().as_os_str().as_encoded_bytes()) {
            // SAFETY: valid path; unmounting before the directory is removed.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Runs a command, failing with its stderr when it fails.
fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
