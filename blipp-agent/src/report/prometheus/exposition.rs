//! The Prometheus text format 0.0.4 and OpenMetrics 1.0, written straight
//! from the store into one buffer: per family a HELP and a TYPE line, then
//! a line per series, each with the instant its value was collected.
//!
//! A sample carries its collection time because that is when it was
//! measured: with a scrape interval shorter than a probe's, Prometheus
//! stores each collection once, at its own instant, and `rate()` divides by
//! the real interval.

use std::io::Write as _;

use super::names::{Family, Kind};
use super::store::View;

/// The exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it names
    /// it with a quality at least that of the text format (or of `*/*`
    /// when it names no text format), else the text format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut open_metrics: Option<f32> = None;
        let mut text: Option<f32> = None;
        for range in accept.split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version = None;
            for p in params {
                if let Some((k, v)) = p.split_once('=') {
                    match k.trim() {
                        "q" => q = v.trim().parse().unwrap_or(0.0),
                        "version" => version = Some(v.trim().to_owned()),
                        _ => {}
                    }
                }
            }
            let best = |slot: &mut Option<f32>| *slot = Some(slot.map_or(q, |b| b.max(q)));
            match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v.starts_with("1.")) =>
                {
                    best(&mut open_metrics);
                }
                "text/plain" | "text/*" | "*/*" => best(&mut text),
                _ => {}
            }
        }
        match open_metrics {
            Some(om) if om > 0.0 && om >= text.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

/// blippd's version, the build-info metric's label.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn escape_help(out: &mut Vec<u8>, text: &str, format: Format) {
    for c in text.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '"' if format == Format::OpenMetrics => out.extend_from_slice(b"\\\""),
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A sample's time: milliseconds in the text format, seconds in
/// OpenMetrics.
fn write_ts(out: &mut Vec<u8>, micros: u64, format: Format) {
    match format {
        Format::Text => {
            let _ = write!(out, " {}", micros / 1000);
        }
        Format::OpenMetrics => {
            let _ = write!(
                out,
                " {}.{:03}",
                micros / 1_000_000,
                micros % 1_000_000 / 1000
            );
        }
    }
}

/// The HELP, TYPE (and UNIT) lines of a family named `name`.
fn header(
    out: &mut Vec<u8>,
    name: &str,
    kind: &str,
    unit: Option<&str>,
    help: &str,
    format: Format,
) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    escape_help(out, help, format);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    // OpenMetrics wants the unit as the name's suffix; where the unit is
    // a word inside the name (`blipp_network_utilization_bytes_in`), the
    // family has no UNIT line.
    if let (Format::OpenMetrics, Some(u)) = (format, unit)
        && name.strip_suffix(u).is_some_and(|n| n.ends_with('_'))
    {
        out.extend_from_slice(b"# UNIT ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(u.as_bytes());
        out.push(b'\n');
    }
}

fn family(out: &mut Vec<u8>, view: &View<'_>, id: u32, f: &Family, format: Format) {
    let mut series = view.series(id).peekable();
    if series.peek().is_none() {
        return;
    }
    let counter = f.kind == Kind::Counter;
    // The text format names a counter's family by its samples' name.
    let suffix: &[u8] = if counter { b"_total" } else { b"" };
    match format {
        Format::Text if counter => {
            let mut name = String::with_capacity(f.name.len() + 6);
            name.push_str(&f.name);
            name.push_str("_total");
            header(out, &name, f.kind.as_str(), None, f.help, format);
        }
        _ => header(out, &f.name, f.kind.as_str(), f.unit.word(), f.help, format),
    }
    for (sid, point) in series {
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(suffix);
        out.extend_from_slice(view.catalog().series(sid).text.as_bytes());
        out.push(b' ');
        write_value(out, point.value);
        write_ts(out, point.ts.0, format);
        out.push(b'\n');
    }
}

/// blippd's own: its build, and each probe's last successful collection.
fn health(out: &mut Vec<u8>, view: &View<'_>, format: Format) {
    match format {
        Format::Text => header(out, "blipp_build_info", "gauge", None, BUILD_HELP, format),
        Format::OpenMetrics => header(out, "blipp_build", "info", None, BUILD_HELP, format),
    }
    let _ = writeln!(out, "blipp_build_info{{version=\"{VERSION}\"}} 1");
    let mut probes = view
        .probes()
        .filter(|(_, running, at)| *running && at.is_some())
        .peekable();
    if probes.peek().is_none() {
        return;
    }
    header(
        out,
        "blipp_probe_last_success_timestamp_seconds",
        "gauge",
        Some("seconds"),
        "When the probe's last successful collection was, Unix time.",
        format,
    );
    for (name, _, at) in probes {
        out.extend_from_slice(b"blipp_probe_last_success_timestamp_seconds{probe=\"");
        let mut escaped = String::new();
        super::catalog::escape_label_value(&mut escaped, name);
        out.extend_from_slice(escaped.as_bytes());
        out.extend_from_slice(b"\"} ");
        let micros = at.map_or(0, |t| t.0);
        let _ = write!(out, "{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        out.push(b'\n');
    }
}

const BUILD_HELP: &str = "blippd's version (the value is 1).";

/// Appends the exposition of everything the store serves to `out`.
pub fn encode(view: &View<'_>, format: Format, out: &mut Vec<u8>) {
    for (id, f) in view.catalog().families().iter().enumerate() {
        family(out, view, id as u32, f, format);
    }
    health(out, view, format);
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::prometheus::store::Store;
    use crate::sample::{Name, Sample, Source, Timestamp, Value};

    fn store() -> Store {
        let store = Store::default();
        let p = store.register("disk");
        let s = |subject: &str, et: &str, v| {
            Sample::new(
                Timestamp(1_700_000_000_123_456),
                &Name::from(subject),
                &Name::from(et),
                v,
                Source::Ebpf,
            )
        };
        p.collected(
            Timestamp(1_700_000_000_123_456),
            &[
                s(
                    "disk:vda",
                    "ps:tools:blipp:linux:disk:requests:read",
                    Value::Int(12),
                ),
                s(
                    "disk:vda",
                    "ps:tools:blipp:linux:disk:latency:read:device:p99",
                    Value::Float(500.0),
                ),
                s(
                    "disk:vda",
                    "ps:tools:blipp:linux:disk:latency:read:device:max",
                    Value::Float(1000.0),
                ),
                s(
                    "disk:vda",
                    "ps:tools:blipp:linux:disk:utilization:busy",
                    Value::Float(0.25),
                ),
            ],
            true,
        );
        // The probe runs on: its series stay served.
        std::mem::forget(p);
        store
    }

    fn text(format: Format) -> String {
        let mut out = Vec::new();
        store().read(|v| encode(&v, format, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_format() {
        let t = text(Format::Text);
        let expected = "\
# HELP blipp_disk_requests_read_total Requests completed.
# TYPE blipp_disk_requests_read_total counter
blipp_disk_requests_read_total{device=\"vda\"} 12 1700000000123
# HELP blipp_disk_latency_read_device_seconds Request latency over the interval (eBPF): total, queue (creation to issue) or device (issue to completion).
# TYPE blipp_disk_latency_read_device_seconds summary
blipp_disk_latency_read_device_seconds{device=\"vda\",quantile=\"0.99\"} 0.0005 1700000000123
blipp_disk_latency_read_device_seconds{device=\"vda\",quantile=\"1\"} 0.001 1700000000123
# HELP blipp_disk_utilization_busy Fraction of the interval with I/O in flight, 0..1.
# TYPE blipp_disk_utilization_busy gauge
blipp_disk_utilization_busy{device=\"vda\"} 0.25 1700000000123
# HELP blipp_build_info blippd's version (the value is 1).
# TYPE blipp_build_info gauge
blipp_build_info{version=\"0.1.0\"} 1
# HELP blipp_probe_last_success_timestamp_seconds When the probe's last successful collection was, Unix time.
# TYPE blipp_probe_last_success_timestamp_seconds gauge
blipp_probe_last_success_timestamp_seconds{probe=\"disk\"} 1700000000.123456
";
        assert_eq!(t, expected);
    }

    #[test]
    fn open_metrics() {
        let t = text(Format::OpenMetrics);
        assert!(
            t.contains("# TYPE blipp_disk_requests_read counter\n"),
            "{t}"
        );
        assert!(t.contains("blipp_disk_requests_read_total{device=\"vda\"} 12 1700000000.123\n"));
        assert!(t.contains("# UNIT blipp_disk_latency_read_device_seconds seconds\n"));
        assert!(!t.contains("# UNIT blipp_disk_requests"));
        assert!(t.contains("# TYPE blipp_build info\nblipp_build_info{version="));
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=0.0.1")),
            Format::Text
        );
    }
}
