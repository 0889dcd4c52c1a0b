//! The output of a Nagios / Monitoring Plugins check, as the plugin
//! development guidelines define it: a first line of text, optionally
//! `| perfdata`, then optional long-text lines, the first of which holding
//! a `|` starts more performance data that runs to the end:
//!
//! ```text
//! DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
//! / 15272 MB (77%);
//! /boot 68 MB (69%); | /boot=68MB;88;93;0;98
//! /home=69357MB;253404;253409;0;253414
//! ```
//!
//! Each performance datum is `'label'=value[UOM];[warn];[crit];[min];[max]`.
//! A label with spaces or `=` is single-quoted, a quote inside doubled
//! (`'it''s'`). The value is a number, or `U` when the plugin could not
//! determine it. Units are normalised here so that one plugin's `ms` and
//! another's `s` agree: `s`, `ms`, `us` -> seconds; `B`, `KB`, `MB`, `GB`,
//! `TB` (any case) -> bytes, at 1024 per step (as the Monitoring Plugins
//! compute them); `%` and `c` (a continuous counter) and no unit stay as
//! printed; any other unit is kept as printed and named in
//! [`Unit::Other`]. Warning and critical ranges are kept as text.
//!
//! The parser never fails as a whole: a datum that does not parse is
//! listed in [`Perfdata::malformed`] and the others are kept.

/// What a unit means for the value.
#[derive(Clone, Debug, PartialEq)]
pub enum Unit {
    /// No unit: a plain number.
    None,
    /// Seconds (after normalising `ms`, `us`).
    Seconds,
    /// A percentage, 0..100 as printed.
    Percent,
    /// Bytes (after normalising `KB`..`TB`).
    Bytes,
    /// A continuous counter (`c`).
    Counter,
    /// A unit outside the guidelines, kept as printed.
    Other(String),
}

/// One performance datum.
#[derive(Clone, Debug, PartialEq)]
pub struct Datum {
    /// The label, unquoted.
    pub label: String,
    /// The value in the normalised unit; `None` for `U` (undetermined).
    pub value: Option<f64>,
    /// The value was printed as a whole number (digits and a sign only).
    pub integral: bool,
    /// The unit after normalisation.
    pub unit: Unit,
    /// Warning range, as printed.
    pub warn: Option<String>,
    /// Critical range, as printed.
    pub crit: Option<String>,
    /// Minimum, normalised like the value.
    pub min: Option<f64>,
    /// Maximum, normalised like the value.
    pub max: Option<f64>,
}

/// The parsed output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Perfdata {
    /// The first line's text (before `|`), trimmed.
    pub summary: String,
    /// The performance data, in order.
    pub data: Vec<Datum>,
    /// Data that did not parse, as printed.
    pub malformed: Vec<String>,
}

/// Splits `value[UOM]` into the number and the unit text.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E' | ',')))
        .map_or(text.len(), |(i, _)| i);
    // An exponent letter directly followed by a unit (`5e` alone, `1MB`)
    // belongs to the unit: back off until the number parses.
    let mut end = end;
    while end > 0 && text[..end].replace(',', ".").parse::<f64>().is_err() {
        end -= 1;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
    }
    (&text[..end], &text[end..])
}

/// The unit of `uom` and the factor to the normalised unit.
pub fn unit(uom: &str) -> (Unit, f64) {
    match uom {
        "" => (Unit::None, 1.0),
        "s" => (Unit::Seconds, 1.0),
        "ms" => (Unit::Seconds, 1e-3),
        "us" => (Unit::Seconds, 1e-6),
        "%" => (Unit::Percent, 1.0),
        "c" => (Unit::Counter, 1.0),
        other => match other.to_ascii_uppercase().as_str() {
            "B" => (Unit::Bytes, 1.0),
            "KB" => (Unit::Bytes, 1024.0),
            "MB" => (Unit::Bytes, 1024.0 * 1024.0),
            "GB" => (Unit::Bytes, 1024.0 * 1024.0 * 1024.0),
            "TB" => (Unit::Bytes, 1024.0 * 1024.0 * 1024.0 * 1024.0),
            _ => (Unit::Other(other.to_owned()), 1.0),
        },
    }
}

/// A number as plugins print it (a decimal comma from a non-C locale too).
fn real(text: &str) -> Option<f64> {
    let text = text.trim();
    let v = if text.contains(',') {
        text.replace(',', ".").parse::<f64>().ok()?
    } else {
        text.parse::<f64>().ok()?
    };
    v.is_finite().then_some(v)
}

fn datum(label: String, rest: &str) -> Option<Datum> {
    let mut fields = rest.split(';');
    let first = fields.next().unwrap_or_default();
    let (value, integral, unit_text) = if first == "U" {
        (None, false, "")
    } else {
        let (number, unit_text) = split_number(first);
        let integral = number
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+');
        (Some(real(number)?), integral, unit_text)
    };
    let (unit, factor) = unit(unit_text);
    let text = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (warn, crit) = (text(fields.next()), text(fields.next()));
    let mut bound = || -> Option<Option<f64>> {
        match fields.next().map(str::trim) {
            None | Some("") => Some(None),
            Some(s) => real(s).map(|v| Some(v * factor)),
        }
    };
    let (min, max) = (bound()?, bound()?);
    Some(Datum {
        label,
        value: value.map(|v| v * factor),
        integral,
        unit,
        warn,
        crit,
        min,
        max,
    })
}

/// Parses the performance data text (everything after the `|`s).
fn parse_data(text: &str, into: &mut Perfdata) {
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let (label, after) = if let Some(quoted) = rest.strip_prefix('\'') {
            // Up to the first single quote that is not doubled.
            let mut label = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if quoted[i + 1..].starts_with('\'') {
                        label.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    label.push(c);
                }
            }
            match end {
                Some(end) => (Some(label), &quoted[end..]),
                None => (None, ""),
            }
        } else {
            let end = rest
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(rest.len());
            (Some(rest[..end].to_owned()), &rest[end..])
        };
        let token_end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (token, next) = after.split_at(token_end);
        let parsed = match (label, token.strip_prefix('=')) {
            (Some(label), Some(value)) if !label.is_empty() => datum(label, value),
            _ => None,
        };
        match parsed {
            Some(d) => into.data.push(d),
            None => {
                let consumed = start.len() - next.len();
                into.malformed.push(start[..consumed].to_owned());
            }
        }
        rest = next.trim_start();
    }
}

/// Parses a plugin's standard output.
pub fn parse(output: &str) -> Perfdata {
    let mut parsed = Perfdata::default();
    let mut lines = output.lines();
    let first = lines.next().unwrap_or_default();
    let (summary, perf) = first.split_once('|').unwrap_or((first, ""));
    parsed.summary = summary.trim().to_owned();
    parse_data(perf, &mut parsed);
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            parse_data(line, &mut parsed);
        } else if let Some((_, perf)) = line.split_once('|') {
            in_perf = true;
            parse_data(perf, &mut parsed);
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/source/fixtures/nagios/");
        std::fs::read_to_string(format!("{path}{name}")).unwrap()
    }

    fn get<'a>(p: &'a Perfdata, label: &str) -> &'a Datum {
        p.data
            .iter()
            .find(|d| d.label == label)
            .unwrap_or_else(|| panic!("{label}: {p:?}"))
    }

    #[test]
    fn check_load() {
        let p = parse(&fixture("check_load"));
        assert_eq!(
            p.summary,
            "LOAD CRITICAL - total load average: 10.92, 9.81, 8.35"
        );
        assert_eq!(p.data.len(), 3);
        assert_eq!(
            *get(&p, "load1"),
            Datum {
                label: "load1".to_owned(),
                value: Some(10.92),
                integral: false,
                unit: Unit::None,
                warn: Some("5.000".to_owned()),
                crit: Some("10.000".to_owned()),
                min: Some(0.0),
                max: None,
            }
        );
        assert_eq!(get(&p, "load15").value, Some(8.35));
        assert!(p.malformed.is_empty());
    }

    #[test]
    fn guidelines_multi_line_disk_example() {
        let p = parse(&fixture("guidelines_disk"));
        assert_eq!(p.summary, "DISK OK - free space: / 3326 MB (56%);");
        let labels: Vec<&str> = p.data.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);
        let root = get(&p, "/");
        assert_eq!(root.value, Some(2643.0 * 1024.0 * 1024.0));
        assert_eq!(root.unit, Unit::Bytes);
        assert_eq!(root.max, Some(5968.0 * 1024.0 * 1024.0));
        assert_eq!(get(&p, "/var/log").value, Some(818.0 * 1024.0 * 1024.0));
        assert!(p.malformed.is_empty(), "{:?}", p.malformed);
    }

    #[test]
    fn units_quotes_and_undetermined() {
        let p = parse(&fixture("units"));
        assert_eq!(get(&p, "time").value, Some(0.0125));
        assert_eq!(get(&p, "time").unit, Unit::Seconds);
        assert_eq!(get(&p, "tiny").value, Some(250e-6));
        assert_eq!(get(&p, "size").value, Some(2048.0));
        assert_eq!(get(&p, "size").min, Some(0.0));
        assert_eq!(get(&p, "pct").value, Some(99.5));
        assert_eq!(get(&p, "pct").unit, Unit::Percent);
        assert_eq!(get(&p, "packets").unit, Unit::Counter);
        assert_eq!(get(&p, "packets").value, Some(123_456_789.0));
        assert!(get(&p, "packets").integral && get(&p, "size").integral);
        assert!(!get(&p, "pct").integral && !get(&p, "exp").integral);
        assert_eq!(
            get(&p, "used space").value,
            Some(1.5 * 1024.0 * 1024.0 * 1024.0 * 1024.0)
        );
        assert_eq!(get(&p, "it's=odd").value, Some(3.0));
        assert_eq!(get(&p, "undetermined").value, None);
        assert_eq!(get(&p, "rate").unit, Unit::Other("Mbps".to_owned()));
        assert_eq!(get(&p, "rate").value, Some(940.0));
        assert_eq!(get(&p, "neg").value, Some(-3.5));
        assert_eq!(get(&p, "exp").value, Some(1.5e-7));
        assert_eq!(get(&p, "comma").value, Some(0.25));
        assert_eq!(get(&p, "ranges").warn.as_deref(), Some("@10:20"));
        assert_eq!(get(&p, "ranges").crit.as_deref(), Some("~:30"));
        assert_eq!(p.malformed, ["novalue", "=5", "bad=abc;1", "'open=1 2"]);
    }

    #[test]
    fn no_perfdata() {
        let p = parse("OK - all good\nmore text\n");
        assert_eq!(p.summary, "OK - all good");
        assert!(p.data.is_empty() && p.malformed.is_empty());
        assert_eq!(parse(""), Perfdata::default());
    }

    proptest! {
        #[test]
        fn never_panics(output in "(?s).{0,200}") {
            let _ = parse(&output);
        }

        #[test]
        fn never_panics_on_perfdata_like_text(output in "[a-z' =;0-9.U%cBKMs|\\n-]{0,120}") {
            let _ = parse(&output);
        }

        #[test]
        fn written_data_reads_back(items in proptest::collection::vec(("[a-z][a-z _']{0,8}", -1e6f64..1e6, 0usize..4), 1..6)) {
            let units = ["", "s", "%", "c"];
            let text: Vec<String> = items
                .iter()
                .map(|(label, v, u)| format!("'{}'={v}{};1;2;0;", label.replace('\'', "''"), units[*u]))
                .collect();
            let p = parse(&format!("OK | {}", text.join(" ")));
            prop_assert!(p.malformed.is_empty(), "{:?}", p.malformed);
            prop_assert_eq!(p.data.len(), items.len());
            for (d, (label, v, _)) in p.data.iter().zip(&items) {
                prop_assert_eq!(&d.label, label);
                prop_assert_eq!(d.value, Some(*v));
            }
        }
    }
}
