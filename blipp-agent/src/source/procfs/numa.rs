//! Per-NUMA-node files under `/sys/devices/system/node/nodeN/`:
//! `meminfo` (`Node N Key:   value kB` lines) and `numastat` (`key value`
//! page counters since boot). Which keys exist depends on the kernel, so
//! every field is optional.

use super::{ParseError, kilobytes, number};

/// The node meminfo lines blipp reports, in kB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeMeminfo {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemFree`.
    pub free: Option<u64>,
    /// `MemUsed`.
    pub used: Option<u64>,
    /// `FilePages`: page cache.
    pub file_pages: Option<u64>,
    /// `AnonPages`.
    pub anon_pages: Option<u64>,
    /// `Slab`.
    pub slab: Option<u64>,
    /// `Dirty`.
    pub dirty: Option<u64>,
}

/// Parses a node's `meminfo`.
pub fn parse_meminfo(text: &str) -> Result<NodeMeminfo, ParseError> {
    let mut m = NodeMeminfo::default();
    for (i, line) in text.lines().enumerate() {
        // "Node 0 MemTotal:  24602828 kB": drop "Node" and the node number.
        let mut fields = line.split_ascii_whitespace();
        let (Some("Node"), Some(_), Some(key), Some(value)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let slot = match key.strip_suffix(':').unwrap_or(key) {
            "MemTotal" => &mut m.total,
            "MemFree" => &mut m.free,
            "MemUsed" => &mut m.used,
            "FilePages" => &mut m.file_pages,
            "AnonPages" => &mut m.anon_pages,
            "Slab" => &mut m.slab,
            "Dirty" => &mut m.dirty,
            _ => continue,
        };
        *slot = Some(kilobytes("node meminfo", i + 1, key, value)?);
    }
    if m.total.is_none() || m.free.is_none() {
        return Err(ParseError::Missing {
            file: "node meminfo",
            what: "MemTotal and MemFree",
        });
    }
    Ok(m)
}

/// A node's allocation counters (pages since boot), as numastat(8) shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Numastat {
    /// Allocated on this node as intended.
    pub numa_hit: Option<u64>,
    /// Allocated on this node although another was preferred.
    pub numa_miss: Option<u64>,
    /// Intended for this node but allocated on another.
    pub numa_foreign: Option<u64>,
    /// Interleave policy allocations that hit this node.
    pub interleave_hit: Option<u64>,
    /// Allocated here by a process running on this node.
    pub local_node: Option<u64>,
    /// Allocated here by a process running on another node.
    pub other_node: Option<u64>,
}

/// Parses a node's `numastat`.
pub fn parse_numastat(text: &str) -> Result<Numastat, ParseError> {
    let mut n = Numastat::default();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let slot = match key {
            "numa_hit" => &mut n.numa_hit,
            "numa_miss" => &mut n.numa_miss,
            "numa_foreign" => &mut n.numa_foreign,
            "interleave_hit" => &mut n.interleave_hit,
            "local_node" => &mut n.local_node,
            "other_node" => &mut n.other_node,
            _ => continue,
        };
        *slot = Some(number("numastat", i + 1, value)?);
    }
    if n.numa_hit.is_none() {
        return Err(ParseError::Missing {
            file: "numastat",
            what: "numa_hit",
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn meminfo_lines() {
        let text = "Node 1 MemTotal:       16777216 kB\nNode 1 MemFree:         8388608 kB\nNode 1 MemUsed:         8388608 kB\nNode 1 Active(anon):       1640 kB\nNode 1 HugePages_Total:     0\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total, Some(16_777_216));
        assert_eq!(m.used, Some(8_388_608));
        assert_eq!(m.slab, None);
        assert!(parse_meminfo("Node 0 MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo("Node 0 MemTotal: x kB\nNode 0 MemFree: 1 kB\n").is_err());
    }

    #[test]
    fn numastat_lines() {
        let n = parse_numastat("numa_hit 38789556\nnuma_miss 0\nnuma_foreign 0\ninterleave_hit 1136\nlocal_node 38789556\nother_node 0\n").unwrap();
        assert_eq!(n.numa_hit, Some(38_789_556));
        assert_eq!(n.interleave_hit, Some(1136));
        assert!(parse_numastat("numa_miss 0\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse_meminfo(&text);
            let _ = parse_numastat(&text);
        }
    }
}
