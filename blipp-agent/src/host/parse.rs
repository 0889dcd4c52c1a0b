//! Pure parsers of the files that describe the host: `&str` in, facts out.
//! Every one is total (unknown input gives `None` or an empty list).

/// The CPU model from `/proc/cpuinfo`: x86's `model name`, else the
/// names other architectures use (`cpu model` on MIPS, `cpu` on POWER,
/// `Processor` on old ARM). arm64 prints no model name: `None`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    const KEYS: [&str; 4] = ["model name", "cpu model", "cpu", "Processor"];
    let mut best: Option<(usize, &str)> = None;
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if let Some(rank) = KEYS.iter().position(|k| *k == key.trim()) {
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, value));
            }
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, v)| v.to_owned())
}

/// The first number after `key` at the start of a line (`btime 1716900000`
/// in /proc/stat, `MemTotal:  263873516 kB` in /proc/meminfo). The host
/// needs one key of each file, so it does not run the probes' parsers.
pub fn keyed_number(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Number of `processor` entries in `/proc/cpuinfo`.
pub fn cpuinfo_processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count()
}

/// A kernel CPU or node list (`0-3,8,10-11`), as in
/// `/sys/devices/system/cpu/online`; `None` if malformed.
pub fn id_list(text: &str) -> Option<Vec<u32>> {
    let mut ids = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Some(ids);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                // A list of more than a million CPUs is not a real kernel's.
                if b < a || b - a > 1 << 20 {
                    return None;
                }
                ids.extend(a..=b);
            }
            None => ids.push(part.parse().ok()?),
        }
    }
    Some(ids)
}

/// A value of an os-release(5) line: shell-like, optionally quoted, with
/// backslash escapes inside double quotes.
fn unquote(value: &str) -> String {
    let value = value.trim();
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The human-readable OS name from os-release(5): `PRETTY_NAME`, else
/// `NAME VERSION`, else `NAME`.
pub fn os_release(text: &str) -> Option<String> {
    let mut pretty = None;
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let slot = match key.trim() {
            "PRETTY_NAME" => &mut pretty,
            "NAME" => &mut name,
            "VERSION" => &mut version,
            _ => continue,
        };
        let value = unquote(value);
        if !value.is_empty() {
            *slot = Some(value);
        }
    }
    pretty.or_else(|| match (name, version) {
        (Some(n), Some(v)) => Some(format!("{n} {v}")),
        (n, _) => n,
    })
}

/// The interface of the default IPv4 route in `/proc/net/route`: the first
/// line with destination 0 and the gateway flag, as the original BLiPP
/// looked it up.
pub fn default_route_interface(route: &str) -> Option<String> {
    const RTF_GATEWAY: u32 = 0x2;
    route.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let (iface, dest, _gateway, flags) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        (dest == "00000000" && flags & RTF_GATEWAY != 0).then(|| iface.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_models() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            cpu_model(x86).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(cpuinfo_processors(x86), 2);
        let power = "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\nclock\t\t: 2200.000000MHz\n";
        assert_eq!(
            cpu_model(power).as_deref(),
            Some("POWER9 (architected), altivec supported")
        );
        let arm64 =
            "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n";
        assert_eq!(cpu_model(arm64), None);
        assert_eq!(cpuinfo_processors(arm64), 1);
    }

    #[test]
    fn keyed_numbers() {
        let stat = "cpu  1 2 3 4\nbtime 1716900000\nprocesses 5\n";
        assert_eq!(keyed_number(stat, "btime"), Some(1_716_900_000));
        let meminfo = "MemTotal:       263873516 kB\nMemTotalX: 1 kB\n";
        assert_eq!(keyed_number(meminfo, "MemTotal"), Some(263_873_516));
        assert_eq!(keyed_number("btimex 5\n", "btime"), None);
        assert_eq!(keyed_number("btime x\n", "btime"), None);
    }

    #[test]
    fn id_lists() {
        assert_eq!(id_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(id_list("0\n"), Some(vec![0]));
        assert_eq!(id_list("\n"), Some(vec![]));
        assert_eq!(id_list("3-1"), None);
        assert_eq!(id_list("x"), None);
    }

    #[test]
    fn os_releases() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION=\"12 (bookworm)\"\n";
        assert_eq!(
            os_release(debian).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let no_pretty = "# comment\nNAME='Some OS'\nVERSION=\"1 \\\"quoted\\\"\"\n";
        assert_eq!(
            os_release(no_pretty).as_deref(),
            Some("Some OS 1 \"quoted\"")
        );
        assert_eq!(os_release("NAME=Bare\n").as_deref(), Some("Bare"));
        assert_eq!(os_release(""), None);
    }

    #[test]
    fn default_routes() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        // A default route without the gateway flag (on-link) is not one.
        let onlink = "Iface\tDestination\tGateway\tFlags\nwg0\t00000000\t00000000\t0001\n";
        assert_eq!(default_route_interface(onlink), None);
    }

    proptest! {
        #[test]
        fn parsers_are_total(text in "\\PC*") {
            let _ = cpu_model(&text);
            let _ = cpuinfo_processors(&text);
            let _ = keyed_number(&text, "btime");
            let _ = id_list(&text);
            let _ = os_release(&text);
            let _ = default_route_interface(&text);
        }
    }
}
