//! The /proc variant: /proc/net/dev and /proc/net/snmp.

use super::{EventTypes, Options};
use crate::config::ProbeConfig;
use crate::counter::{Bound, Counter, Observed, Width};
use crate::probe::track::Tracked;
use crate::probe::{BuildContext, Probe, ProbeError};
use crate::sample::{Name, Sample, Source, Timestamp, Value};
use crate::source::procfs::netdev::{self, NetDev};
use crate::source::procfs::snmp::{self, Snmp};
use crate::source::read::KernelFile;

/// Far above any link (1.6 Tbit/s), for telling wraps from resets.
const BYTES: Bound = Bound::new(2e11, 1 << 20);
/// Far above any packet rate (300 M/s, 64-byte frames at 150 Gbit/s).
const PACKETS: Bound = Bound::new(3e8, 1 << 16);

/// Reads one counter of an interface.
type DevCounter = fn(&NetDev) -> u64;

/// The counters of /proc/net/dev blipp reads, and how fast each can move.
const DEV_COUNTERS: usize = 8;
const COUNTERS: [(DevCounter, Bound); DEV_COUNTERS] = [
    (|d| d.rx_bytes, BYTES),
    (|d| d.tx_bytes, BYTES),
    (|d| d.rx_packets, PACKETS),
    (|d| d.tx_packets, PACKETS),
    (|d| d.rx_errors, PACKETS),
    (|d| d.tx_errors, PACKETS),
    (|d| d.rx_dropped, PACKETS),
    (|d| d.tx_dropped, PACKETS),
];

/// Each port quantity of [`super::PORT_QUANTITIES`] as the counters (by
/// index into `COUNTERS`) it adds up.
const PORT_SOURCES: [&[usize]; super::PORT_QUANTITIES.len()] = [
    &[0],
    &[1],
    &[2],
    &[3],
    &[4, 5],
    &[6, 7],
    &[4],
    &[5],
    &[6],
    &[7],
];

/// The snmp counters, in the order of [`super::NODE_QUANTITIES`].
const SNMP: [fn(&Snmp) -> Option<u64>; super::NODE_QUANTITIES.len()] = [
    |s| s.tcp_in_segs,
    |s| s.tcp_out_segs,
    |s| s.tcp_retrans_segs,
    |s| s.udp_in_datagrams,
    |s| s.udp_out_datagrams,
];

#[derive(Default)]
struct Port {
    counters: [Counter; DEV_COUNTERS],
}

struct NetProbe {
    dev_file: KernelFile,
    snmp_file: KernelFile,
    devs: Vec<NetDev>,
    only: Option<Vec<String>>,
    ports: Tracked<Port>,
    node_counters: [Counter; SNMP.len()],
    /// Width of the kernel's `unsigned long`, the width of these counters.
    width: Width,
    last_ts: Option<Timestamp>,
    node: Name,
    types: EventTypes,
}

/// The /proc variant as a probe.
pub(super) fn build(
    config: &ProbeConfig,
    options: &Options,
    ctx: &BuildContext<'_>,
) -> Box<dyn Probe> {
    Box::new(NetProbe {
        dev_file: KernelFile::new(&config.proc_dir, "net/dev"),
        snmp_file: KernelFile::new(&config.proc_dir, "net/snmp"),
        devs: Vec::new(),
        only: options.interfaces.clone(),
        ports: Tracked::default(),
        node_counters: Default::default(),
        width: Width::kernel_ulong(),
        last_ts: None,
        node: ctx.node.clone(),
        types: EventTypes::new(),
    })
}

impl NetProbe {
    fn collect_dev(
        &mut self,
        ts: Timestamp,
        seconds: Option<f64>,
        out: &mut Vec<Sample>,
    ) -> Result<(), ProbeError> {
        let devs = &mut self.devs;
        self.dev_file.parse(|text| netdev::parse_into(text, devs))?;
        self.ports.begin();
        let mut position = 0;
        for dev in &self.devs {
            if self
                .only
                .as_ref()
                .is_some_and(|only| !only.contains(&dev.name))
            {
                continue;
            }
            let (subject, port, _) = self.ports.get(position, &dev.name, |name| {
                Name::from(format!("port:{name}"))
            });
            position += 1;
            let mut observed = [Observed::default(); DEV_COUNTERS];
            for ((counter, (get, bound)), o) in
                port.counters.iter_mut().zip(COUNTERS).zip(&mut observed)
            {
                *o = counter.observe(get(dev), self.width, bound, seconds);
            }
            for (event_type, sources) in self.types.port.iter().zip(PORT_SOURCES) {
                let value = sources
                    .iter()
                    .try_fold(0u64, |sum, &i| sum.checked_add(COUNTERS[i].0(dev)));
                let Some(value) = value else { continue };
                let reset = sources.iter().any(|&i| observed[i].is_reset());
                out.push(
                    Sample::new(ts, subject, event_type, Value::Int(value), Source::Proc)
                        .with_reset(reset),
                );
            }
        }
        Ok(())
    }

    fn collect_snmp(
        &mut self,
        ts: Timestamp,
        seconds: Option<f64>,
        out: &mut Vec<Sample>,
    ) -> Result<(), ProbeError> {
        let s = self.snmp_file.parse(snmp::parse)?;
        for ((event_type, get), counter) in self
            .types
            .node
            .iter()
            .zip(SNMP)
            .zip(&mut self.node_counters)
        {
            let Some(value) = get(&s) else { continue };
            let reset = counter
                .observe(value, self.width, PACKETS, seconds)
                .is_reset();
            out.push(
                Sample::new(ts, &self.node, event_type, Value::Int(value), Source::Proc)
                    .with_reset(reset),
            );
        }
        Ok(())
    }
}

impl Probe for NetProbe {
    fn collect(&mut self, ts: Timestamp, out: &mut Vec<Sample>) -> Result<(), ProbeError> {
        let seconds = self.last_ts.map(|last| ts.seconds_since(last));
        self.last_ts = Some(ts);
        // One missing file does not cost the other's samples.
        let dev = self.collect_dev(ts, seconds, out);
        let snmp = self.collect_snmp(ts, seconds, out);
        dev.and(snmp)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::probe::testing::{self, find, int};

    const DEV: &str = include_str!("../../source/procfs/fixtures/original/net-dev");
    const SNMP: &str = include_str!("../../source/procfs/fixtures/original/net-snmp");
    const ET: &str = "ps:tools:blipp:linux:network:";

    /// The original BLiPP's test_net.py: test_get_dev_data and
    /// test_get_snmp_data.
    #[test]
    fn original_blipp_vectors() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(dir.path(), &[("net/dev", DEV), ("net/snmp", SNMP)]);
        let mut probe = testing::build("net", &json!({}), dir.path());
        let s = testing::collect(&mut *probe, 0.0);
        let port = |subject: &str, q: &str| int(&s, subject, &format!("{ET}{q}"));
        let expected = [
            (
                "port:eth0",
                [12_267_757, 30_458_998, 166_430, 143_263, 0, 0],
            ),
            ("port:lo", [16_437_577, 16_437_577, 120_248, 120_248, 0, 0]),
            ("port:pan0", [0, 0, 0, 0, 0, 0]),
            (
                "port:wlan0",
                [5_029_574_829, 887_097_774, 7_333_434, 4_036_590, 0, 0],
            ),
        ];
        for (subject, want) in expected {
            let got = [
                "utilization:bytes:in",
                "utilization:bytes:out",
                "ip:utilization:packets:in",
                "ip:utilization:packets:out",
                "ip:utilization:errors",
                "ip:utilization:drops",
            ]
            .map(|q| port(subject, q));
            assert_eq!(got, want, "{subject}");
        }
        let node = |q: &str| int(&s, "node", &format!("{ET}{q}"));
        assert_eq!(
            [
                "tcp:utilization:segments:in",
                "tcp:utilization:segments:out",
                "tcp:utilization:retrans",
                "udp:utilization:datagrams:in",
                "udp:utilization:datagrams:out",
            ]
            .map(node),
            [4_660_605, 3_841_483, 20_035, 509_585, 374_940]
        );
        assert_eq!(
            s.len(),
            4 * 10 + 5,
            "ten quantities per port, five per node"
        );
        assert!(s.iter().all(|s| !s.reset));
    }

    #[test]
    fn old_kernel_per_direction_errors_and_drops() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tree(
            dir.path(),
            &[
                (
                    "net/dev",
                    include_str!("../../source/procfs/fixtures/netdev-2.6.18"),
                ),
                (
                    "net/snmp",
                    include_str!("../../source/procfs/fixtures/snmp-2.6.9"),
                ),
            ],
        );
        let mut probe = testing::build("net", &json!({"interfaces": ["eth0"]}), dir.path());
        let s = testing::collect(&mut *probe, 0.0);
        let q = |q: &str| int(&s, "port:eth0", &format!("{ET}{q}"));
        assert_eq!(q("ip:utilization:errors"), 12 + 3);
        assert_eq!(q("ip:utilization:drops"), 4 + 7);
        assert_eq!(
            ["errors:in", "errors:out", "drops:in", "drops:out"]
                .map(|d| q(&format!("ip:utilization:{d}"))),
            [12, 3, 4, 7]
        );
        assert!(
            find(&s, "port:lo", &format!("{ET}utilization:bytes:in")).is_none(),
            "only eth0"
        );
        assert_eq!(
            int(&s, "node", &format!("{ET}udp:utilization:datagrams:out")),
            82_665
        );
    }

    #[test]
    fn recreated_interface_is_a_reset_and_wraps_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let header = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";
        let write = |rx_bytes: u64, rx_packets: u64| {
            let dev =
                format!("{header}  eth0: {rx_bytes} {rx_packets} 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n");
            testing::write_tree(dir.path(), &[("net/dev", &dev), ("net/snmp", SNMP)]);
        };
        write(5_000_000, 4000);
        let mut probe = testing::build("net", &json!({}), dir.path());
        let reset = |s: &[crate::sample::Sample], q: &str| {
            find(s, "port:eth0", &format!("{ET}{q}")).unwrap().reset
        };
        testing::collect(&mut *probe, 0.0);
        // The interface was deleted and created again: counters from zero.
        write(1000, 2);
        let s = testing::collect(&mut *probe, 5.0);
        assert!(reset(&s, "utilization:bytes:in") && reset(&s, "ip:utilization:packets:in"));
        assert!(
            !reset(&s, "utilization:bytes:out"),
            "unchanged counters are not reset"
        );
        write(2000, 3);
        let s = testing::collect(&mut *probe, 10.0);
        assert!(
            !reset(&s, "utilization:bytes:in"),
            "counting again from the new base"
        );
        if crate::counter::Width::kernel_ulong() == crate::counter::Width::Bits64 {
            // A 64-bit counter near its end wrapping to a small value is a
            // wrap, not a reset.
            write(u64::MAX - 10, 4);
            testing::collect(&mut *probe, 15.0);
            write(100, 5);
            let s = testing::collect(&mut *probe, 20.0);
            assert!(!reset(&s, "utilization:bytes:in"));
        }
    }
}
