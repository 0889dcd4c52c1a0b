//! The refresh loop of `blippcmd top`: on a terminal, the alternate
//! screen redrawn in place at the terminal's size until Ctrl-C (or `-n`
//! refreshes); elsewhere, plain frames one after another, with no escape
//! sequences, for logs and scripts.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::render;
use crate::control::client::{Client, ClientError};
use crate::control::protocol::Request;
use crate::sample::Timestamp;
use crate::status::TopReport;

/// Width of plain frames when `$COLUMNS` does not say.
pub const PLAIN_WIDTH: usize = 120;

/// How often the loop looks for a signal while it waits.
const TICK: Duration = Duration::from_millis(50);

/// Set by SIGINT, SIGTERM and SIGHUP: the loop ends and the terminal is
/// restored.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the sigaction is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(sig, &raw const action, std::ptr::null_mut());
        }
    }
}

/// The terminal's columns and rows, when standard output is one.
fn window() -> Option<(usize, usize)> {
    // SAFETY: TIOCGWINSZ writes a winsize into the zeroed struct.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: as above; fd 1 is standard output.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &raw mut ws) };
    (rc == 0 && ws.ws_col > 0).then(|| (usize::from(ws.ws_col), usize::from(ws.ws_row)))
}

/// How `top` draws.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Refreshes before it ends; `None`: until interrupted.
    pub refreshes: Option<u64>,
    /// Time between refreshes.
    pub delay: Duration,
    /// Redraw in place (standard output is a terminal).
    pub terminal: bool,
}

fn fetch(socket: &Path) -> Result<TopReport, ClientError> {
    let v = Client::connect(socket)?.request(&Request::Top {})?;
    serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Waits `delay`, or less when a signal came.
fn pause(delay: Duration) {
    let until = Instant::now() + delay;
    while !STOP.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// One screen written over the previous one: home, each line cleared to
/// its end, the rest of the screen cleared; no newline after the last
/// row, so the screen never scrolls.
fn redraw(lines: &[String], rows: usize) -> String {
    let mut out = String::from("\x1b[H");
    let shown = &lines[..lines.len().min(rows.max(1))];
    for (i, line) in shown.iter().enumerate() {
        out.push_str(line);
        out.push_str("\x1b[K");
        if i + 1 < shown.len() {
            out.push_str("\r\n");
        }
    }
    out.push_str("\x1b[J");
    out
}

/// Runs `top` against the blippd of `socket`, writing to `out`.
pub fn run(socket: &Path, options: Options, mut out: impl Write) -> Result<(), ClientError> {
    catch_signals();
    if options.terminal {
        // The alternate screen, cursor hidden, as top does.
        out.write_all(b"\x1b[?1049h\x1b[?25l")?;
    }
    let result = refresh(socket, options, &mut out);
    if options.terminal {
        out.write_all(b"\x1b[?25h\x1b[?1049l")?;
        out.flush()?;
    }
    result
}

fn refresh(socket: &Path, options: Options, out: &mut impl Write) -> Result<(), ClientError> {
    let plain_width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(PLAIN_WIDTH);
    let mut done = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        let report = fetch(socket)?;
        let now = Timestamp::now().0;
        if options.terminal {
            let (width, rows) = window().unwrap_or((80, 24));
            let lines = render::frame(&report, now, width);
            out.write_all(redraw(&lines, rows).as_bytes())?;
        } else {
            let mut text = render::frame(&report, now, plain_width).join("\n");
            text.push_str("\n\n");
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
        done += 1;
        if options.refreshes.is_some_and(|n| done >= n) {
            break;
        }
        pause(options.delay);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redraw_never_scrolls() {
        let lines: Vec<String> = (0..5).map(|i| format!("l{i}")).collect();
        assert_eq!(
            redraw(&lines, 3),
            "\x1b[Hl0\x1b[K\r\nl1\x1b[K\r\nl2\x1b[K\x1b[J"
        );
        assert_eq!(redraw(&lines[..1], 0), "\x1b[Hl0\x1b[K\x1b[J");
    }
}
