//! The control socket, served by blippd.
//!
//! Who may connect: the socket file is mode 0600 in a directory that
//! others cannot write (systemd's `RuntimeDirectory=blipp`, mode 0700;
//! blippd creates a missing one with that mode), and every connection's
//! peer credentials (`SO_PEERCRED`) must be root's or blippd's own uid —
//! so a socket whose mode was relaxed still refuses everyone else. A
//! refused peer gets one error line, and the refusal is logged with its
//! uid and pid.
//!
//! What a client can make blippd do: one request per line, at most
//! [`MAX_LINE`] bytes (longer ones close the connection unread), parsed
//! strictly; at most [`MAX_CLIENTS`] connections served at once, and up to
//! [`MAX_WAITING`] more waiting up to [`WAIT`] for one of them to end
//! (beyond that, told to retry and closed); a connection that does not
//! complete a request within [`IDLE`] is closed, so idle clients cannot
//! hold every slot and `blippcmd status` always gets through (blippcmd
//! sends its request as soon as it connects); a response that cannot be
//! written within [`WRITE`] closes it. Refusals are logged at most once per
//! [`refusals::LOG_EVERY`] per reason, with the number refused. None of
//! this can stop the agent: the probes run in other tasks, and the arbiter
//! answers commands between its other work.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::command::{Command, CommandError};
use super::protocol::{MAX_LINE, Request, Response};
use super::refusals::{self, Refusals};
use crate::config::edit::Edit;
use crate::logging::LevelHandle;
use crate::status::TAIL_CAPACITY;

/// Connections served at once.
pub const MAX_CLIENTS: usize = 8;
/// Connections waiting for a slot; more are refused at once.
pub const MAX_WAITING: usize = 64;
/// A connection with no complete request for this long is closed: 8 idle
/// clients held every slot for 30 s before (issue 16).
pub const IDLE: Duration = Duration::from_secs(2);
/// How long a connection waits for a slot: longer than [`IDLE`], so that
/// a slot held by an idle client is free by then.
pub const WAIT: Duration = Duration::from_secs(5);
/// A response must be written within this.
pub const WRITE: Duration = Duration::from_secs(10);
/// How long a request may wait for the arbiter (stopping a probe waits for
/// a command it is running, up to that command's timeout).
pub const ANSWER: Duration = Duration::from_secs(120);
/// Samples `tail` returns when the request does not say.
pub const DEFAULT_TAIL: usize = 10;

/// The socket's file name in the runtime directory.
pub const SOCKET_NAME: &str = "blippd.sock";

/// Why the control socket is not served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The directory could not be created or checked.
    #[error("{}: {source}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory lets others replace the socket.
    #[error("{}: writable by other users (mode {mode:o}): another user could replace the socket", dir.display())]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Another process serves this path.
    #[error("{}: another blippd is listening there", path.display())]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("{}: exists and is not a socket", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding or setting the mode failed.
    #[error("{}: {source}", path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the socket goes when the command line does not say:
/// `$RUNTIME_DIRECTORY/blippd.sock` under systemd, else
/// `/run/blipp/blippd.sock`. blippcmd looks there too.
pub fn default_path() -> PathBuf {
    default_path_in(std::env::var_os("RUNTIME_DIRECTORY"))
}

/// [`default_path`] given `$RUNTIME_DIRECTORY`.
fn default_path_in(runtime_directory: Option<std::ffi::OsString>) -> PathBuf {
    runtime_directory
        .and_then(|dirs| {
            // systemd lists several directories separated by colons.
            std::env::split_paths(&dirs).next()
        })
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/run/blipp"))
        .join(SOCKET_NAME)
}

/// The bound socket. Dropping it removes the socket file, if it is still
/// the one bound here.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    inode: (u64, u64),
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Makes sure `dir` exists and that no other user can put things in it.
fn check_directory(dir: &Path) -> Result<(), ControlError> {
    let err = |source| ControlError::Directory {
        dir: dir.to_owned(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    let meta = std::fs::metadata(dir).map_err(err)?;
    if !meta.is_dir() {
        return Err(err(std::io::Error::other("not a directory")));
    }
    let mode = meta.permissions().mode() & 0o7777;
    let sticky = mode & 0o1000 != 0;
    let foreign_owner = meta.uid() != 0 && meta.uid() != euid();
    if (mode & 0o022 != 0 && !sticky) || foreign_owner {
        return Err(ControlError::UnsafeDirectory {
            dir: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

impl ControlSocket {
    /// Binds `path` (mode 0600): creates its directory (0700) when it is
    /// missing, replaces a stale socket left by a blippd that died, and
    /// refuses a path another blippd serves. Call inside the runtime.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        check_directory(dir)?;
        let bind_err = |source| ControlError::Bind {
            path: path.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ControlError::InUse {
                        path: path.to_owned(),
                    });
                }
                tracing::info!(path = %path.display(), "removing the stale control socket of an earlier blippd");
                std::fs::remove_file(path).map_err(bind_err)?;
            }
            Ok(_) => {
                return Err(ControlError::NotASocket {
                    path: path.to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        let meta = std::fs::symlink_metadata(path).map_err(bind_err)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            inode: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves clients until the task is dropped, sending their commands to
    /// `commands`; `log_level` answers `log_level` requests.
    pub async fn serve(self, commands: mpsc::Sender<Command>, log_level: Option<LevelHandle>) {
        let shared = Arc::new(Shared {
            commands,
            log_level,
            own_uid: euid(),
            busy: Refusals::default(),
            foreign: Refusals::default(),
        });
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        let waiting = Arc::new(Semaphore::new(MAX_WAITING));
        loop {
            let stream = match self.listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let shared = Arc::clone(&shared);
            let slots = Arc::clone(&slots);
            let Ok(queued) = Arc::clone(&waiting).try_acquire_owned() else {
                tokio::spawn(shared.refuse_busy(stream));
                continue;
            };
            tokio::spawn(async move {
                let permit = tokio::time::timeout(WAIT, slots.acquire_owned()).await;
                drop(queued);
                match permit {
                    Ok(Ok(permit)) => {
                        shared.connection(stream).await;
                        drop(permit);
                    }
                    _ => shared.refuse_busy(stream).await,
                }
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What every connection needs.
struct Shared {
    commands: mpsc::Sender<Command>,
    log_level: Option<LevelHandle>,
    own_uid: u32,
    /// Connections refused for want of a slot.
    busy: Refusals,
    /// Peers refused for their credentials.
    foreign: Refusals,
}

async fn write_response(
    stream: &mut (impl tokio::io::AsyncWrite + Unpin),
    response: &Response,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    line.push(b'\n');
    tokio::time::timeout(WRITE, stream.write_all(&line))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Reads one line of at most [`MAX_LINE`] bytes into `buf`. `Ok(false)`
/// at the end of the stream; an error for a longer line.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::ReadHalf<'_>>,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
    let n = reader.take(limit).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') && n >= MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("request longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(true)
}

impl Shared {
    /// Tells a client that found no slot to retry, and closes.
    async fn refuse_busy(self: Arc<Self>, mut stream: UnixStream) {
        if let Some(refused) = self.busy.record(std::time::Instant::now()) {
            tracing::warn!(
                max = MAX_CLIENTS,
                refused,
                "control socket: too many clients; refused (at most one line per {}s)",
                refusals::LOG_EVERY.as_secs()
            );
        }
        let busy = Response::Error(format!(
            "blippd serves {MAX_CLIENTS} control clients at once; try again"
        ));
        let _ = write_response(&mut stream, &busy).await;
    }

    async fn connection(&self, mut stream: UnixStream) {
        let peer = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: no peer credentials; connection refused");
                return;
            }
        };
        let (uid, pid) = (peer.uid(), peer.pid().unwrap_or(0));
        if uid != 0 && uid != self.own_uid {
            if let Some(refused) = self.foreign.record(std::time::Instant::now()) {
                tracing::warn!(
                    uid,
                    pid,
                    refused,
                    "control socket: refused a client that is neither root nor blippd's user (at most one line per {}s)",
                    refusals::LOG_EVERY.as_secs()
                );
            }
            let refused = Response::Error(format!(
                "permission denied: uid {uid} is neither root nor blippd's user"
            ));
            let _ = write_response(&mut stream, &refused).await;
            return;
        }
        tracing::debug!(uid, pid, "control socket: client connected");
        let (read, mut write) = stream.split();
        let mut reader = BufReader::new(read);
        let mut buf = Vec::new();
        loop {
            let line = match tokio::time::timeout(IDLE, read_line(&mut reader, &mut buf)).await {
                Err(_) => {
                    tracing::debug!(uid, pid, "control socket: idle client closed");
                    return;
                }
                Ok(Ok(false)) => return,
                Ok(Ok(true)) => &buf,
                Ok(Err(e)) => {
                    tracing::warn!(uid, pid, error = %e, "control socket: request refused, connection closed");
                    let response = Response::Error(format!("{e}; connection closed"));
                    let _ = write_response(&mut write, &response).await;
                    return;
                }
            };
            let response = match std::str::from_utf8(line) {
                Err(_) => Response::Error("invalid request: not UTF-8".into()),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match Request::parse(text.trim_end()) {
                    Err(e) => {
                        tracing::debug!(uid, pid, error = %e, "control socket: invalid request");
                        Response::Error(format!("invalid request: {e}"))
                    }
                    Ok(request) => self.answer(request, uid, pid).await,
                },
            };
            if let Err(e) = write_response(&mut write, &response).await {
                tracing::debug!(uid, pid, error = %e, "control socket: client gone");
                return;
            }
        }
    }

    /// Runs one request and phrases its outcome.
    async fn answer(&self, request: Request, uid: u32, pid: i32) -> Response {
        if changes_something(&request) {
            tracing::info!(uid, pid, request = ?request, "control socket request");
        } else {
            tracing::debug!(uid, pid, request = ?request, "control socket request");
        }
        let to_json = |v: Result<serde_json::Value, String>| match v {
            Ok(v) => Response::Ok(v),
            Err(e) => Response::Error(e),
        };
        match request {
            Request::LogLevel { level } => match &self.log_level {
                None => Response::Error("this blippd cannot change its log level".into()),
                Some(h) => match h.set(&level) {
                    Ok(filter) => {
                        tracing::info!(filter = %filter, "log filter changed through the control socket");
                        Response::Ok(serde_json::json!({ "filter": filter }))
                    }
                    Err(e) => Response::Error(e.to_string()),
                },
            },
            Request::Status {} => to_json(
                self.ask(Command::Status)
                    .await
                    .and_then(|s| serde_json::to_value(s).map_err(|e| e.to_string())),
            ),
            Request::Config {} => to_json(self.ask(Command::Config).await),
            Request::Probe { action, name } => to_json(
                self.ask_result(|reply| Command::Probe {
                    action,
                    name,
                    reply,
                })
                .await,
            ),
            Request::Set { pointer, value } => to_json(
                self.ask_result(|reply| Command::Edit {
                    edit: Edit {
                        pointer,
                        value: Some(value),
                    },
                    reply,
                })
                .await,
            ),
            Request::Delete { pointer } => to_json(
                self.ask_result(|reply| Command::Edit {
                    edit: Edit {
                        pointer,
                        value: None,
                    },
                    reply,
                })
                .await,
            ),
            Request::Reload {} => to_json(self.ask_result(Command::Reload).await),
            Request::Tail { probe, count } => {
                let count = count.unwrap_or(DEFAULT_TAIL);
                if count > TAIL_CAPACITY {
                    return Response::Error(format!(
                        "count {count} is invalid: expected at most {TAIL_CAPACITY} (the samples kept per probe)"
                    ));
                }
                to_json(
                    self.ask_result(|reply| Command::Tail {
                        probe,
                        count,
                        reply,
                    })
                    .await,
                )
            }
            Request::UnisPoll {} => to_json(self.ask_result(Command::UnisPoll).await),
            Request::Top {} => to_json(self.ask(Command::Top).await),
        }
    }

    /// Sends a command and waits for its answer.
    async fn ask<T: serde::Serialize>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<serde_json::Value, String> {
        let v = self.wait(make).await?;
        serde_json::to_value(v).map_err(|e| e.to_string())
    }

    /// Sends a command whose answer may be a refusal.
    async fn ask_result<T: serde::Serialize>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CommandError>>) -> Command,
    ) -> Result<serde_json::Value, String> {
        let v = self.wait(make).await?.map_err(|e| e.to_string())?;
        serde_json::to_value(v).map_err(|e| e.to_string())
    }

    async fn wait<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| "blippd is stopping".to_owned())?;
        match tokio::time::timeout(ANSWER, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("blippd is stopping".to_owned()),
            Err(_) => Err(format!(
                "blippd did not answer within {} s (a probe being stopped may be waiting for its command)",
                ANSWER.as_secs()
            )),
        }
    }
}

fn changes_something(r: &Request) -> bool {
    !matches!(
        r,
        Request::Status {} | Request::Config {} | Request::Tail { .. } | Request::Top {}
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_follows_runtime_directory() {
        assert_eq!(
            default_path_in(Some("/run/x:/run/y".into())),
            PathBuf::from("/run/x/blippd.sock")
        );
        assert_eq!(
            default_path_in(None),
            PathBuf::from("/run/blipp/blippd.sock")
        );
        assert_eq!(
            default_path_in(Some("".into())),
            PathBuf::from("/run/blipp/blippd.sock")
        );
    }

    #[test]
    fn unsafe_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            check_directory(&open),
            Err(ControlError::UnsafeDirectory { mode: 0o777, .. })
        ));
        let sticky = dir.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(check_directory(&sticky).is_ok(), "like /tmp");
        let fresh = dir.path().join("fresh");
        check_directory(&fresh).unwrap();
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
