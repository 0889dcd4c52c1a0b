//! SIGHUP: read the configuration file again, as `blippcmd reload` does.
//! Without this, SIGHUP's default action killed blippd with no log line
//! and its control socket left behind, and systemd counted that as a
//! clean exit (`systemctl reload` sends it).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use super::Command;

/// Ignores SIGHUP until [`reload_on_hangup`] watches it: a SIGHUP that
/// arrives while the probes are being built must not kill blippd. The
/// watcher's handler replaces this disposition; programs blippd runs get
/// the default one back, since an exec resets caught signals (and the
/// watcher is in place before any probe runs a program).
pub fn ignore_until_watched() {
    // SAFETY: SIG_IGN needs no handler code; signal() only changes this
    // process's disposition of SIGHUP.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// Sends a reload to the arbiter at every SIGHUP and logs its outcome;
/// the future returned ends when the arbiter is gone. The handler is
/// installed here, before the future runs, so that no program a probe
/// starts afterwards inherits the ignored disposition.
pub fn reload_on_hangup(commands: mpsc::Sender<Command>) -> impl std::future::Future<Output = ()> {
    let hangups = signal(SignalKind::hangup())
        .inspect_err(|e| {
            tracing::warn!(error = %e, "cannot watch SIGHUP: it does not reload the configuration");
        })
        .ok();
    async move {
        let Some(mut hangups) = hangups else { return };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the configuration again");
            let (reply, answer) = oneshot::channel();
            if commands.send(Command::Reload(reply)).await.is_err() {
                return;
            }
            match answer.await {
                Ok(Ok(changes)) => tracing::info!(
                    started = ?changes.started,
                    stopped = ?changes.stopped,
                    restarted = ?changes.restarted,
                    note = changes.note.as_deref().unwrap_or(""),
                    "SIGHUP: configuration reloaded"
                ),
                Ok(Err(e)) => tracing::warn!(
                    error = %e,
                    "SIGHUP: the configuration was not reloaded; the running one stays"
                ),
                Err(_) => return,
            }
        }
    }
}
