//! blippd's re-execution after loading its eBPF programs: the image that
//! loaded and attached them hands their descriptors to a fresh image of
//! the same executable, in the same process.

pub mod manifest;
