//! Picking values out of a JSON document printed by a command (the
//! `json_probe`): a JSON pointer (RFC 6901) in which a segment `*` stands
//! for every element of an array (or every member of an object), and an
//! aggregate that folds what a `*` selected into one value:
//! `/intervals/*/sum/bits_per_second` with `mean` is the mean throughput
//! of an `iperf3 -J` report's intervals.
//!
//! Unknown stays unknown: a member that is not there, a `null`, or an
//! aggregate over a value that is not a number gives `None`, never 0.

use serde_json::Value as Json;

use crate::sample::{Name, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// An object member or, when it is a canonical index, an array element.
    Key(String),
    /// Every element or member.
    All,
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    segments: Vec<Segment>,
}

/// How the values a `*` selected become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The arithmetic mean (a real).
    Mean,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The sum.
    Sum,
    /// The last one, whatever it is.
    Last,
    /// How many there are (0 for an empty array: that was measured).
    Count,
}

/// The aggregates' names, as configured.
pub const AGGREGATES: [(&str, Aggregate); 6] = [
    ("mean", Aggregate::Mean),
    ("min", Aggregate::Min),
    ("max", Aggregate::Max),
    ("sum", Aggregate::Sum),
    ("last", Aggregate::Last),
    ("count", Aggregate::Count),
];

impl Aggregate {
    /// The aggregate called `name`.
    pub fn named(name: &str) -> Option<Self> {
        AGGREGATES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }
}

/// Why a path does not parse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A non-empty path must start with `/`.
    #[error("a JSON pointer starts with / (or is empty, the whole document)")]
    NoSlash,
    /// `~` followed by something else than `0`, `1` or `2`.
    #[error("~ must be followed by 0 (~), 1 (/) or 2 (*) in segment {0:?}")]
    BadEscape(String),
}

impl Path {
    /// Parses `text`: RFC 6901 (`~0` is `~`, `~1` is `/`) plus `*`, a
    /// whole segment, for every element; `~2` is a member literally named
    /// `*`.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let rest = text.strip_prefix('/').ok_or(PathError::NoSlash)?;
        let segments = rest
            .split('/')
            .map(|raw| {
                if raw == "*" {
                    return Ok(Segment::All);
                }
                let mut key = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    if c != '~' {
                        key.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        Some('2') => key.push('*'),
                        _ => return Err(PathError::BadEscape(raw.to_owned())),
                    }
                }
                Ok(Segment::Key(key))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { segments })
    }

    /// Whether the path can select more than one value.
    pub fn selects_several(&self) -> bool {
        self.segments.contains(&Segment::All)
    }

    /// Calls `f` with every value the path selects in `doc`, in document
    /// order. Work is bounded by the document's size: each value is
    /// visited at most once.
    fn visit<'a>(doc: &'a Json, segments: &[Segment], f: &mut impl FnMut(&'a Json)) {
        let Some((first, rest)) = segments.split_first() else {
            f(doc);
            return;
        };
        match (first, doc) {
            (Segment::All, Json::Array(items)) => {
                items.iter().for_each(|v| Self::visit(v, rest, f));
            }
            (Segment::All, Json::Object(members)) => {
                members.values().for_each(|v| Self::visit(v, rest, f));
            }
            (Segment::Key(key), Json::Object(members)) => {
                if let Some(v) = members.get(key) {
                    Self::visit(v, rest, f);
                }
            }
            (Segment::Key(key), Json::Array(items)) => {
                // RFC 6901: an index is digits without a leading zero.
                let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
                if let Some(v) = key
                    .parse::<usize>()
                    .ok()
                    .filter(|_| canonical && key.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|i| items.get(i))
                {
                    Self::visit(v, rest, f);
                }
            }
            _ => {}
        }
    }
}

/// A scalar as a sample value: an unsigned integer stays one, any other
/// number is a real, a string is text, `true`/`false` are 1/0; `null`,
/// arrays and objects are not a value.
pub fn scalar(v: &Json) -> Option<Value> {
    match v {
        Json::Number(n) => n
            .as_u64()
            .map(Value::Int)
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(Value::Float)),
        Json::String(s) => Some(Value::Text(Name::from(s.as_str()))),
        Json::Bool(b) => Some(Value::Int(u64::from(*b))),
        Json::Null | Json::Array(_) | Json::Object(_) => None,
    }
}

/// The value `path` selects in `doc`, folded by `aggregate` (without one,
/// the first selected value). `None` when nothing is selected or the
/// result is not known (a value to sum that is not a number).
pub fn extract(doc: &Json, path: &Path, aggregate: Option<Aggregate>) -> Option<Value> {
    let Some(aggregate) = aggregate else {
        let mut first = None;
        Path::visit(doc, &path.segments, &mut |v| {
            first.get_or_insert(v);
        });
        return first.and_then(scalar);
    };
    let mut fold = Fold::default();
    Path::visit(doc, &path.segments, &mut |v| fold.add(v));
    fold.result(aggregate)
}

/// What an aggregate needs, gathered in one pass.
#[derive(Default)]
struct Fold<'a> {
    count: u64,
    last: Option<&'a Json>,
    /// Every value so far was a number.
    numbers: bool,
    /// Every value so far was an unsigned integer, and their sum fits.
    ints: bool,
    sum: f64,
    int_sum: u64,
    min: Option<Value>,
    max: Option<Value>,
}

impl<'a> Fold<'a> {
    fn add(&mut self, v: &'a Json) {
        if self.count == 0 {
            self.numbers = true;
            self.ints = true;
        }
        self.count += 1;
        self.last = Some(v);
        let number = match scalar(v) {
            Some(n @ (Value::Int(_) | Value::Float(_))) if v.is_number() => n,
            _ => {
                self.numbers = false;
                return;
            }
        };
        let (f, int) = match number {
            Value::Int(i) => (i as f64, Some(i)),
            Value::Float(f) => (f, None),
            Value::Text(_) => return,
        };
        self.sum += f;
        match int.and_then(|i| self.int_sum.checked_add(i)) {
            Some(s) if self.ints => self.int_sum = s,
            _ => self.ints = false,
        }
        let less = |a: &Value, b: &Value| as_f64(a) < as_f64(b);
        if self.min.as_ref().is_none_or(|m| less(&number, m)) {
            self.min = Some(number.clone());
        }
        if self.max.as_ref().is_none_or(|m| less(m, &number)) {
            self.max = Some(number);
        }
    }

    fn result(self, aggregate: Aggregate) -> Option<Value> {
        match aggregate {
            Aggregate::Count => return Some(Value::Int(self.count)),
            Aggregate::Last => return self.last.and_then(scalar),
            _ => {}
        }
        if self.count == 0 || !self.numbers {
            return None;
        }
        match aggregate {
            Aggregate::Mean => Some(Value::Float(self.sum / self.count as f64)),
            Aggregate::Sum if self.ints => Some(Value::Int(self.int_sum)),
            Aggregate::Sum => Some(Value::Float(self.sum)).filter(|v| as_f64(v).is_finite()),
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Count | Aggregate::Last => None,
        }
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Text(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(doc: &Json, path: &str, aggregate: Option<&str>) -> Option<Value> {
        extract(
            doc,
            &Path::parse(path).unwrap(),
            aggregate.map(|a| Aggregate::named(a).unwrap()),
        )
    }

    fn iperf() -> Json {
        json!({"intervals": [
            {"sum": {"bits_per_second": 1.0e9, "bytes": 100}},
            {"sum": {"bits_per_second": 3.0e9, "bytes": 300}},
            {"sum": {"bits_per_second": 2.0e9, "bytes": 200}}
        ], "end": {"sum_received": {"bits_per_second": 2.5e9}}})
    }

    #[test]
    fn plain_pointers_are_rfc_6901() {
        let doc = json!({"a/b": {"m~n": [10, 20]}, "": 5, "*": 7, "s": "HEALTH_OK", "t": true, "n": null});
        assert_eq!(get(&doc, "/a~1b/m~0n/1", None), Some(Value::Int(20)));
        assert_eq!(get(&doc, "/", None), Some(Value::Int(5)));
        assert_eq!(get(&doc, "/~2", None), Some(Value::Int(7)));
        assert_eq!(
            get(&doc, "/s", None),
            Some(Value::Text(Name::from("HEALTH_OK")))
        );
        assert_eq!(get(&doc, "/t", None), Some(Value::Int(1)));
        // Not there, null, a leading zero, past the end, an object: unknown.
        for missing in [
            "/x",
            "/n",
            "/a~1b/m~0n/01",
            "/a~1b/m~0n/2",
            "/a~1b",
            "/a~1b/m~0n/-",
        ] {
            assert_eq!(get(&doc, missing, None), None, "{missing}");
        }
        assert_eq!(
            get(&json!(-2.5), "", None),
            Some(Value::Float(-2.5)),
            "the empty path is the whole document"
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        assert_eq!(Path::parse("a/b"), Err(PathError::NoSlash));
        assert_eq!(
            Path::parse("/a~3"),
            Err(PathError::BadEscape("a~3".to_owned()))
        );
        assert_eq!(
            Path::parse("/a~"),
            Err(PathError::BadEscape("a~".to_owned()))
        );
        assert!(Path::parse("/intervals/*/x").unwrap().selects_several());
        assert!(!Path::parse("/intervals/~2/x").unwrap().selects_several());
    }

    #[test]
    fn aggregates_over_the_intervals() {
        let doc = iperf();
        let p = "/intervals/*/sum/bits_per_second";
        assert_eq!(get(&doc, p, Some("mean")), Some(Value::Float(2.0e9)));
        assert_eq!(get(&doc, p, Some("min")), Some(Value::Float(1.0e9)));
        assert_eq!(get(&doc, p, Some("max")), Some(Value::Float(3.0e9)));
        assert_eq!(get(&doc, p, Some("sum")), Some(Value::Float(6.0e9)));
        assert_eq!(get(&doc, p, Some("last")), Some(Value::Float(2.0e9)));
        assert_eq!(get(&doc, p, Some("count")), Some(Value::Int(3)));
        let b = "/intervals/*/sum/bytes";
        assert_eq!(get(&doc, b, Some("sum")), Some(Value::Int(600)));
        assert_eq!(get(&doc, b, Some("max")), Some(Value::Int(300)));
        assert_eq!(get(&doc, b, Some("mean")), Some(Value::Float(200.0)));
        // Without an aggregate, the first.
        assert_eq!(get(&doc, b, None), Some(Value::Int(100)));
        // A wildcard over an object's members.
        assert_eq!(
            get(&json!({"x": {"v": 1}, "y": {"v": 4}}), "/*/v", Some("sum")),
            Some(Value::Int(5))
        );
    }

    #[test]
    fn an_aggregate_of_unknowns_is_unknown() {
        let empty = json!({"intervals": []});
        let p = "/intervals/*/sum/bits_per_second";
        for a in ["mean", "min", "max", "sum", "last"] {
            assert_eq!(get(&empty, p, Some(a)), None, "{a}");
        }
        assert_eq!(get(&empty, p, Some("count")), Some(Value::Int(0)));
        // One interval without a number: the mean of the others would be
        // another statistic, so none.
        let holed = json!({"intervals": [{"sum": {"bits_per_second": 1}}, {"sum": {"bits_per_second": "n/a"}}]});
        for a in ["mean", "min", "max", "sum"] {
            assert_eq!(get(&holed, p, Some(a)), None, "{a}");
        }
        assert_eq!(get(&holed, p, Some("count")), Some(Value::Int(2)));
        let overflow = json!([u64::MAX, 1]);
        assert_eq!(
            get(&overflow, "/*", Some("sum")),
            Some(Value::Float(u64::MAX as f64 + 1.0))
        );
    }

    #[test]
    fn deep_wildcards_visit_each_value_once() {
        // 100 x 100 nested arrays: 10 000 leaves, each counted once.
        let doc = Json::Array(vec![Json::Array(vec![json!(1); 100]); 100]);
        assert_eq!(get(&doc, "/*/*", Some("count")), Some(Value::Int(10_000)));
        assert_eq!(get(&doc, "/*/*", Some("sum")), Some(Value::Int(10_000)));
    }
}
