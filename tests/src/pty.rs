//! A program on a pseudo-terminal, as an operator at a terminal runs it:
//! its own session with the terminal as the controlling one, so that line
//! editing, Ctrl-C and Ctrl-D reach it as they would from a keyboard.

#![expect(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child on a terminal, and everything it printed so far.
pub struct Pty {
    child: Child,
    master: File,
    printed: Arc<Mutex<Vec<u8>>>,
    /// How much of `printed` the expectations consumed.
    seen: usize,
}

impl Pty {
    /// Starts `cmd` with the terminal as its standard streams.
    pub fn spawn(mut cmd: Command) -> Self {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes the two descriptors; the name, termios
        // and window size are not asked for.
        let rc = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: setsid and ioctl are async-signal-safe; after fork only
        // they run.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let printed = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&printed);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and every holder of the terminal are gone.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            master,
            printed,
            seen: 0,
        }
    }

    /// Everything printed, escape sequences and all.
    pub fn printed(&self) -> String {
        String::from_utf8_lossy(&self.printed.lock().unwrap()).into_owned()
    }

    /// Waits until `text` is printed after what the last expectation
    /// matched; then the next one starts after it.
    pub fn expect(&mut self, text: &str) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let found = {
                let printed = self.printed.lock().unwrap();
                printed[self.seen..]
                    .windows(text.len())
                    .position(|w| w == text.as_bytes())
            };
            if let Some(at) = found {
                self.seen += at + text.len();
                return;
            }
            assert!(
                Instant::now() < end,
                "{text:?} never printed; the terminal shows:\n{:?}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits for the child to end (at most 20 s).
    pub fn wait(&mut self) -> ExitStatus {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "still running; the terminal shows:\n{:?}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
