//! The hop list `traceroute` (Linux traceroute 2.x, Debian's `traceroute`)
//! or `tracepath` (iputils) prints, as hops with the address and round-trip
//! time of each answer. Pure: text in, hops out.
//!
//! ```text
//! traceroute to 10.9.0.1 (10.9.0.1), 30 hops max, 60 byte packets
//!  1  10.1.0.2 (10.1.0.2)  0.034 ms 10.2.0.2 (10.2.0.2)  0.014 ms *
//!  2  * * *
//!  3  10.9.0.1 (10.9.0.1)  0.011 ms  0.008 ms !H
//! ```
//!
//! `*` is a probe nobody answered; an address (or `name (address)`)
//! applies to the times after it up to the next address; `!H` and the
//! like annotate the answer before them. tracepath prints one line per
//! answer (`1:  10.1.0.2  0.063ms`, `1:  no reply`, `2:  10.9.0.1  0.023ms
//! reached`), the same hop number again for the next answer.

/// One answer to a probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Who answered; `None` where the program printed none (tracepath's
    /// `???`).
    pub address: Option<String>,
    /// Round-trip time, milliseconds.
    pub rtt_ms: f64,
}

/// One hop of the path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hop {
    /// Its number (the TTL of its probes), from 1.
    pub number: u32,
    /// The answers, in the order printed.
    pub replies: Vec<Reply>,
    /// Probes nobody answered.
    pub lost: u32,
}

impl Hop {
    /// The distinct addresses that answered, in the order they first did.
    pub fn addresses(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for a in self.replies.iter().filter_map(|r| r.address.as_deref()) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// The shortest round-trip time, milliseconds.
    pub fn min_rtt_ms(&self) -> Option<f64> {
        self.replies.iter().map(|r| r.rtt_ms).reduce(f64::min)
    }
}

/// The parsed output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Path {
    /// Every hop printed, by number.
    pub hops: Vec<Hop>,
    /// Whether the destination answered: its address answered at the last
    /// hop (traceroute, whose first line names it), or tracepath said
    /// `reached`.
    pub reached: bool,
}

/// Parses `text`; lines that are neither a hop nor traceroute's first line
/// are skipped, so that nothing but hops can come out of them.
pub fn parse(text: &str) -> Path {
    let mut path = Path::default();
    let mut destination = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("traceroute to ") {
            destination = rest
                .split_once(" (")
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(a, _)| a.to_owned());
            continue;
        }
        let trimmed = line.trim_start();
        let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(number) = trimmed[..digits].parse::<u32>() else {
            continue;
        };
        let rest = &trimmed[digits..];
        let hop = if let Some(answer) = rest.strip_prefix(':') {
            tracepath_line(number, answer, &mut path.reached)
        } else if rest.starts_with('?') {
            // tracepath's `1?: [LOCALHOST] pmtu 1500`: not a hop.
            continue;
        } else if rest.starts_with(char::is_whitespace) {
            traceroute_line(number, rest)
        } else {
            continue;
        };
        match path.hops.iter_mut().find(|h| h.number == number) {
            Some(h) => {
                h.replies.extend(hop.replies);
                h.lost += hop.lost;
            }
            None => path.hops.push(hop),
        }
    }
    path.hops.sort_by_key(|h| h.number);
    if let (Some(dest), Some(last)) = (destination, path.hops.last()) {
        path.reached |= last
            .replies
            .iter()
            .any(|r| r.address.as_deref() == Some(&dest));
    }
    path
}

/// `1  10.1.0.2 (10.1.0.2)  0.034 ms !H 10.2.0.2  0.014 ms *`.
fn traceroute_line(number: u32, rest: &str) -> Hop {
    let mut hop = Hop {
        number,
        ..Hop::default()
    };
    let mut address: Option<String> = None;
    let mut words = rest.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if word == "*" {
            hop.lost += 1;
        } else if words.peek() == Some(&"ms") {
            words.next();
            if let Some(rtt) = word.parse::<f64>().ok().filter(|v| v.is_finite()) {
                hop.replies.push(Reply {
                    address: address.clone(),
                    rtt_ms: rtt,
                });
            }
        } else if let Some(inner) = word.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
            // `name (address)`: the address replaces the name.
            address = Some(inner.to_owned());
        } else if !word.starts_with(['!', '<']) {
            // An address (or a name, until its address follows).
            address = Some(word.to_owned());
        }
    }
    hop
}

/// `  10.1.0.2  0.063ms reached`, `  no reply`, `  ???  0.058ms !H`.
fn tracepath_line(number: u32, answer: &str, reached: &mut bool) -> Hop {
    let mut hop = Hop {
        number,
        ..Hop::default()
    };
    let words: Vec<&str> = answer.split_whitespace().collect();
    if words.first() == Some(&"no") && words.get(1) == Some(&"reply") {
        hop.lost = 1;
        return hop;
    }
    let rtt = words.iter().find_map(|w| {
        w.strip_suffix("ms")
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    });
    let (Some(first), Some(rtt_ms)) = (words.first(), rtt) else {
        return hop;
    };
    let address = (*first != "???").then(|| (*first).to_owned());
    hop.replies.push(Reply { address, rtt_ms });
    *reached |= words.contains(&"reached");
    hop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Path {
        let path = format!(
            "{}/src/source/fixtures/traceroute/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read_to_string(&path).unwrap())
    }

    /// Each hop as (number, distinct addresses, min rtt, lost).
    fn summary(p: &Path) -> Vec<(u32, Vec<&str>, Option<f64>, u32)> {
        p.hops
            .iter()
            .map(|h| (h.number, h.addresses(), h.min_rtt_ms(), h.lost))
            .collect()
    }

    #[test]
    fn loopback() {
        for (name, address, rtt) in [
            ("loopback", "127.0.0.1", 0.005),
            ("loopback-names", "127.0.0.1", 0.006),
            ("loopback-ipv6", "::1", 0.007),
        ] {
            let p = fixture(name);
            assert_eq!(summary(&p), [(1, vec![address], Some(rtt), 0)], "{name}");
            assert!(p.reached, "{name}");
            assert_eq!(p.hops[0].replies.len(), 3, "{name}");
        }
    }

    #[test]
    fn several_addresses_per_hop() {
        let p = fixture("multipath-silent-hop");
        assert_eq!(
            summary(&p),
            [
                (1, vec!["10.1.0.2", "10.2.0.2"], Some(0.006), 0),
                (2, vec![], None, 4),
                (3, vec!["10.9.0.1"], Some(0.008), 2),
            ]
        );
        assert!(p.reached);
        // Each time belongs to the address printed before it.
        let one: Vec<_> = p.hops[0]
            .replies
            .iter()
            .map(|r| (r.address.as_deref().unwrap(), r.rtt_ms))
            .collect();
        assert_eq!(
            one,
            [
                ("10.1.0.2", 0.034),
                ("10.2.0.2", 0.014),
                ("10.1.0.2", 0.006),
                ("10.1.0.2", 0.006)
            ]
        );
        let p = fixture("multipath-lost");
        assert_eq!(
            summary(&p),
            [
                (1, vec!["10.2.0.2", "10.1.0.2"], Some(0.017), 2),
                (2, vec!["10.9.0.1"], Some(0.013), 2),
            ]
        );
    }

    #[test]
    fn silent_hops_and_annotations() {
        let p = fixture("silent-router");
        assert_eq!(
            summary(&p),
            [(1, vec![], None, 3), (2, vec!["10.9.0.1"], Some(0.012), 1)]
        );
        assert!(p.reached);
        // `!H`: the router said the host is unreachable; its answer
        // counts, the destination was not reached.
        let p = fixture("unreachable");
        assert_eq!(summary(&p), [(1, vec!["10.2.0.2"], Some(0.005), 0)]);
        assert!(!p.reached);
    }

    #[test]
    fn ipv6() {
        let p = fixture("ipv6-two-hops");
        assert_eq!(
            summary(&p),
            [
                (1, vec!["fd01::2"], Some(0.007), 0),
                (2, vec!["fd03::2"], Some(0.008), 0)
            ]
        );
        assert!(p.reached);
        let p = fixture("ipv6-names-lost");
        assert_eq!(p.hops.len(), 7);
        assert!(
            p.hops[1..6]
                .iter()
                .all(|h| h.replies.is_empty() && h.lost == 3)
        );
        assert_eq!(p.hops[6].addresses(), ["fd03::2"]);
        assert_eq!(p.hops[6].lost, 1);
        assert!(p.reached);
    }

    #[test]
    fn tracepath() {
        let p = fixture("tracepath-multipath");
        assert_eq!(
            summary(&p),
            [
                (1, vec!["10.1.0.2", "10.2.0.2"], Some(0.024), 0),
                (2, vec!["10.9.0.1"], Some(0.023), 0)
            ]
        );
        assert!(p.reached);
        let p = fixture("tracepath-ipv6");
        assert_eq!(
            summary(&p),
            [
                (1, vec!["fd01::2"], Some(0.013), 0),
                (2, vec!["fd03::2"], Some(0.079), 0)
            ]
        );
        let p = fixture("tracepath-no-reply");
        assert_eq!(
            summary(&p),
            [(1, vec![], None, 1), (2, vec!["10.9.0.1"], Some(0.085), 0)]
        );
        assert!(p.reached);
        // `???`: an answer without an address.
        let p = fixture("tracepath-unreachable");
        assert_eq!(summary(&p), [(1, vec![], Some(0.027), 0)]);
        assert_eq!(p.hops[0].replies.len(), 2);
        assert!(!p.reached);
    }

    #[test]
    fn anything_else_gives_no_hop() {
        for text in [
            "",
            "traceroute: unknown host nowhere.invalid",
            "connect: Network is unreachable\n",
            "x1  10.0.0.1  1 ms",
            "12abc",
        ] {
            assert_eq!(parse(text), Path::default(), "{text:?}");
        }
    }
}
