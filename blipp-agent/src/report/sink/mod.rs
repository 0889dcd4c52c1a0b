//! Destinations of samples.

use std::io::{self, BufWriter, Write};

use crate::sample::Sample;

/// Samples as JSON lines (one object per line) on any writer.
pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> JsonLines<W> {
    /// Wraps `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::new(out),
        }
    }

    /// Writes every sample and flushes, so that a reader sees whole batches
    /// as soon as they are reported.
    pub fn write_batch(&mut self, samples: &[Sample]) -> io::Result<()> {
        for s in samples {
            serde_json::to_writer(&mut self.out, s)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Name, Source, Timestamp, Value};

    #[test]
    fn one_object_per_line() {
        let mut sink = JsonLines::new(Vec::new());
        let s = Sample::new(
            Timestamp(5),
            &Name::from("node"),
            &Name::from("e"),
            Value::Float(0.5),
            Source::Ebpf,
        );
        sink.write_batch(&[s.clone(), s]).unwrap();
        let text = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["source"], "ebpf");
        assert_eq!(lines[1]["ts"], 5);
    }
}
