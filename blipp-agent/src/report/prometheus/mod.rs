//! Prometheus: the mapping of samples to families, series and labels
//! ([`names`], cached per series by [`catalog`]), shared by the scrape
//! endpoint and remote write.

pub mod catalog;
pub mod names;
