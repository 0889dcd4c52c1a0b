//! Types shared by the kernel programs in `blipp-ebpf` and the agent.
//!
//! Everything here is `#[repr(C)]` plain data: the kernel writes it into maps
//! and the agent reads the same bytes back, so the layout is the contract.
#![no_std]
#![deny(missing_docs)]

pub mod disk;
pub mod histogram;
pub mod net;
pub mod process;
