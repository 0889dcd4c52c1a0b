//! What blippd and a launched run say to each other over the run's own
//! stream socket: a request (the command), then a reply (how it ended and
//! what it printed). Every message is length-prefixed frames (a 32-bit
//! little-endian length, then the bytes), because standard output may be
//! up to 16 MiB and no datagram holds that; a frame longer than the
//! reader allows is refused before anything is allocated for it.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest request: a command line and its environment.
pub const MAX_REQUEST: usize = 1 << 20;
/// The largest outcome frame (an error message).
const MAX_OUTCOME: usize = 64 * 1024;

/// A command to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The argument vector.
    pub argv: Vec<String>,
    /// Extra environment entries.
    pub env: Vec<(String, String)>,
    /// The command's timeout.
    pub timeout: Duration,
    /// Bytes of standard output kept before the command is killed.
    pub output_limit: usize,
    /// What the command reads on standard input (the previous stage's
    /// output in a pipeline; empty: /dev/null). Sent as a frame of its
    /// own, not in the JSON.
    #[serde(skip)]
    pub stdin: Vec<u8>,
}

/// The largest standard input a request carries: the largest output limit.
pub const MAX_STDIN: usize = 16 * 1024 * 1024;

/// How a run ended, in a form that crosses a process boundary (an
/// `io::Error` does not: its errno does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Exited with this status.
    Exit {
        /// The status.
        code: i32,
    },
    /// Ended by this signal.
    Signal {
        /// The signal.
        signal: i32,
    },
    /// Could not be started.
    Spawn {
        /// The errno, when there is one.
        errno: Option<i32>,
        /// The error as printed.
        message: String,
    },
    /// Killed after its timeout.
    Timeout,
    /// Killed after printing more than its output limit.
    TooMuchOutput,
    /// Reading its output or waiting for it failed.
    Io {
        /// The call that failed.
        call: String,
        /// The errno, when there is one.
        errno: Option<i32>,
        /// The error as printed.
        message: String,
    },
}

/// A reply: the outcome and the output kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// How it ended.
    pub outcome: Outcome,
    /// Standard output, at most the request's output limit.
    pub stdout: Vec<u8>,
    /// Standard error, at most [`STDERR_KEPT`](super::STDERR_KEPT).
    pub stderr: Vec<u8>,
}

/// The `io::Error` an errno and message stand for.
pub fn error(errno: Option<i32>, message: &str) -> io::Error {
    errno.map_or_else(
        || io::Error::other(message.to_owned()),
        io::Error::from_raw_os_error,
    )
}

fn write_frame(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)
}

fn read_frame(r: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes, more than the {max} allowed"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Sends a request.
pub fn write_request(w: &mut impl Write, request: &Request) -> io::Result<()> {
    write_frame(w, &json(request)?)?;
    write_frame(w, &request.stdin)?;
    w.flush()
}

/// Receives a request.
pub fn read_request(r: &mut impl Read) -> io::Result<Request> {
    let mut request: Request = parse(&read_frame(r, MAX_REQUEST)?)?;
    request.stdin = read_frame(r, MAX_STDIN)?;
    Ok(request)
}

/// Sends a reply.
pub fn write_reply(w: &mut impl Write, reply: &Reply) -> io::Result<()> {
    write_frame(w, &json(&reply.outcome)?)?;
    write_frame(w, &reply.stdout)?;
    write_frame(w, &reply.stderr)?;
    w.flush()
}

/// Receives a reply to a request whose output limit was `output_limit`.
pub fn read_reply(r: &mut impl Read, output_limit: usize) -> io::Result<Reply> {
    let outcome = parse(&read_frame(r, MAX_OUTCOME)?)?;
    let stdout = read_frame(r, output_limit)?;
    let stderr = read_frame(r, super::STDERR_KEPT)?;
    Ok(Reply {
        outcome,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let request = Request {
            argv: vec!["check_x".into(), "-w".into(), "a b\n'\"\u{e9}".into()],
            env: vec![("A".into(), "1".into())],
            timeout: Duration::from_millis(1500),
            output_limit: 10,
            stdin: b"a\0b".to_vec(),
        };
        let mut buf = Vec::new();
        write_request(&mut buf, &request).unwrap();
        assert_eq!(read_request(&mut buf.as_slice()).unwrap(), request);
    }

    #[test]
    fn a_reply_round_trips_with_16_mib_of_output() {
        let reply = Reply {
            outcome: Outcome::Io {
                call: "poll".into(),
                errno: Some(libc::EINTR),
                message: "x".into(),
            },
            stdout: vec![b'x'; 16 << 20],
            stderr: b"oops".to_vec(),
        };
        let mut buf = Vec::new();
        write_reply(&mut buf, &reply).unwrap();
        assert_eq!(read_reply(&mut buf.as_slice(), 16 << 20).unwrap(), reply);
        for outcome in [
            Outcome::Exit { code: 3 },
            Outcome::Signal { signal: 9 },
            Outcome::Timeout,
            Outcome::TooMuchOutput,
            Outcome::Spawn {
                errno: None,
                message: "m".into(),
            },
        ] {
            let reply = Reply {
                outcome,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            let mut buf = Vec::new();
            write_reply(&mut buf, &reply).unwrap();
            assert_eq!(read_reply(&mut buf.as_slice(), 0).unwrap(), reply);
        }
    }

    #[test]
    fn oversized_and_cut_frames_are_refused() {
        let reply = Reply {
            outcome: Outcome::Exit { code: 0 },
            stdout: vec![0; 11],
            stderr: Vec::new(),
        };
        let mut buf = Vec::new();
        write_reply(&mut buf, &reply).unwrap();
        let e = read_reply(&mut buf.as_slice(), 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let e = read_reply(&mut &buf[..buf.len() - 1], 11).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        let huge = u32::MAX.to_le_bytes();
        let e = read_request(&mut huge.as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn errno_survives_the_crossing() {
        let e = error(Some(libc::ENOENT), "ignored");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(error(None, "gone").to_string(), "gone");
    }
}
