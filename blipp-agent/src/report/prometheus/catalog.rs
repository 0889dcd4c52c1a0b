//! The families and series seen so far, so that a sample finds its series
//! (family, labels, their encoded text) with two hash lookups and no
//! allocation: [`names`](super::names) runs once per event type, the
//! labels are built once per series.

use std::collections::HashMap;

use super::names::{self, Family, Kind, Mapped};
use crate::sample::{Name, Sample, Value};

/// Index of a family in a [`Catalog`].
pub type FamilyId = u32;

/// Index of a series in a [`Catalog`].
pub type SeriesId = u32;

/// At most this many series: a configuration whose subjects or texts
/// change without end (a command printing a new subject every time) stops
/// adding series there instead of growing without bound.
pub const MAX_SERIES: usize = 65_536;

/// One series: its family and labels.
#[derive(Debug)]
pub struct Series {
    /// Its family.
    pub family: FamilyId,
    /// Label names and values, sorted by name (as remote write wants
    /// them), without `__name__`.
    pub labels: Box<[(&'static str, Box<str>)]>,
    /// The labels in the text formats, `{device="vda"}` (escaped), or
    /// empty.
    pub text: Box<str>,
}

/// A sample's series and its value in the family's unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lookup {
    /// The series.
    pub series: SeriesId,
    /// The value to export (kB to bytes, ms to seconds, text to 1).
    pub value: f64,
}

#[derive(Debug, Default)]
struct SubjectEntry {
    /// The series of its numeric values.
    number: Option<SeriesId>,
    /// The series of its text values, one per text.
    states: Vec<(Name, SeriesId)>,
}

#[derive(Debug)]
enum TypeEntry {
    Skipped(&'static str),
    Family {
        family: FamilyId,
        factor: f64,
        quantile: Option<&'static str>,
        subjects: HashMap<Name, SubjectEntry>,
    },
}

/// Every family and series seen; grows, never shrinks (series that are no
/// longer reported are left out by whoever holds their values).
#[derive(Debug, Default)]
pub struct Catalog {
    families: Vec<Family>,
    by_name: HashMap<Box<str>, FamilyId>,
    series: Vec<Series>,
    /// Series by family and label text: two event types that land in one
    /// family (a command's and a probe's) share their series.
    by_labels: HashMap<(FamilyId, Box<str>), SeriesId>,
    types: HashMap<Name, TypeEntry>,
}

/// Appends `value` to `out`, escaped for a label value in the text formats.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// The family `id`.
    pub fn family(&self, id: FamilyId) -> &Family {
        &self.families[id as usize]
    }

    /// Every family, by id.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The series `id`.
    pub fn series(&self, id: SeriesId) -> &Series {
        &self.series[id as usize]
    }

    /// How many series there are.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Why `event_type` is not exported, if it is not (after a
    /// [`lookup`](Self::lookup) of one of its samples).
    pub fn skipped(&self, event_type: &str) -> Option<&'static str> {
        match self.types.get(event_type) {
            Some(TypeEntry::Skipped(why)) => Some(why),
            _ => None,
        }
    }

    /// The series of `sample` and its exported value; `None` when its
    /// event type is not exported or the catalog is full. Allocates only
    /// the first time an event type or a series is seen.
    pub fn lookup(&mut self, sample: &Sample) -> Option<Lookup> {
        if !self.types.contains_key(&*sample.event_type) {
            let entry = self.new_type(&sample.event_type);
            self.types.insert(sample.event_type.clone(), entry);
        }
        let full = self.series.len() >= MAX_SERIES;
        let Some(TypeEntry::Family {
            family,
            factor,
            quantile,
            subjects,
        }) = self.types.get_mut(&*sample.event_type)
        else {
            return None;
        };
        let (family, factor, quantile) = (*family, *factor, *quantile);
        if !subjects.contains_key(&*sample.subject) {
            if full {
                return None;
            }
            subjects.insert(sample.subject.clone(), SubjectEntry::default());
        }
        let entry = subjects.get_mut(&*sample.subject)?;
        let (slot, state, value) = match &sample.value {
            Value::Int(v) => (entry.number, None, *v as f64 * factor),
            Value::Float(v) => (entry.number, None, v * factor),
            Value::Text(t) => (
                entry.states.iter().find(|(s, _)| s == t).map(|(_, id)| *id),
                Some(t),
                1.0,
            ),
        };
        if let Some(series) = slot {
            return Some(Lookup { series, value });
        }
        if full {
            return None;
        }
        let new = new_series(family, &sample.subject, quantile, state.map(|s| &**s));
        let id = match self.by_labels.get(&(family, new.text.clone())) {
            Some(&id) => id,
            None => {
                let id = SeriesId::try_from(self.series.len()).ok()?;
                self.by_labels.insert((family, new.text.clone()), id);
                self.series.push(new);
                id
            }
        };
        match state {
            None => entry.number = Some(id),
            Some(t) => entry.states.push((t.clone(), id)),
        }
        Some(Lookup { series: id, value })
    }

    fn new_type(&mut self, event_type: &str) -> TypeEntry {
        match names::map(event_type) {
            Mapped::Skipped(why) => TypeEntry::Skipped(why),
            Mapped::Family { family, quantile } => {
                let id = match self.by_name.get(&family.name) {
                    Some(&id) => {
                        let other = &self.families[id as usize];
                        if other.kind != family.kind || other.unit != family.unit {
                            tracing::warn!(event_type, family = %family.name, "another event type already has this family name with another type or unit; not exported");
                            return TypeEntry::Skipped(
                                "its family name is another event type's, of another type or unit",
                            );
                        }
                        id
                    }
                    None => {
                        let Ok(id) = FamilyId::try_from(self.families.len()) else {
                            return TypeEntry::Skipped("too many families");
                        };
                        self.by_name.insert(family.name.clone(), id);
                        self.families.push(family.clone());
                        id
                    }
                };
                TypeEntry::Family {
                    family: id,
                    factor: family.unit.factor(),
                    quantile: if family.kind == Kind::Summary {
                        quantile
                    } else {
                        None
                    },
                    subjects: HashMap::new(),
                }
            }
        }
    }
}

fn new_series(
    family: FamilyId,
    subject: &str,
    quantile: Option<&'static str>,
    state: Option<&str>,
) -> Series {
    let mut labels: Vec<(&'static str, Box<str>)> = Vec::with_capacity(3);
    if let Some((name, value)) = names::subject_label(subject) {
        labels.push((name, value.into()));
    }
    if let Some(q) = quantile {
        labels.push((names::QUANTILE_LABEL, q.into()));
    }
    if let Some(s) = state {
        labels.push((names::STATE_LABEL, s.into()));
    }
    labels.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        text.push(if i == 0 { '{' } else { ',' });
        text.push_str(name);
        text.push_str("=\"");
        escape_label_value(&mut text, value);
        text.push('"');
    }
    if !text.is_empty() {
        text.push('}');
    }
    Series {
        family,
        labels: labels.into_boxed_slice(),
        text: text.into_boxed_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Source, Timestamp};

    fn sample(subject: &str, event_type: &str, value: Value) -> Sample {
        Sample::new(
            Timestamp(1),
            &Name::from(subject),
            &Name::from(event_type),
            value,
            Source::Proc,
        )
    }

    #[test]
    fn one_series_per_subject_and_text_whatever_the_source() {
        let mut c = Catalog::new();
        let et = "ps:tools:blipp:linux:disk:requests:read";
        let a = c.lookup(&sample("disk:vda", et, Value::Int(5))).unwrap();
        let mut ebpf = sample("disk:vda", et, Value::Int(7));
        ebpf.source = Source::Ebpf;
        let b = c.lookup(&ebpf).unwrap();
        assert_eq!(a.series, b.series);
        assert_eq!(b.value, 7.0);
        let s = c.series(a.series);
        assert_eq!(&*s.text, r#"{device="vda"}"#);
        assert_eq!(
            c.family(s.family).sample_name(),
            "blipp_disk_requests_read_total"
        );
        let other = c.lookup(&sample("disk:vdb", et, Value::Int(1))).unwrap();
        assert_ne!(other.series, a.series);
        assert_eq!(c.families().len(), 1);
    }

    #[test]
    fn units_are_converted_and_texts_are_states() {
        let mut c = Catalog::new();
        let kb = c
            .lookup(&sample(
                "node",
                "ps:tools:blipp:linux:memory:utilization:free",
                Value::Int(3),
            ))
            .unwrap();
        assert_eq!(kb.value, 3072.0);
        let p99 = c
            .lookup(&sample(
                "disk:vda",
                "ps:tools:blipp:linux:disk:latency:read:device:p99",
                Value::Float(250.0),
            ))
            .unwrap();
        assert!((p99.value - 250e-6).abs() < 1e-15);
        assert_eq!(
            &*c.series(p99.series).text,
            r#"{device="vda",quantile="0.99"}"#
        );
        let et = "ps:tools:blipp:linux:process:state";
        let r = c
            .lookup(&sample("process:a\"b", et, Value::Text("R".into())))
            .unwrap();
        let s = c
            .lookup(&sample("process:a\"b", et, Value::Text("S".into())))
            .unwrap();
        let r2 = c
            .lookup(&sample("process:a\"b", et, Value::Text("R".into())))
            .unwrap();
        assert_eq!((r.value, r.series), (1.0, r2.series));
        assert_ne!(r.series, s.series);
        assert_eq!(&*c.series(s.series).text, r#"{process="a\"b",state="S"}"#);
    }

    #[test]
    fn skipped_types_and_clashing_families_give_nothing() {
        let mut c = Catalog::new();
        let exec = sample(
            "process:sh:12",
            "ps:tools:blipp:linux:process:exec:parent",
            Value::Int(1),
        );
        assert_eq!(c.lookup(&exec), None);
        assert!(
            c.skipped("ps:tools:blipp:linux:process:exec:parent")
                .is_some()
        );
        // A command's event type that lands on a built-in family name
        // with another type is left out; one with the same rule shares it.
        let counter = c
            .lookup(&sample(
                "disk:vda",
                "ps:tools:blipp:linux:disk:requests:read",
                Value::Int(1),
            ))
            .unwrap();
        let gauge = sample("node", "disk_requests_read", Value::Float(1.0));
        assert_eq!(c.lookup(&gauge), None);
        assert!(c.skipped("disk_requests_read").is_some());
        let same = sample("disk:vda", "ps:disk:requests:read", Value::Int(2));
        assert_eq!(c.lookup(&same).map(|l| l.series), Some(counter.series));
        assert_eq!(c.families().len(), 1);
    }
}
