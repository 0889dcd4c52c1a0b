//! The kernel programs' diagnostics (aya-log records) in the agent's
//! tracing output, under the target `blipp::kernel`.
//!
//! The programs log only on rare paths (a full ring buffer, once), never
//! per event: a log record costs a ring buffer write in the kernel.

use std::os::fd::{AsFd as _, OwnedFd};

use aya_log::EbpfLogger;

use super::info;

/// Forwards `log` records from aya-log to `tracing`.
pub struct TracingLog;

impl log::Log for TracingLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: "blipp::kernel", "{message}"),
            log::Level::Warn => tracing::warn!(target: "blipp::kernel", "{message}"),
            log::Level::Info => tracing::info!(target: "blipp::kernel", "{message}"),
            log::Level::Debug => tracing::debug!(target: "blipp::kernel", "{message}"),
            log::Level::Trace => tracing::trace!(target: "blipp::kernel", "{message}"),
        }
    }

    fn flush(&self) {}
}

/// The kernel-side logger of the loaded object.
pub type KernelLogger = EbpfLogger<TracingLog>;

/// The map aya-log's records go through (aya-log's name for it).
pub const MAP: &str = "AYA_LOGS";

/// The forwarder of the log records of `programs`, loaded by the image
/// before a re-execution (an `EbpfLogger` cannot be made from a map
/// descriptor): aya-log finds the map again through the id of a program
/// that writes to it, which needs `CAP_SYS_ADMIN`. `None`, saying why at
/// debug, when no program logs or the lookup fails.
pub fn find<'a>(programs: impl Iterator<Item = &'a OwnedFd>) -> Option<KernelLogger> {
    let mut why = "none of the attached programs writes log records".to_owned();
    for fd in programs {
        let program = match info::program(fd.as_fd()) {
            Ok(p) => p,
            Err(e) => {
                why = format!("the id of an attached program: {e}");
                continue;
            }
        };
        match KernelLogger::init_from_id_with_logger(program.id, TracingLog) {
            Ok(logger) => return Some(logger),
            // This program does not log; another may.
            Err(aya_log::Error::MapNotFound) => {}
            Err(e) => why = format!("program {}: {e}", program.name),
        }
    }
    tracing::debug!(error = %why, "no kernel-side log records");
    None
}

/// Forwards records as they arrive until the runtime stops. Must be called
/// inside a tokio runtime.
pub fn spawn(logger: KernelLogger) -> std::io::Result<()> {
    // SAFETY: the logger owns its ring buffer's descriptor, which stays
    // open and the same for as long as the AsyncFd owns the logger.
    let mut fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)?;
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
    Ok(())
}
