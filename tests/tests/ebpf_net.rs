//! The network programs on this host's kernel: traffic of known size over
//! a veth pair between two namespaces made by the test; the per-interface
//! packet and byte counts agree with /proc/net/dev, packets dropped for
//! want of a socket are counted against the interface they came in on, and
//! TCP connection events are counted.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
#![allow(clippy::print_stderr, reason = "the figures are printed for the log")]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

use blipp::source::ebpf::KernelAccess;
use blipp::source::ebpf::net::{InterfaceMaps, TcpMaps, ifindex};
use blipp_common::net::TcpCount;
use blipp_tests::netns::NetNs;
use blipp_tests::require_root;

/// The /proc/net/dev counters of `dev` in the calling thread's namespace:
/// (rx bytes, rx packets, tx bytes, tx packets).
fn netdev_of(dev: &str) -> (u64, u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    let line = text
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(n, _)| n.trim() == dev))
        .unwrap_or_else(|| panic!("{dev} not in /proc/net/dev"));
    let v: Vec<u64> = line
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    (v[0], v[1], v[8], v[9])
}

fn within(ebpf: u64, proc: u64) -> bool {
    (ebpf as f64 - proc as f64).abs() <= proc as f64 * 0.02
}

#[test]
fn veth_traffic_matches_proc_net_dev() {
    if !require_root("loading eBPF programs and making network namespaces") {
        return;
    }
    // Two namespaces joined by a veth pair: va (10.213.7.1) in a, vb
    // (10.213.7.2) in b.
    let a = NetNs::new("ebpf-a").unwrap();
    let b = NetNs::new("ebpf-b").unwrap();
    a.ip(&[
        "link",
        "add",
        "va",
        "type",
        "veth",
        "peer",
        "name",
        "vb",
        "netns",
        b.name(),
    ])
    .unwrap();
    for (ns, dev, addr) in [(&a, "va", "10.213.7.1/24"), (&b, "vb", "10.213.7.2/24")] {
        ns.ip(&["addr", "add", addr, "dev", dev]).unwrap();
        ns.ip(&["link", "set", dev, "up"]).unwrap();
    }
    let b_addr = std::net::Ipv4Addr::new(10, 213, 7, 2);
    std::thread::scope(|scope| {
        // The receiving side: a UDP sink and a TCP server in namespace b.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = scope.spawn(|| b.run(move || serve(b_addr, &ready_tx)).unwrap());
        ready_rx.recv().unwrap();
        // The measuring side, in namespace a: the programs count the
        // namespace of the thread that loads them.
        a.run(|| measure(b_addr, server)).unwrap();
    });
}

/// Receives a TCP stream and UDP datagrams; returns their sizes.
fn serve(b_addr: std::net::Ipv4Addr, ready: &std::sync::mpsc::Sender<()>) -> (usize, usize) {
    {
        let udp = UdpSocket::bind((b_addr, 9000)).unwrap();
        udp.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let tcp = TcpListener::bind((b_addr, 9001)).unwrap();
        ready.send(()).unwrap();
        let (mut conn, _) = tcp.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0usize;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        conn.write_all(b"done").unwrap();
        let mut datagrams = 0;
        while udp.recv(&mut buf).is_ok() {
            datagrams += 1;
        }
        // To a port nobody listens on in namespace a: each is dropped
        // there, with va as its device.
        for _ in 0..UNWANTED {
            udp.send_to(&buf[..100], (A_ADDR, 9002)).unwrap();
        }
        (got, datagrams)
    }
}

/// The address of va, in namespace a.
const A_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 213, 7, 1);

/// Datagrams namespace b sends to a closed port in namespace a.
const UNWANTED: u64 = 300;

/// Sends known traffic from namespace a and compares the programs' counts
/// with /proc/net/dev.
fn measure(b_addr: std::net::Ipv4Addr, server: std::thread::ScopedJoinHandle<'_, (usize, usize)>) {
    let mut access = KernelAccess::open(false);
    let kernel = access.get().expect("the eBPF object loads as root");
    let mut maps = InterfaceMaps::attach(kernel).expect("interface programs attach");
    let mut tcp = TcpMaps::attach(kernel).expect("TCP programs attach");
    let va = ifindex("va").expect("va exists in namespace a");
    maps.refresh(&[va]).unwrap();
    let before = maps.totals(va);
    let before_proc = netdev_of("va");
    let tcp_before = tcp.read().unwrap();

    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let payload = [0x5au8; 1000];
    for _ in 0..2000 {
        udp.send_to(&payload, SocketAddr::from((b_addr, 9000)))
            .unwrap();
    }
    let mut conn = TcpStream::connect((b_addr, 9001)).unwrap();
    let block = vec![0xa5u8; 1 << 16];
    for _ in 0..64 {
        conn.write_all(&block).unwrap();
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"done");
    drop(conn);
    let (tcp_bytes, datagrams) = server.join().unwrap();
    assert_eq!(tcp_bytes, 64 << 16, "the server got the whole stream");
    // The sink reads only after the stream, so its socket buffer overflowed
    // (drops in namespace b, which the programs here do not count).
    assert!(datagrams > 0, "the sink got datagrams");

    // The unwanted datagrams are dropped in softirq, soon after b sent
    // them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let drops = loop {
        maps.refresh(&[va]).unwrap();
        let drops = maps.totals(va).drops().packets - before.drops().packets;
        if drops >= UNWANTED || std::time::Instant::now() > deadline {
            break drops;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    eprintln!("va: {drops} packets dropped, {UNWANTED} sent to a closed port");
    assert!(
        (UNWANTED..2 * UNWANTED).contains(&drops),
        "{drops} drops counted on va for {UNWANTED} datagrams to a closed port"
    );
    let after = maps.totals(va);
    let after_proc = netdev_of("va");
    let (rx_b, rx_p, tx_b, tx_p) = (
        after_proc.0 - before_proc.0,
        after_proc.1 - before_proc.1,
        after_proc.2 - before_proc.2,
        after_proc.3 - before_proc.3,
    );
    let d = |a: u64, b: u64| a - b;
    let (erx_b, erx_p, etx_b, etx_p) = (
        d(after.rx().bytes, before.rx().bytes),
        d(after.rx().packets, before.rx().packets),
        d(after.tx().bytes, before.tx().bytes),
        d(after.tx().packets, before.tx().packets),
    );
    eprintln!(
        "va: eBPF rx {erx_p} pkts {erx_b} B, tx {etx_p} pkts {etx_b} B; \
         /proc/net/dev rx {rx_p} pkts {rx_b} B, tx {tx_p} pkts {tx_b} B"
    );
    assert!(
        tx_b > 2000 * 1000 + (64 << 16),
        "the traffic left through va"
    );
    assert!(within(etx_p, tx_p), "tx packets {etx_p} vs {tx_p}");
    assert!(within(etx_b, tx_b), "tx bytes {etx_b} vs {tx_b}");
    assert!(within(erx_p, rx_p), "rx packets {erx_p} vs {rx_p}");
    assert!(within(erx_b, rx_b), "rx bytes {erx_b} vs {rx_b}");

    let tcp_after = tcp.read().unwrap();
    let delta = |c: TcpCount| tcp_after[c as usize] - tcp_before[c as usize];
    eprintln!(
        "tcp: active {}, passive {}, closed {}",
        delta(TcpCount::EstablishedActive),
        delta(TcpCount::EstablishedPassive),
        delta(TcpCount::Closed)
    );
    assert_eq!(delta(TcpCount::EstablishedActive), 1, "our connect");
    // The server's side lives in namespace b: not counted here.
    assert_eq!(delta(TcpCount::EstablishedPassive), 0);
}
