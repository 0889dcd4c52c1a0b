//! One netlink request, its replies, and the kernel's verdict: the part of
//! talking to rtnetlink and generic netlink that both share.
//!
//! neli's router spawns a receiving thread per socket; blipp asks a
//! question now and then and waits for the answer, so it drives neli's
//! plain blocking socket itself.

use std::fmt::Debug;
use std::io;
use std::os::fd::AsRawFd;

use neli::consts::nl::{NlType, NlmF, Nlmsg};
use neli::consts::socket::NlFamily;
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::utils::Groups;
use neli::{FromBytesWithInput, Size, ToBytes};

/// A netlink exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// socket(2), bind(2), send(2) or recv(2) failed, or a message did not
    /// parse.
    #[error("netlink socket: {0}")]
    Socket(String),
    /// The kernel answered the request with an error.
    #[error("netlink request: {source}")]
    Kernel {
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
    },
    /// A request could not be built (a neli builder refused it).
    #[error("building a netlink request: {0}")]
    Build(String),
}

impl NetlinkError {
    /// The errno of a kernel error, to tell "not supported" from failures.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(super) fn build(e: impl std::fmt::Display) -> Self {
        NetlinkError::Build(e.to_string())
    }
}

impl From<neli::err::SocketError> for NetlinkError {
    fn from(e: neli::err::SocketError) -> Self {
        NetlinkError::Socket(e.to_string())
    }
}

/// A blocking netlink socket of one family, bound to the network namespace
/// of the thread that opened it.
pub struct Socket {
    handle: NlSocketHandle,
    seq: u32,
}

impl Socket {
    /// Opens and binds a socket of `family`. Replies the kernel does not
    /// send within two seconds fail the request instead of blocking the
    /// probe forever.
    pub fn connect(family: NlFamily) -> Result<Self, NetlinkError> {
        let handle = NlSocketHandle::connect(family, None, Groups::empty())?;
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: a valid socket and a timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                handle.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&timeout).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>())
                    .expect("a timeval's size fits socklen_t"),
            )
        };
        if rc != 0 {
            return Err(NetlinkError::Socket(format!(
                "setsockopt(SO_RCVTIMEO): {}",
                io::Error::last_os_error()
            )));
        }
        Ok(Self { handle, seq: 0 })
    }

    /// Sends `payload` as a request of type `ty` and hands every reply
    /// payload to `on_reply`: all of a dump's (`NlmF::DUMP`, until
    /// `NLMSG_DONE`), or the one answer of a plain request. A kernel error
    /// ends the exchange with [`NetlinkError::Kernel`].
    pub fn request<T, P, R>(
        &mut self,
        ty: T,
        flags: NlmF,
        payload: P,
        mut on_reply: impl FnMut(&R) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError>
    where
        T: NlType + Debug,
        P: Size + ToBytes + Debug,
        R: Size + FromBytesWithInput<Input = usize> + Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(NetlinkError::build)?;
        self.handle.send(&msg)?;
        let dump = flags.contains(NlmF::DUMP);
        loop {
            let (replies, _) = self.handle.recv::<T, R>()?;
            for reply in replies {
                let reply = reply?;
                // A late answer to an earlier, abandoned request.
                if *reply.nl_seq() != seq {
                    continue;
                }
                if Into::<u16>::into(*reply.nl_type()) == u16::from(Nlmsg::Done) {
                    return Ok(());
                }
                match reply.nl_payload() {
                    NlPayload::Payload(p) => {
                        on_reply(p)?;
                        if !dump {
                            return Ok(());
                        }
                    }
                    NlPayload::Err(e) => {
                        return Err(NetlinkError::Kernel {
                            source: io::Error::from_raw_os_error(e.error().saturating_abs()),
                        });
                    }
                    NlPayload::Ack(_) | NlPayload::DumpExtAck(_) | NlPayload::Empty => {
                        return Ok(());
                    }
                }
            }
        }
    }
}
