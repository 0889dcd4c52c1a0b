//! `/proc/net/snmp`: for each protocol a header line of counter names and a
//! line of values, both prefixed `Proto:`. Columns are found by name, not
//! position: kernels append columns (`Tcp: ... InCsumErrors` since 3.10,
//! `Udp: ... RcvbufErrors SndbufErrors` since 2.6.18, `IgnoredMulti`,
//! `MemErrors` later).

use super::{ParseError, number};

/// The TCP and UDP counters blipp reports; `None` when this kernel has no
/// such column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snmp {
    /// `Tcp: InSegs`: segments received.
    pub tcp_in_segs: Option<u64>,
    /// `Tcp: OutSegs`: segments sent, retransmissions excluded.
    pub tcp_out_segs: Option<u64>,
    /// `Tcp: RetransSegs`: segments retransmitted.
    pub tcp_retrans_segs: Option<u64>,
    /// `Udp: InDatagrams`: datagrams delivered to sockets.
    pub udp_in_datagrams: Option<u64>,
    /// `Udp: OutDatagrams`: datagrams sent.
    pub udp_out_datagrams: Option<u64>,
}

/// Parses the whole file.
pub fn parse(text: &str) -> Result<Snmp, ParseError> {
    let mut s = Snmp::default();
    let mut lines = text.lines().enumerate();
    while let Some((_, header)) = lines.next() {
        let Some((proto, names)) = header.split_once(':') else {
            continue;
        };
        let wanted: &mut [(&str, &mut Option<u64>)] = match proto {
            "Tcp" => &mut [
                ("InSegs", &mut s.tcp_in_segs),
                ("OutSegs", &mut s.tcp_out_segs),
                ("RetransSegs", &mut s.tcp_retrans_segs),
            ],
            "Udp" => &mut [
                ("InDatagrams", &mut s.udp_in_datagrams),
                ("OutDatagrams", &mut s.udp_out_datagrams),
            ],
            _ => continue,
        };
        let Some((i, values)) = lines.next() else {
            return Err(ParseError::Missing {
                file: "net/snmp",
                what: "the values line after a header",
            });
        };
        let line_no = i + 1;
        let values = match values.split_once(':') {
            Some((p, v)) if p == proto => v,
            _ => {
                return Err(ParseError::Missing {
                    file: "net/snmp",
                    what: "the values line after a header",
                });
            }
        };
        for (name, value) in names
            .split_ascii_whitespace()
            .zip(values.split_ascii_whitespace())
        {
            if let Some((_, slot)) = wanted.iter_mut().find(|(n, _)| *n == name) {
                **slot = Some(number("net/snmp", line_no, value)?);
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_blipp_vector() {
        let s = parse(include_str!("fixtures/original/net-snmp")).unwrap();
        assert_eq!(
            s,
            Snmp {
                tcp_in_segs: Some(4_660_605),
                tcp_out_segs: Some(3_841_483),
                tcp_retrans_segs: Some(20_035),
                udp_in_datagrams: Some(509_585),
                udp_out_datagrams: Some(374_940),
            }
        );
    }

    #[test]
    fn old_and_new_kernels() {
        let old = parse(include_str!("fixtures/snmp-2.6.9")).unwrap();
        assert_eq!(
            (old.tcp_in_segs, old.tcp_out_segs, old.tcp_retrans_segs),
            (Some(2_251_713), Some(2_074_116), Some(1893))
        );
        assert_eq!(
            (old.udp_in_datagrams, old.udp_out_datagrams),
            (Some(131_357), Some(82_665))
        );
        let new = parse(include_str!("fixtures/snmp-6.18")).unwrap();
        assert_eq!(
            (new.tcp_in_segs, new.tcp_out_segs, new.tcp_retrans_segs),
            (Some(12_738), Some(8479), Some(17))
        );
        assert_eq!(
            (new.udp_in_datagrams, new.udp_out_datagrams),
            (Some(196), Some(197))
        );
    }

    #[test]
    fn missing_and_broken() {
        // A kernel without UDP columns: unknown, not zero.
        let s = parse("Tcp: InSegs OutSegs\nTcp: 5 6\n").unwrap();
        assert_eq!(
            (s.tcp_in_segs, s.tcp_retrans_segs, s.udp_in_datagrams),
            (Some(5), None, None)
        );
        assert!(parse("Tcp: InSegs OutSegs\n").is_err());
        assert!(parse("Tcp: InSegs OutSegs\nUdp: 5 6\n").is_err());
        assert!(parse("Tcp: InSegs OutSegs\nTcp: x 6\n").is_err());
        // MaxConn is signed (-1) but not a column blipp reads.
        assert_eq!(
            parse("Tcp: MaxConn InSegs\nTcp: -1 7\n")
                .unwrap()
                .tcp_in_segs,
            Some(7)
        );
    }
}
