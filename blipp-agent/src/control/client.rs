//! blippcmd's side of the control socket: blocking, one request at a
//! time, with timeouts so that a stuck blippd never hangs the operator's
//! shell.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{MAX_RESPONSE, Request, Response};
use super::server::ANSWER;

/// Why a request got no answer, or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No blippd listens there, or this user may not connect.
    #[error("{}: {source} (is blippd running, with this control socket? it accepts root and blippd's own user only)", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Talking to blippd failed.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// blippd's answer is not one.
    #[error("control socket: unexpected answer: {0}")]
    Protocol(String),
    /// blippd refused the request; nothing changed.
    #[error("{0}")]
    Refused(String),
}

/// A connection to blippd's control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        // A little longer than blippd waits for its arbiter, so that its
        // own timeout message arrives first.
        stream.set_read_timeout(Some(ANSWER + Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let writer = stream.try_clone()?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends `request`; its result, or blippd's reason for refusing it.
    pub fn request(&mut self, request: &Request) -> Result<Value, ClientError> {
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.send(&line)
    }

    /// Sends one raw line (for tests of the server's checks) and reads
    /// the response.
    pub fn raw(&mut self, line: &[u8]) -> Result<Value, ClientError> {
        self.send(line)
    }

    /// Writes `line` and reads the answer. blippd refuses a peer it does
    /// not accept with one line and closes at once, so the write can fail
    /// (EPIPE) before the refusal is read: then the refusal, when there is
    /// one, is the answer, and the write error only when there is none.
    fn send(&mut self, line: &[u8]) -> Result<Value, ClientError> {
        match self.writer.write_all(line) {
            Ok(()) => self.read_response(),
            Err(e) => match self.read_response() {
                refused @ Err(ClientError::Refused(_)) => refused,
                _ => Err(ClientError::Io(e)),
            },
        }
    }

    fn read_response(&mut self) -> Result<Value, ClientError> {
        let mut buf = Vec::new();
        let limit = u64::try_from(MAX_RESPONSE).unwrap_or(u64::MAX);
        let n = (&mut self.reader).take(limit).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "blippd closed the connection without answering".into(),
            ));
        }
        let response: Response = serde_json::from_slice(&buf).map_err(|e| {
            ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&buf).trim_end()))
        })?;
        match response {
            Response::Ok(v) => Ok(v),
            Response::Error(e) => Err(ClientError::Refused(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// blippd answered a refused peer and closed before the request was
    /// written: the refusal is what the operator sees, not EPIPE.
    #[test]
    fn a_refusal_sent_before_the_request_is_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"{\"error\":\"permission denied: uid 7\"}\n")
                .unwrap();
        });
        let mut client = Client::connect(&path).unwrap();
        server.join().unwrap();
        // The peer has closed: the write fails with EPIPE.
        match client.request(&Request::Status {}) {
            Err(ClientError::Refused(e)) => assert_eq!(e, "permission denied: uid 7"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_peer_that_closes_without_a_word_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || drop(listener.accept().unwrap()));
        let mut client = Client::connect(&path).unwrap();
        server.join().unwrap();
        assert!(matches!(
            client.request(&Request::Status {}),
            Err(ClientError::Io(_) | ClientError::Protocol(_))
        ));
    }
}
