//! blipp: a host metrics agent for Linux.
//!
//! Data flows one way: [`source`] (kernel interfaces: /proc text, eBPF maps)
//! -> [`probe`] (one module per measured thing, turning records into
//! [`sample::Sample`]s) -> [`report`] (collection, batching, sinks). The
//! [`arbiter`] runs probes on their [`schedule`]s; [`config`] decides which.
#![deny(missing_docs)]

pub mod arbiter;
pub mod bounded;
pub mod cli;
pub mod config;
pub mod control;
pub mod counter;
pub mod daemon;
pub mod fdlimit;
pub mod host;
pub mod limits;
pub mod logging;
pub mod plausible;
pub mod probe;
pub mod report;
pub mod rfc3339;
pub mod sample;
pub mod schedule;
pub mod source;
pub mod status;
pub mod trust;
pub mod unis;
