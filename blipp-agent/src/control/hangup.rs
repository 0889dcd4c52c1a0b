//! SIGHUP: read the configuration file again, as `blippcmd reload` does.
//! Without this, SIGHUP's default action killed blippd with no log line
//! and its control socket left behind, and systemd counted that as a
//! clean exit (`systemctl reload` sends it).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use super::Command;

extern "C" fn do_nothing(_: libc::c_int) {}

/// Catches SIGHUP with a handler that does nothing until
/// [`reload_on_hangup`] watches it: a SIGHUP that arrives while the probes
/// are being built must not kill blippd. Caught rather than ignored
/// (`SIG_IGN`): an exec resets a caught signal to its default action but
/// keeps an ignored one ignored, so the programs blippd and the processes
/// it forks at start-up run get SIGHUP's default action, as they would
/// from any shell.
pub fn ignore_until_watched() {
    // SAFETY: the handler does nothing, which is async-signal-safe; the
    // struct is fully initialised (zeroed, then its handler and empty
    // mask set) before sigaction reads it, and sigaction only changes
    // this process's disposition of SIGHUP. SA_RESTART keeps a SIGHUP
    // from interrupting a blocking call with EINTR meanwhile.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = do_nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut());
    }
}

/// Sends a reload to the arbiter at every SIGHUP and logs its outcome;
/// the future returned ends when the arbiter is gone. The handler is
/// installed here, before the future runs, so that a SIGHUP that arrives
/// meanwhile is not lost.
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
