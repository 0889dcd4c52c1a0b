//! Prometheus remote write 1.0: every sample, to any receiver of it
//! (Prometheus with `--web.enable-remote-write-receiver`, Mimir, Thanos
//! Receive, Cortex, VictoriaMetrics), with the MS sink's no-loss rules.
//!
//! [`encode`] makes a request body (protobuf by hand, snappy), [`proto`]
//! holds the messages it follows, [`sink`] is one destination's task:
//! batching by size and age, the spool, back-off, what an answer means.

pub mod encode;
pub mod proto;
pub mod sink;
