//! UNIS and the MS: the HTTP client ([`client`], [`tls`]), the records
//! blipp writes ([`record`]), registration of node, ports, service,
//! measurements and metadata ([`register`]), the measurement store
//! ([`ms`]), the slots `simple_avoid` plans around ([`reservations`]), and the records of services on the host that
//! `registration_probe`s watch ([`watched`]). The sink that feeds samples through them is
//! `report::unis_ms`.

pub mod client;
mod error;
pub mod ms;
pub mod record;
pub mod register;
pub mod reservations;
pub mod service;
pub mod tls;
pub mod watched;

pub use client::Endpoint;
pub use error::UnisError;
pub use register::{Options, Session};
