//! `/proc/net/dev`: two header lines, then per interface
//! `name: rx bytes packets errs drop fifo frame compressed multicast
//!        tx bytes packets errs drop fifo colls carrier compressed`.
//! Kernels before 2.6.x could glue the name to the first number
//! (`eth0:123`), so the split is on the colon, not on whitespace.

use super::{ParseError, number};

/// Counters of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

/// Parses every interface line into `out` (cleared first; its strings are
/// reused when the interface set does not change).
pub fn parse_into(text: &str, out: &mut Vec<NetDev>) -> Result<(), ParseError> {
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let mut v = [0u64; 16];
        let mut count = 0;
        for token in rest.split_ascii_whitespace() {
            if count < v.len() {
                v[count] = number("net/dev", i + 1, token)?;
            }
            count += 1;
        }
        if count < 16 {
            return Err(ParseError::FieldCount {
                file: "net/dev",
                line: i + 1,
                count,
                expected: "16 counters",
            });
        }
        if out.len() == n {
            out.push(NetDev::default());
        }
        let dev = &mut out[n];
        if dev.name != name {
            dev.name.clear();
            dev.name.push_str(name);
        }
        dev.rx_bytes = v[0];
        dev.rx_packets = v[1];
        dev.rx_errors = v[2];
        dev.rx_dropped = v[3];
        dev.tx_bytes = v[8];
        dev.tx_packets = v[9];
        dev.tx_errors = v[10];
        dev.tx_dropped = v[11];
        n += 1;
    }
    out.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:12267757  166430 1 2 0 0 0 0 30458998 143263 3 4 0 0 0 0
";

    #[test]
    fn interfaces() {
        let mut v = Vec::new();
        parse_into(TEXT, &mut v).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, "eth0");
        assert_eq!(
            (
                v[1].rx_bytes,
                v[1].rx_packets,
                v[1].rx_errors,
                v[1].rx_dropped
            ),
            (12_267_757, 166_430, 1, 2)
        );
        assert_eq!(
            (
                v[1].tx_bytes,
                v[1].tx_packets,
                v[1].tx_errors,
                v[1].tx_dropped
            ),
            (30_458_998, 143_263, 3, 4)
        );
        assert!(parse_into("eth0: 1 2 3\n", &mut v).is_err());
    }

    fn rx_tx(d: &NetDev) -> [u64; 8] {
        [
            d.rx_bytes,
            d.rx_packets,
            d.rx_errors,
            d.rx_dropped,
            d.tx_bytes,
            d.tx_packets,
            d.tx_errors,
            d.tx_dropped,
        ]
    }

    #[test]
    fn original_blipp_vector() {
        let mut v = Vec::new();
        parse_into(include_str!("fixtures/original/net-dev"), &mut v).unwrap();
        let names: Vec<&str> = v.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "wlan0", "pan0"]);
        assert_eq!(
            rx_tx(&v[1]),
            [12_267_757, 166_430, 0, 0, 30_458_998, 143_263, 0, 0]
        );
        assert_eq!(
            rx_tx(&v[2]),
            [5_029_574_829, 7_333_434, 0, 0, 887_097_774, 4_036_590, 0, 0]
        );
        assert_eq!(rx_tx(&v[3]), [0; 8]);
    }

    #[test]
    fn old_kernel_glued_names() {
        let mut v = Vec::new();
        parse_into(include_str!("fixtures/netdev-2.6.18"), &mut v).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].name, "eth0");
        assert_eq!(
            rx_tx(&v[1]),
            [
                3_818_541_327,
                31_219_443,
                12,
                4,
                2_807_734_851,
                24_542_009,
                3,
                7
            ]
        );
    }

    #[test]
    fn new_kernel_64_bit_counters_and_reuse() {
        let mut v = Vec::new();
        parse_into(include_str!("fixtures/netdev-6.18"), &mut v).unwrap();
        let names: Vec<&str> = v.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "eth0", "enp94s0f1np1"]);
        assert_eq!(
            rx_tx(&v[3]),
            [
                18_446_744_073_709_551_000,
                98_765_432_101,
                2,
                5,
                9_876_543_210_123,
                87_654_321_012,
                1,
                3
            ]
        );
        // A second parse with one interface fewer reuses the entries.
        let ptr = v[0].name.as_ptr();
        parse_into(include_str!("fixtures/original/net-dev"), &mut v).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].name.as_ptr(), ptr, "the name buffer is reused");
    }
}
