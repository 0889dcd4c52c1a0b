//! How blippcmd prints the control socket's answers for a person (`--json`
//! prints them as they came).

use std::fmt::Write;

use serde_json::Value;

use super::protocol::Changes;
use crate::sample::Source;
use crate::status::{ProbeReport, StatusReport};

/// `1h02m`, `3m05s`, `42s`, `0.4s`.
pub(crate) fn span(seconds: f64) -> String {
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) if h < 48 => format!("{h}h{m:02}m"),
        (h, _, _) => format!("{}d{:02}h", h / 24, h % 24),
    }
}

pub(crate) fn ago(now_us: u64, then_us: Option<u64>) -> String {
    then_us.map_or_else(
        || "-".to_owned(),
        |t| format!("{} ago", span(now_us.saturating_sub(t) as f64 / 1e6)),
    )
}

/// `simple 5s`, `onetime`, `random 1-10s`: the schedule's name without
/// its prefix, and its main parameters.
fn schedule(p: &ProbeReport) -> String {
    let name = p
        .schedule
        .get("collection_schedule")
        .and_then(Value::as_str)
        .unwrap_or("builtins.simple");
    let name = name.rsplit('.').next().unwrap_or(name);
    let params = p.schedule.get("schedule_params");
    let num = |k: &str| {
        params
            .and_then(|v| v.get(k))
            .and_then(Value::as_f64)
            .map(|n| format!("{n}"))
    };
    match (num("every"), num("low"), num("high")) {
        (Some(every), _, _) => format!("{name} {every}s"),
        (None, low, Some(high)) => format!("{name} {}-{high}s", low.unwrap_or_else(|| "0".into())),
        _ => name.to_owned(),
    }
}

/// The status as a table, `now_us` being the time it is printed.
pub fn status(report: &StatusReport, now_us: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "blippd {} (pid {}), up {}, service {}, {} edit(s) in effect",
        report.version,
        report.pid,
        span(report.uptime_s),
        report.service_status,
        report.edits
    );
    let header = [
        "PROBE", "MODULE", "STATE", "SOURCE", "SCHEDULE", "RUNS", "ERRORS", "SAMPLES", "LAST",
        "TOOK",
    ];
    let rows: Vec<[String; 10]> = report
        .probes
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.module.clone(),
                serde_json::to_value(p.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                p.source.map_or("-", Source::as_str).to_owned(),
                schedule(p),
                p.collections.to_string(),
                p.errors.to_string(),
                p.samples.to_string(),
                ago(now_us, p.last_collection),
                p.last_duration_ms
                    .map_or_else(|| "-".into(), |ms| format!("{ms:.2}ms")),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    for p in &report.probes {
        match (&p.last_error, p.next_attempt) {
            (Some(e), Some(next)) => {
                let _ = writeln!(
                    out,
                    "{}: not built ({} attempt(s)), trying again in {}: {e}",
                    p.name,
                    p.attempts,
                    span(next.saturating_sub(now_us) as f64 / 1e6)
                );
            }
            (Some(e), None) if p.last_error_at.is_none() => {
                let _ = writeln!(out, "{}: not built: {e}", p.name);
            }
            (Some(e), None) => {
                let _ = writeln!(
                    out,
                    "{}: last error {}: {e}",
                    p.name,
                    ago(now_us, p.last_error_at)
                );
            }
            (None, _) => {}
        }
    }
    if let Some(s) = &report.sink {
        let _ = writeln!(
            out,
            "UNIS {}: {}, UNIS answered {}, MS delivery {}, {} sample(s) pending, {} spooled",
            s.unis_url,
            if s.registered {
                "registered"
            } else {
                "not registered"
            },
            ago(now_us, s.unis_ok_at),
            ago(now_us, s.delivered_at),
            s.pending_samples,
            s.spooled_samples
        );
        if let Some(e) = &s.last_error {
            let _ = writeln!(out, "UNIS/MS last error: {e}");
        }
    }
    for w in &report.remote_write {
        let _ = writeln!(
            out,
            "remote write {}: {} sample(s) sent ({} request(s)), last {}, {} refused, {} failure(s), {} pending, {} B spooled",
            w.url,
            w.sent_samples,
            w.requests,
            ago(now_us, w.delivered_at),
            w.refused_samples,
            w.failures,
            w.pending_samples,
            w.spooled_bytes
        );
        if let Some(e) = &w.last_error {
            let _ = writeln!(out, "remote write {} last error: {e}", w.url);
        }
    }
    if !report.refused.is_empty() {
        let _ = writeln!(
            out,
            "REFUSED by the local trust policy ({}), the rest applies:",
            report.refused.len()
        );
        for r in &report.refused {
            let _ = writeln!(out, "  {r}");
        }
    }
    out
}

/// What a change did, one line per kind; `ok` when nothing moved.
pub fn changes(c: &Changes) -> String {
    let mut out = String::new();
    for (what, names) in [
        ("started", &c.started),
        ("stopped", &c.stopped),
        ("restarted", &c.restarted),
    ] {
        if !names.is_empty() {
            let _ = writeln!(out, "{what}: {}", names.join(", "));
        }
    }
    for f in &c.failed {
        let _ = writeln!(out, "not started: {}: {}", f.probe, f.error);
    }
    if let Some(n) = &c.note {
        let _ = writeln!(out, "{n}");
    }
    if out.is_empty() {
        out.push_str("ok: no probe changed\n");
    }
    out
}

/// A sample from `tail` as one JSON line with its fields in blippd's
/// order (`ts`, `subject`, `eventType`, `value`, `source`, `reset`), as
/// blippd prints samples.
pub fn sample_line(sample: &Value) -> String {
    const ORDER: [&str; 6] = ["ts", "subject", "eventType", "value", "source", "reset"];
    let Value::Object(m) = sample else {
        return sample.to_string();
    };
    let known = ORDER.iter().filter_map(|k| m.get(*k).map(|v| (*k, v)));
    let rest = m
        .iter()
        .filter(|(k, _)| !ORDER.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v));
    let fields: Vec<String> = known
        .chain(rest)
        .map(|(k, v)| format!("{}:{v}", Value::String(k.to_owned())))
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::config::policy::Refusal;
    use crate::status::ProbeState;
    use serde_json::json;

    #[test]
    fn spans() {
        assert_eq!(span(0.42), "0.4s");
        assert_eq!(span(42.0), "42s");
        assert_eq!(span(185.0), "3m05s");
        assert_eq!(span(3720.0), "1h02m");
        assert_eq!(span(200_000.0), "2d07h");
    }

    #[test]
    fn status_table() {
        let mut cpu = ProbeReport::new(
            "cpu",
            "cpu",
            ProbeState::Running,
            Mode::Auto,
            json!({"collection_schedule": "builtins.simple", "schedule_params": {"every": 5}}),
        );
        cpu.source = Some(Source::Proc);
        cpu.collections = 12;
        cpu.samples = 144;
        cpu.last_collection = Some(9_000_000);
        cpu.last_duration_ms = Some(0.314);
        let mut disk = ProbeReport::new("disk", "disk", ProbeState::Off, Mode::Auto, json!({}));
        disk.last_error = Some("boom".into());
        disk.last_error_at = Some(5_000_000);
        let mut ping = ProbeReport::new("ping", "cmd", ProbeState::Failed, Mode::Auto, json!({}));
        ping.last_error = Some("f.json: /p: \"(\" is invalid: a regex".into());
        let mut numa =
            ProbeReport::new("numa", "numa", ProbeState::Retrying, Mode::Auto, json!({}));
        numa.last_error = Some("reading online: denied".into());
        numa.attempts = 3;
        numa.next_attempt = Some(14_000_000);
        let r = StatusReport {
            version: "0.1.0".into(),
            pid: 7,
            uptime_s: 75.0,
            service_status: "ON".into(),
            edits: 1,
            probes: vec![cpu, disk, ping, numa],
            sink: None,
            refused: vec![Refusal::new(
                "UNIS service s1",
                "/properties/configurations/probes/pwn",
                &json!(["/usr/bin/touch", "/tmp/PWNED"]),
                "trust.programs of the local file does not list /usr/bin/touch",
            )],
            remote_write: vec![],
        };
        let text = status(&r, 10_000_000);
        assert_eq!(
            text,
            "blippd 0.1.0 (pid 7), up 1m15s, service ON, 1 edit(s) in effect\n\
             PROBE  MODULE  STATE     SOURCE  SCHEDULE   RUNS  ERRORS  SAMPLES  LAST      TOOK\n\
             cpu    cpu     running   proc    simple 5s  12    0       144      1.0s ago  0.31ms\n\
             disk   disk    off       -       simple     0     0       0        -         -\n\
             ping   cmd     failed    -       simple     0     0       0        -         -\n\
             numa   numa    retrying  -       simple     0     0       0        -         -\n\
             disk: last error 5.0s ago: boom\n\
             ping: not built: f.json: /p: \"(\" is invalid: a regex\n\
             numa: not built (3 attempt(s)), trying again in 4.0s: reading online: denied\n\
             REFUSED by the local trust policy (1), the rest applies:\n  \
             UNIS service s1: /properties/configurations/probes/pwn: [\"/usr/bin/touch\",\"/tmp/PWNED\"] refused: \
             trust.programs of the local file does not list /usr/bin/touch\n"
        );
    }

    #[test]
    fn sample_lines_keep_blippds_order() {
        let v =
            json!({"value": 2.5, "eventType": "e", "ts": 1, "subject": "node", "source": "proc"});
        assert_eq!(
            sample_line(&v),
            r#"{"ts":1,"subject":"node","eventType":"e","value":2.5,"source":"proc"}"#
        );
    }

    #[test]
    fn changes_lines() {
        let c = Changes {
            restarted: vec!["cpu".into()],
            ..Changes::default()
        };
        assert_eq!(changes(&c), "restarted: cpu\n");
        assert_eq!(changes(&Changes::default()), "ok: no probe changed\n");
    }
}
