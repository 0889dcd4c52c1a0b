//! Destinations of samples.

use std::io::{self, Write};
use std::ops::Range;

use crate::sample::{Name, Sample, Timestamp, Value};

/// Samples as JSON lines (one object per line) on any writer.
pub struct JsonLines<W: Write> {
    out: W,
    /// The batch being encoded, reused from batch to batch.
    buf: Vec<u8>,
    /// The start of the last line encoded in full, which the lines after
    /// it with the same time and subject copy.
    head: Option<Head>,
}

/// `{"ts":..,"subject":..,"eventType":` of one line in the buffer.
struct Head {
    ts: Timestamp,
    subject: Name,
    bytes: Range<usize>,
}

impl<W: Write> JsonLines<W> {
    /// Wraps `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(16 * 1024),
            head: None,
        }
    }

    /// Encodes `samples` after those waiting for [`write_pending`](Self::write_pending):
    /// the batches that arrive together are written with one system call.
    ///
    /// A probe writes a subject's samples one after the other with one
    /// time, so most lines start as the one before: copying that start
    /// spares printing the time and checking the subject for bytes to
    /// escape, which were a third of the encoding's instructions.
    pub fn append(&mut self, samples: &[Sample]) {
        for s in samples {
            match &self.head {
                Some(h) if h.ts == s.ts && *h.subject == *s.subject => {
                    self.buf.extend_from_within(h.bytes.clone());
                }
                _ => {
                    let start = self.buf.len();
                    push_head(&mut self.buf, s);
                    self.head = Some(Head {
                        ts: s.ts,
                        subject: s.subject.clone(),
                        bytes: start..self.buf.len(),
                    });
                }
            }
            push_tail(&mut self.buf, s);
        }
    }

    /// Writes what [`append`](Self::append) encoded, if anything, and
    /// flushes. Nothing stays pending, even when the write fails.
    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.out.write_all(&self.buf);
        self.buf.clear();
        self.head = None;
        written?;
        self.out.flush()
    }

    /// Adds already encoded lines (the original's line format).
    pub fn append_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.head = None;
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Appends `sample` as one JSON object and a newline: byte for byte what
/// `serde_json` prints for it (a test holds the two together). Written by
/// hand because serde_json's byte-by-byte escaping of every subject and
/// event type was the largest part of blippd's own instructions at a 1 s
/// interval, while names almost never hold a byte that needs escaping.
pub fn json_line(out: &mut Vec<u8>, sample: &Sample) {
    push_head(out, sample);
    push_tail(out, sample);
}

/// The line up to the event type's value.
fn push_head(out: &mut Vec<u8>, sample: &Sample) {
    out.extend_from_slice(b"{\"ts\":");
    push_number(out, sample.ts.0);
    out.extend_from_slice(b",\"subject\":");
    push_str(out, &sample.subject);
    out.extend_from_slice(b",\"eventType\":");
}

/// The rest of the line after [`push_head`].
fn push_tail(out: &mut Vec<u8>, sample: &Sample) {
    push_str(out, &sample.event_type);
    out.extend_from_slice(b",\"value\":");
    match &sample.value {
        Value::Int(v) => push_number(out, *v),
        // serde_json's float format (and `null` for NaN and infinities).
        Value::Float(v) => push_number(out, *v),
        Value::Text(t) => push_str(out, t),
    }
    out.extend_from_slice(b",\"source\":\"");
    out.extend_from_slice(sample.source.as_str().as_bytes());
    out.extend_from_slice(if sample.reset {
        b"\",\"reset\":true}\n"
    } else {
        b"\"}\n"
    });
}

fn push_number(out: &mut Vec<u8>, n: impl serde::Serialize) {
    serde_json::to_writer(out, &n).expect("a number always serializes into a Vec");
}

/// A JSON string: copied as it is unless a byte needs escaping (JSON
/// escapes only control characters, `"` and `\\`).
fn push_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(out, s).expect("a string always serializes into a Vec");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether any byte of `s` is below 0x20, `"` or `\\`: eight bytes at a
/// time with the classic word tricks ("has a zero byte", "has a byte less
/// than n", exact as to whether any byte matches), because this runs twice
/// for every sample blippd prints.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let less_than = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let zero_byte = |x: u64| less_than(x, 1);
    let mut words = s.chunks_exact(8);
    let mut found = 0;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        found |= less_than(x, 0x20)
            | zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')));
    }
    found != 0
        || words
            .remainder()
            .iter()
            .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends one line of the original BLiPP's data file format to `out`:
/// `ts=<µs> event=<event type> mid=<mid> value=<value>`, as its
/// `data_logger` wrote once the MS had the samples; for a probe that
/// reports to no MS, `subject=<subject>` stands where `mid=` would.
/// Spaces and control characters in names become `_`, so that a line
/// stays `key=value` words.
pub fn original_line(
    out: &mut String,
    ts: u64,
    event: &str,
    mid: Option<&str>,
    subject: Option<&str>,
    value: &str,
) {
    use std::fmt::Write as _;
    let word = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    let _ = write!(out, "ts={ts} event={}", word(event));
    if let Some(mid) = mid {
        let _ = write!(out, " mid={}", word(mid));
    }
    if let Some(subject) = subject {
        let _ = write!(out, " subject={}", word(subject));
    }
    let _ = writeln!(out, " value={}", word(value));
}

/// A value as the original's line format prints it.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Source;
    use proptest::prelude::*;

    /// A writer that keeps what it is given, call by call.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_object_per_line_and_one_write_per_round() {
        let mut sink = JsonLines::new(Calls::default());
        let s = |ts| {
            Sample::new(
                Timestamp(ts),
                &Name::from("node"),
                &Name::from("e"),
                Value::Float(0.5),
                Source::Ebpf,
            )
        };
        sink.append(&[s(5), s(6)]);
        sink.append(&[s(7)]);
        sink.write_pending().unwrap();
        // Nothing pending: no empty write.
        sink.write_pending().unwrap();
        assert_eq!(sink.out.0.len(), 1, "two batches, one write");
        let text = String::from_utf8(sink.out.0.concat()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["source"], "ebpf");
        assert_eq!(
            lines
                .iter()
                .map(|l| l["ts"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [5, 6, 7]
        );
        sink.append(&[s(8)]);
        sink.write_pending().unwrap();
        assert_eq!(sink.out.0.len(), 2);
        assert!(sink.out.0[1].starts_with(b"{\"ts\":8,"));
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            Just(Value::Float(f64::NAN)),
            Just(Value::Float(f64::INFINITY)),
            Just(Value::Float(-0.0)),
            ".*".prop_map(|t| Value::Text(Name::from(t))),
        ]
    }

    proptest! {
        #[test]
        fn same_bytes_as_serde_json(
            ts in any::<u64>(),
            subject in ".*",
            event_type in "(ps:tools:blipp:linux:[a-z:]{0,40})|.*",
            value in value(),
            source in prop_oneof![
                Just(Source::Ebpf),
                Just(Source::Proc),
                Just(Source::Command),
                Just(Source::Log),
            ],
            reset in any::<bool>(),
        ) {
            let sample = Sample::new(
                Timestamp(ts),
                &Name::from(subject),
                &Name::from(event_type),
                value,
                source,
            )
            .with_reset(reset);
            let mut ours = Vec::new();
            json_line(&mut ours, &sample);
            let mut theirs = serde_json::to_vec(&sample).unwrap();
            theirs.push(b'\n');
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    proptest! {
        /// Lines that copy the start of an earlier one are the lines
        /// `json_line` prints, batch after batch, with writes between some
        /// (which empty the buffer the copies come from).
        #[test]
        fn copied_starts_change_no_byte(
            rounds in proptest::collection::vec(
                proptest::collection::vec(
                    (0u64..3, 0usize..4, "[a-z]{0,3}", any::<u64>()),
                    0..12,
                ),
                1..6,
            ),
            writes in proptest::collection::vec(any::<bool>(), 6),
        ) {
            // Few times and subjects, so that runs and repeats after a
            // write are common; one subject needs escaping, two are equal
            // in text but not in allocation.
            let subjects = [
                Name::from("node"),
                Name::from("disk:v\"da"),
                Name::from("node"),
                Name::from("port:eth0"),
            ];
            let mut sink = JsonLines::new(Calls::default());
            let mut expected = Vec::new();
            for (round, write) in rounds.iter().zip(&writes) {
                let batch: Vec<Sample> = round
                    .iter()
                    .map(|(ts, subject, event_type, v)| {
                        Sample::new(
                            Timestamp(1_700_000_000_000_000 + ts),
                            &subjects[*subject],
                            &Name::from(event_type.as_str()),
                            Value::Int(*v),
                            Source::Proc,
                        )
                    })
                    .collect();
                sink.append(&batch);
                for sample in &batch {
                    json_line(&mut expected, sample);
                }
                if *write {
                    sink.write_pending().unwrap();
                }
            }
            sink.write_pending().unwrap();
            prop_assert_eq!(
                String::from_utf8(sink.out.0.concat()).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    proptest! {
        /// Against the byte-at-a-time definition, with the bytes that
        /// matter over-represented at every position of a word.
        #[test]
        fn escape_check_is_exact(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x21, 0x1fu8..=0xff, any::<u8>()],
                0..40,
            )
        ) {
            let slow = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(needs_escape(&bytes), slow);
        }
    }

    #[test]
    fn names_that_need_escaping_are_escaped() {
        let mut out = Vec::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, br#""a\"b\\c\nd\u0001""#);
    }
}
