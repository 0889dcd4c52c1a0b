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
        self.writer.write_all(&line)?;
        self.read_response()
    }

    /// Sends one raw line (for tests of the server's checks) and reads
    /// the response.
    pub fn raw(&mut self, line: &[u8]) -> Result<Value, ClientError> {
        self.writer.write_all(line)?;
        self.read_response()
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
