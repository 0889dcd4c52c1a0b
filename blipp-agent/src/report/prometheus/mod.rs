//! Prometheus: the mapping of samples to families, series and labels
//! ([`names`], cached per series by [`catalog`]), shared by the scrape
//! endpoint and remote write; the scrape endpoint ([`config`], [`store`]
//! of the latest samples, [`exposition`] formats, HTTP [`server`]).

pub mod catalog;
pub mod config;
pub mod exposition;
pub mod names;
pub mod server;
pub mod store;
