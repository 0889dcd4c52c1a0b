//! `blippcmd top`: a live view of a running blippd over the control
//! socket. blippd keeps a short, bounded history of the
//! [`quantities`] (see [`crate::status`]); [`render`] lays one screen out
//! as text, [`sparkline`] draws a series, [`terminal`] refreshes the
//! screen in place, or prints plain frames when standard output is not a
//! terminal.

pub mod quantities;
pub mod render;
pub mod sparkline;
pub mod terminal;
