//! The control plane: a Unix socket served by blippd, through which
//! blippcmd shows and steers the running agent (status, the running
//! configuration and edits of it, probes stopped, started and restarted,
//! the log level, each probe's latest samples).
//!
//! [`protocol`] is the wire format, [`server`] the socket and its checks
//! (root only: file mode, directory mode and the peer's credentials),
//! [`command`] what the server asks of the arbiter, [`hangup`] SIGHUP
//! as a reload, [`client`] blippcmd's
//! side, [`show`] how blippcmd prints answers, [`shell`] its interactive
//! mode, [`top`] its live view.

pub mod client;
pub mod command;
pub mod hangup;
pub mod protocol;
mod refusals;
pub mod server;
pub mod shell;
pub mod show;
pub mod top;

pub use command::{Command, CommandError};
pub use server::{ControlError, ControlSocket};
