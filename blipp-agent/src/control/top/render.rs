//! One screen of `blippcmd top`, as text: pure, so that every width can
//! be tested without a terminal.

use std::fmt::Write as _;

use super::quantities::{QUANTITIES, Quantity, Unit};
use super::sparkline::sparkline;
use crate::control::show::{ago, span};
use crate::sample::Source;
use crate::status::{Series, TopReport};

/// The time a sparkline covers.
pub const SPAN_US: u64 = 60_000_000;

/// The widest sparkline: one slot per second of [`SPAN_US`].
const MAX_SPARK: usize = 60;

/// Narrower than this, the sparkline is left out.
const MIN_SPARK: usize = 8;

/// `v` in `unit`, short: `12.3%`, `1.50 GiB`, `3.20 MiB/s`.
pub fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Fraction => format!("{:.1}%", v * 100.0),
        Unit::Kilobytes => bytes(v * 1024.0),
        Unit::BytesPerSecond => format!("{}/s", bytes(v)),
        Unit::PerSecond => format!("{}/s", number(v)),
        Unit::Plain => number(v),
        Unit::Seconds if v < 1e-3 => format!("{:.0}µs", v * 1e6),
        Unit::Seconds if v < 1.0 => format!("{:.2}ms", v * 1e3),
        Unit::Seconds => format!("{v:.2}s"),
    }
}

/// Three significant figures, without an exponent.
fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Bytes with a binary prefix.
fn bytes(v: f64) -> String {
    const PREFIXES: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = v;
    let mut i = 0;
    while scaled.abs() >= 1024.0 && i + 1 < PREFIXES.len() {
        scaled /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{scaled:.0} B")
    } else {
        format!("{} {}", number(scaled), PREFIXES[i])
    }
}

/// The points to draw: a counter's per-second rate between consecutive
/// points (none across a reset or a step back), else the values.
pub fn drawn(quantity: &Quantity, series: &Series) -> Vec<(u64, f64)> {
    if !quantity.counter {
        return series.points.iter().map(|p| (p.ts, p.value)).collect();
    }
    series
        .points
        .windows(2)
        .filter(|w| !w[1].reset && w[1].ts > w[0].ts && w[1].value >= w[0].value)
        .map(|w| {
            let seconds = (w[1].ts - w[0].ts) as f64 / 1e6;
            (w[1].ts, (w[1].value - w[0].value) / seconds)
        })
        .collect()
}

/// Cuts `line` to `width` characters.
fn fit(line: &str, width: usize) -> String {
    line.chars()
        .take(width)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Left-aligned columns two spaces apart, the last one unpadded.
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    let _ = write!(line, "{cell}{:pad$}  ", "");
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// The screen for `report` at `now_us`, every line at most `width`
/// characters: the agent, each probe's state, source and last
/// collection, then each main quantity's latest value and its last minute.
pub fn frame(report: &TopReport, now_us: u64, width: usize) -> Vec<String> {
    let status = &report.status;
    let mut lines = vec![format!(
        "blippd {} (pid {}), up {}, service {}, {} probe(s)",
        status.version,
        status.pid,
        span(status.uptime_s),
        status.service_status,
        status.probes.len()
    )];
    lines.push(String::new());
    let mut probes = vec![
        ["PROBE", "STATE", "SOURCE", "LAST", "TOOK", "ERRORS"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for p in &status.probes {
        probes.push(vec![
            p.name.clone(),
            serde_json::to_value(p.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            p.source.map_or("-", Source::as_str).to_owned(),
            ago(now_us, p.last_collection),
            p.last_duration_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:.2}ms")),
            p.errors.to_string(),
        ]);
    }
    lines.extend(table(&probes));
    lines.push(String::new());
    let mut rows = vec![
        ["QUANTITY", "SUBJECT", "PROBE", "SOURCE", "NOW"]
            .map(str::to_owned)
            .to_vec(),
    ];
    let mut drawn_points = Vec::new();
    for (order, quantity) in QUANTITIES.iter().enumerate() {
        let mut of_quantity: Vec<&Series> = report
            .series
            .iter()
            .filter(|s| s.event_type == quantity.event_type)
            .collect();
        of_quantity.sort_by(|a, b| (&a.subject, &a.probe).cmp(&(&b.subject, &b.probe)));
        for s in of_quantity {
            let points = drawn(quantity, s);
            let now = points
                .last()
                .map_or_else(|| "-".to_owned(), |&(_, v)| value(quantity.unit, v));
            rows.push(vec![
                quantity.label.to_owned(),
                s.subject.clone(),
                s.probe.clone(),
                s.source.as_str().to_owned(),
                now,
            ]);
            drawn_points.push((order, points));
        }
    }
    let mut body = table(&rows);
    if body.iter().any(|l| l.chars().count() > width) {
        // Too narrow: the probe and source go first, so that values are
        // never cut.
        for row in &mut rows {
            row.drain(2..4);
        }
        body = table(&rows);
    }
    let used = body.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let spark = width.saturating_sub(used + 2).min(MAX_SPARK);
    for (i, line) in body.into_iter().enumerate() {
        let pad = used - line.chars().count();
        if spark < MIN_SPARK {
            lines.push(line);
        } else if i == 0 {
            lines.push(format!("{line}{:pad$}  LAST 60s", ""));
        } else {
            let (_, points) = &drawn_points[i - 1];
            let bars = sparkline(points, now_us, SPAN_US, spark);
            lines.push(format!("{line}{:pad$}  {bars}", ""));
        }
    }
    if rows.len() == 1 {
        lines.push("(no main quantity collected yet)".to_owned());
    }
    lines.iter().map(|l| fit(l, width)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::status::{Point, ProbeReport, ProbeState, StatusReport};
    use serde_json::json;

    const S: u64 = 1_000_000;

    fn series(event: &str, subject: &str, points: &[(u64, f64)]) -> Series {
        Series {
            probe: event.split(':').next().unwrap_or_default().to_owned(),
            subject: subject.to_owned(),
            event_type: format!("ps:tools:blipp:linux:{event}"),
            source: Source::Proc,
            points: points
                .iter()
                .map(|&(ts, value)| Point {
                    ts,
                    value,
                    reset: false,
                })
                .collect(),
        }
    }

    fn report() -> TopReport {
        let mut cpu = ProbeReport::new("cpu", "cpu", ProbeState::Running, Mode::Auto, json!({}));
        cpu.source = Some(Source::Proc);
        cpu.last_collection = Some(99 * S);
        cpu.last_duration_ms = Some(0.25);
        let mut net = ProbeReport::new("net", "net", ProbeState::Running, Mode::Auto, json!({}));
        net.source = Some(Source::Ebpf);
        net.last_collection = Some(98 * S);
        net.last_duration_ms = Some(1.5);
        net.errors = 2;
        let cpu_user: Vec<(u64, f64)> = (40..=99).map(|i| (i * S, (i % 8) as f64 / 10.0)).collect();
        let net_in: Vec<(u64, f64)> = (40..=98).map(|i| (i * S, (i * i * 1000) as f64)).collect();
        TopReport {
            status: StatusReport {
                version: "0.1.0".into(),
                pid: 7,
                uptime_s: 75.0,
                service_status: "ON".into(),
                edits: 0,
                probes: vec![cpu, net],
                sink: None,
                refused: vec![],
                remote_write: vec![],
            },
            series: vec![
                series("network:utilization:bytes:in", "port:eth0", &net_in),
                series("cpu:utilization:user", "node", &cpu_user),
                series("memory:utilization:used", "node", &[(90 * S, 2_097_152.0)]),
            ],
        }
    }

    #[test]
    fn values_read_as_their_units() {
        assert_eq!(value(Unit::Fraction, 0.1234), "12.3%");
        assert_eq!(value(Unit::Kilobytes, 2_097_152.0), "2.00 GiB");
        assert_eq!(value(Unit::BytesPerSecond, 512.0), "512 B/s");
        assert_eq!(value(Unit::BytesPerSecond, 1_572_864.0), "1.50 MiB/s");
        assert_eq!(value(Unit::PerSecond, 123.4), "123/s");
        assert_eq!(value(Unit::Plain, 0.251), "0.25");
        assert_eq!(value(Unit::Seconds, 0.000_25), "250µs");
        assert_eq!(value(Unit::Seconds, 0.0123), "12.30ms");
    }

    #[test]
    fn counters_are_drawn_as_rates_without_resets() {
        let q = QUANTITIES
            .iter()
            .find(|q| q.event_type.ends_with("network:utilization:bytes:in"))
            .unwrap();
        let mut s = series(
            "network:utilization:bytes:in",
            "port:eth0",
            &[(S, 100.0), (3 * S, 300.0), (4 * S, 50.0), (5 * S, 150.0)],
        );
        assert_eq!(drawn(q, &s), [(3 * S, 100.0), (5 * S, 100.0)]);
        s.points[3].reset = true;
        assert_eq!(drawn(q, &s), [(3 * S, 100.0)]);
    }

    /// The quantity table is 47 columns wide here; the sparkline takes
    /// what is left after two spaces.
    const TABLE: usize = 47;

    #[test]
    fn wide_layout() {
        let lines = frame(&report(), 100 * S, 100);
        let text = lines.join("\n");
        let expected = "\
blippd 0.1.0 (pid 7), up 1m15s, service ON, 2 probe(s)

PROBE  STATE    SOURCE  LAST      TOOK    ERRORS
cpu    running  proc    1.0s ago  0.25ms  0
net    running  ebpf    2.0s ago  1.50ms  2

QUANTITY  SUBJECT    PROBE    SOURCE  NOW        LAST 60s
cpu user  node       cpu      proc    30.0%      ";
        assert!(text.starts_with(expected), "{text}");
        assert_eq!(lines.len(), 10, "{text}");
        let spark = |l: &str| l.chars().skip(TABLE + 2).collect::<String>();
        assert!(
            lines[8].starts_with("mem used  node       memory   proc    2.00 GiB "),
            "{text}"
        );
        assert!(
            lines[9].starts_with("net in    port:eth0  network  proc    190 KiB/s  "),
            "{text}"
        );
        // cpu fills the minute (values cycle through 8 levels, one a
        // second), memory has one point 10 s ago, the counter's rate
        // rises steadily from its second point on.
        let cpu = spark(lines[7].as_str());
        assert_eq!(cpu.chars().count(), 100 - TABLE - 2, "{text}");
        assert!(cpu.chars().all(|c| "▁▂▃▄▅▆▇█".contains(c)), "{cpu:?}");
        assert_eq!(spark(lines[8].as_str()).trim(), "▁", "{text}");
        let net = spark(lines[9].as_str());
        assert!(
            net.ends_with('█') && net.trim_start().starts_with('▁'),
            "{net:?}"
        );
        let levels: Vec<char> = net.trim().chars().collect();
        assert!(levels.windows(2).all(|w| w[0] <= w[1]), "{net:?}");
    }

    #[test]
    fn layouts_at_several_widths() {
        let r = report();
        // Half a second after the last cpu point, each slot of a
        // 60-slot line holds one of its 60 points.
        for width in [20, 40, 56, 57, 80, 132, 300] {
            let lines = frame(&r, 99 * S + S / 2, width);
            assert_eq!(lines.len(), 10, "{width}");
            for l in &lines {
                assert!(l.chars().count() <= width, "{width}: {l:?}");
            }
            let spark = lines[7].chars().filter(|c| "▁▂▃▄▅▆▇█".contains(*c)).count();
            // Narrower than the table, PROBE and SOURCE are left out (30
            // columns).
            let table = if width >= TABLE { TABLE } else { 30 };
            let expected = match width.saturating_sub(table) {
                ..10 => 0,
                left => (left - 2).min(MAX_SPARK),
            };
            assert_eq!(spark, expected, "{width}: {lines:?}");
        }
        let narrow = frame(&r, 100 * S, 40);
        assert_eq!(narrow[6], "QUANTITY  SUBJECT    NOW        LAST 60s");
        assert!(
            narrow[7].starts_with("cpu user  node       30.0%      "),
            "{narrow:?}"
        );
        assert_eq!(frame(&r, 100 * S, 20)[7], "cpu user  node");
    }

    #[test]
    fn nothing_collected_yet_says_so() {
        let mut r = report();
        r.series.clear();
        let lines = frame(&r, 100 * S, 80);
        assert_eq!(lines.last().unwrap(), "(no main quantity collected yet)");
    }
}
