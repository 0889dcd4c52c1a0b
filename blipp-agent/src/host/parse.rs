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
            let _ = os_release(&text);
            let _ = default_route_interface(&text);
        }
    }
}
