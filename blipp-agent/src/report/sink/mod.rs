//! Destinations of samples.

use std::io::{self, Write};

use crate::sample::{Sample, Value};

/// Samples as JSON lines (one object per line) on any writer.
pub struct JsonLines<W: Write> {
    out: W,
    /// The batch being encoded, reused from batch to batch.
    buf: Vec<u8>,
}

impl<W: Write> JsonLines<W> {
    /// Wraps `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Encodes `samples` after those waiting for [`write_pending`](Self::write_pending):
    /// the batches that arrive together are written with one system call.
    pub fn append(&mut self, samples: &[Sample]) {
        for s in samples {
            json_line(&mut self.buf, s);
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
        written?;
        self.out.flush()
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
    out.extend_from_slice(b"{\"ts\":");
    push_number(out, sample.ts.0);
    out.extend_from_slice(b",\"subject\":");
    push_str(out, &sample.subject);
    out.extend_from_slice(b",\"eventType\":");
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
    out.push(b'"');
    if sample.reset {
        out.extend_from_slice(b",\"reset\":true");
    }
    out.extend_from_slice(b"}\n");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Name, Source, Timestamp};
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
            ebpf in any::<bool>(),
            reset in any::<bool>(),
        ) {
            let sample = Sample::new(
                Timestamp(ts),
                &Name::from(subject),
                &Name::from(event_type),
                value,
                if ebpf { Source::Ebpf } else { Source::Proc },
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
