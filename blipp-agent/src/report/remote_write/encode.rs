//! Samples to a remote-write request body: the protobuf `WriteRequest`,
//! snappy-compressed (block format, as the protocol wants).
//!
//! The wire format is written directly into buffers kept from request to
//! request, and each series' labels (`__name__`, its own, the external
//! ones) are encoded once, when the series is first sent: a request costs
//! a sort of its samples and a few bytes per sample, no allocation once
//! the buffers have grown. The message structs of [`super::proto`]
//! decode the result in the tests.

use prost::encoding::{encode_varint, encoded_len_varint};

use crate::report::prometheus::catalog::{Catalog, SeriesId};
use crate::sample::Sample;

/// Protobuf wire types.
const LEN: u8 = 2;
const FIXED64: u8 = 1;
const VARINT: u8 = 0;

const fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

/// One sample of a request, before encoding.
#[derive(Clone, Copy, Debug)]
struct Entry {
    series: SeriesId,
    ts_ms: i64,
    /// Its place in the input: the later of two with one series and
    /// millisecond wins.
    seq: u32,
    value: f64,
}

/// What one call of [`Encoder::encode`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Samples in the request.
    pub sent: usize,
    /// Samples with no series (event types not exported, see
    /// [`names`](crate::report::prometheus::names)).
    pub unexported: usize,
    /// Samples dropped because a later one had the same series and
    /// millisecond (Prometheus would refuse the request for it).
    pub same_instant: usize,
}

/// Encodes requests for one destination.
pub struct Encoder {
    catalog: Catalog,
    /// Labels added to every series, sorted by name.
    external: Vec<(String, String)>,
    /// Each series' encoded labels (the `labels` fields of its
    /// `TimeSeries`), by series id, made on first use.
    labels: Vec<Option<Box<[u8]>>>,
    entries: Vec<Entry>,
    proto: Vec<u8>,
    body: Vec<u8>,
    snappy: snap::raw::Encoder,
}

fn push_len_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(tag(field, LEN));
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A `Label` message as a `labels` field.
fn push_label(out: &mut Vec<u8>, name: &str, value: &str) {
    let len = 2
        + encoded_len_varint(name.len() as u64)
        + name.len()
        + encoded_len_varint(value.len() as u64)
        + value.len();
    out.push(tag(1, LEN));
    encode_varint(len as u64, out);
    push_len_field(out, 1, name.as_bytes());
    push_len_field(out, 2, value.as_bytes());
}

/// A `Sample` message's length.
fn sample_len(ts_ms: i64) -> usize {
    // value: tag and 8 bytes; timestamp: tag and varint (int64: a negative
    // one takes 10 bytes, as two's complement).
    9 + 1 + encoded_len_varint(ts_ms as u64)
}

impl Encoder {
    /// An encoder adding `external` labels (sorted by name) to every series.
    pub fn new(external: Vec<(String, String)>) -> Self {
        Self {
            catalog: Catalog::new(),
            external,
            labels: Vec::new(),
            entries: Vec::new(),
            proto: Vec::new(),
            body: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// The series mapping, for tests and status.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn series_labels(&mut self, id: SeriesId) -> &[u8] {
        let i = id as usize;
        if self.labels.len() <= i {
            self.labels.resize(i + 1, None);
        }
        if self.labels[i].is_none() {
            let series = self.catalog.series(id);
            let name = self.catalog.family(series.family).sample_name();
            let mut all: Vec<(&str, &str)> =
                Vec::with_capacity(1 + series.labels.len() + self.external.len());
            all.push(("__name__", &name));
            all.extend(series.labels.iter().map(|(n, v)| (*n, &**v)));
            for (n, v) in &self.external {
                // A series' own label wins over an external one, as in
                // Prometheus.
                if !all.iter().any(|(m, _)| m == n) {
                    all.push((n, v));
                }
            }
            all.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Vec::new();
            for (n, v) in all {
                push_label(&mut out, n, v);
            }
            self.labels[i] = Some(out.into_boxed_slice());
        }
        self.labels[i].as_deref().unwrap_or_default()
    }

    /// The compressed body of a request holding `samples`, each series'
    /// samples oldest first; valid until the next call.
    pub fn encode<'a>(&mut self, samples: impl IntoIterator<Item = &'a Sample>) -> (&[u8], Counts) {
        self.entries.clear();
        let mut unexported = 0;
        for (seq, s) in samples.into_iter().enumerate() {
            match self.catalog.lookup(s) {
                Some(l) => self.entries.push(Entry {
                    series: l.series,
                    ts_ms: i64::try_from(s.ts.0 / 1000).unwrap_or(i64::MAX),
                    seq: u32::try_from(seq).unwrap_or(u32::MAX),
                    value: l.value,
                }),
                None => unexported += 1,
            }
        }
        // By series, then time; of one series and millisecond the last
        // given comes first and is the one kept.
        self.entries
            .sort_unstable_by_key(|e| (e.series, e.ts_ms, std::cmp::Reverse(e.seq)));
        let before = self.entries.len();
        self.entries.dedup_by_key(|e| (e.series, e.ts_ms));
        let counts = Counts {
            sent: self.entries.len(),
            unexported,
            same_instant: before - self.entries.len(),
        };
        let mut proto = std::mem::take(&mut self.proto);
        proto.clear();
        let entries = std::mem::take(&mut self.entries);
        for run in entries.chunk_by(|a, b| a.series == b.series) {
            let labels = self.series_labels(run[0].series);
            let samples: usize = run
                .iter()
                .map(|e| {
                    let n = sample_len(e.ts_ms);
                    1 + encoded_len_varint(n as u64) + n
                })
                .sum();
            proto.push(tag(1, LEN));
            encode_varint((labels.len() + samples) as u64, &mut proto);
            proto.extend_from_slice(labels);
            for e in run {
                proto.push(tag(2, LEN));
                encode_varint(sample_len(e.ts_ms) as u64, &mut proto);
                proto.push(tag(1, FIXED64));
                proto.extend_from_slice(&e.value.to_le_bytes());
                proto.push(tag(2, VARINT));
                encode_varint(e.ts_ms as u64, &mut proto);
            }
        }
        self.entries = entries;
        self.body
            .resize(snap::raw::max_compress_len(proto.len()), 0);
        let n = self
            .snappy
            .compress(&proto, &mut self.body)
            .expect("the buffer holds the largest output");
        self.body.truncate(n);
        self.proto = proto;
        (&self.body, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::remote_write::proto::{Label, WriteRequest};
    use crate::sample::{Name, Source, Timestamp, Value};
    use prost::Message as _;

    fn sample(ts_us: u64, subject: &str, event: &str, value: Value) -> Sample {
        Sample::new(
            Timestamp(ts_us),
            &Name::from(subject),
            &Name::from(format!("ps:tools:blipp:linux:{event}")),
            value,
            Source::Proc,
        )
    }

    fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn series_sorted_labels_and_ordered_samples() {
        let mut e = Encoder::new(vec![
            ("device".into(), "ext".into()),
            ("host".into(), "h1".into()),
        ]);
        let samples = [
            sample(3_000_999, "disk:vda", "disk:requests:read", Value::Int(30)),
            sample(2_000_000, "node", "memory:utilization:free", Value::Int(2)),
            sample(1_000_000, "disk:vda", "disk:requests:read", Value::Int(10)),
            sample(2_000_000, "disk:vda", "disk:requests:read", Value::Int(20)),
            // Not exported: a pid per subject.
            sample(
                2_000_000,
                "process:sh:7",
                "process:exec:parent",
                Value::Int(1),
            ),
        ];
        let (body, counts) = e.encode(&samples);
        assert_eq!(
            counts,
            Counts {
                sent: 4,
                unexported: 1,
                same_instant: 0
            }
        );
        let req = decode(body);
        assert_eq!(req.timeseries.len(), 2);
        let disk = &req.timeseries[0];
        assert_eq!(
            disk.labels,
            [
                label("__name__", "blipp_disk_requests_read_total"),
                label("device", "vda"),
                label("host", "h1"),
            ]
        );
        let points: Vec<(i64, f64)> = disk
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value))
            .collect();
        assert_eq!(points, [(1000, 10.0), (2000, 20.0), (3000, 30.0)]);
        let mem = &req.timeseries[1];
        assert_eq!(
            mem.labels,
            [
                label("__name__", "blipp_memory_utilization_free_bytes"),
                label("device", "ext"),
                label("host", "h1"),
            ]
        );
        assert_eq!(mem.samples[0].value, 2048.0);
        // The same bytes as prost's own encoding of the decoded message.
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        assert_eq!(raw, req.encode_to_vec());
    }

    #[test]
    fn one_value_per_series_and_millisecond_the_last() {
        let mut e = Encoder::new(Vec::new());
        let samples = [
            sample(5_000_100, "node", "cpu:load:onemin", Value::Float(1.0)),
            sample(5_000_900, "node", "cpu:load:onemin", Value::Float(2.0)),
            sample(0, "node", "cpu:load:fivemin", Value::Float(0.0)),
        ];
        let (body, counts) = e.encode(&samples);
        assert_eq!((counts.sent, counts.same_instant), (2, 1));
        let req = decode(body);
        let load = req
            .timeseries
            .iter()
            .find(|t| t.labels[0].value == "blipp_cpu_load_onemin")
            .unwrap();
        assert_eq!(load.samples.len(), 1);
        assert_eq!(load.samples[0].value, 2.0);
        // Zeros are encoded too and read back as zeros.
        let five = req
            .timeseries
            .iter()
            .find(|t| t.labels[0].value == "blipp_cpu_load_fivemin")
            .unwrap();
        assert_eq!((five.samples[0].timestamp, five.samples[0].value), (0, 0.0));
        let (body, counts) = e.encode(&[]);
        assert_eq!(counts.sent, 0);
        assert!(decode(body).timeseries.is_empty());
    }
}
