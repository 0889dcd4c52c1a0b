//! Query strings of `GET /{collection}`, as the periscope server reads
//! them: every argument but a few special ones is a filter on a (dotted)
//! field path; `a,b` means any of; repeated arguments must all hold;
//! `lt=`/`lte=`/`gt=`/`gte=`/`eq=` compare numbers; `ts` and `ttl` values
//! are numbers; `integer:`/`number:`/`boolean:`/`string:` force a type;
//! `exists=true|false`. `unique=true` keeps the newest version of each id.
//! Regular expressions (`reg=`, `not=`), `recfind=` and `|` alternatives
//! are refused with 400: the agent does not use them.

use serde_json::Value;

/// One condition on one field.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// Equal to this value (a string, number or boolean).
    Eq(Value),
    /// Equal to any of these.
    In(Vec<Value>),
    /// A numeric comparison.
    Cmp(Op, f64),
    /// Present (true) or absent/null (false).
    Exists(bool),
    /// Null or absent.
    Null,
}

/// Numeric comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// <
    Lt,
    /// <=
    Lte,
    /// >
    Gt,
    /// >=
    Gte,
}

/// A parsed query string.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// `(field path, condition)`, all of which must hold.
    pub filters: Vec<(String, Cond)>,
    /// `limit=N`.
    pub limit: Option<usize>,
    /// `skip=N`.
    pub skip: usize,
    /// `unique=true`.
    pub unique: bool,
}

/// Parses the query part of a URL (without `?`).
pub fn parse(query: &str) -> Result<Query, String> {
    let mut q = Query::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        match key.as_str() {
            "fields" | "sort" | "inline" | "cert" | "validate" => {}
            "limit" => {
                q.limit = Some(
                    value
                        .parse()
                        .map_err(|_| "'limit' is not of type 'integer'".to_owned())?,
                );
            }
            "skip" => {
                q.skip = value
                    .parse()
                    .map_err(|_| "'skip' is not of type 'integer'".to_owned())?;
            }
            "unique" => q.unique = value != "false",
            _ => {
                let cond = condition(&key, &value)?;
                q.filters.push((key, cond));
            }
        }
    }
    Ok(q)
}

fn condition(key: &str, value: &str) -> Result<Cond, String> {
    if let Some(v) = value.strip_prefix("exists=") {
        return match v {
            "true" | "1" => Ok(Cond::Exists(true)),
            "false" | "0" => Ok(Cond::Exists(false)),
            _ => Err(format!("'{key}' is not of type 'boolean'")),
        };
    }
    for refused in ["reg=", "not=", "recfind="] {
        if value.starts_with(refused) {
            return Err(format!(
                "the test server does not implement {refused} queries"
            ));
        }
    }
    if value.contains('|') {
        return Err("the test server does not implement | queries".into());
    }
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() > 1 {
        return parts
            .iter()
            .map(|p| match single(key, p)? {
                Cond::Eq(v) => Ok(v),
                _ => Err(format!("'{key}': only values can be listed")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cond::In);
    }
    single(key, value)
}

fn number(key: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .map_err(|_| format!("'{key}' is not of type 'number'"))
}

fn single(key: &str, value: &str) -> Result<Cond, String> {
    for (prefix, op) in [
        ("lte=", Op::Lte),
        ("lt=", Op::Lt),
        ("gte=", Op::Gte),
        ("gt=", Op::Gt),
    ] {
        if let Some(v) = value.strip_prefix(prefix) {
            return Ok(Cond::Cmp(op, number(key, v)?));
        }
    }
    if let Some(v) = value.strip_prefix("eq=") {
        return Ok(Cond::Eq(Value::from(number(key, v)?)));
    }
    if value.starts_with("null=") {
        return Ok(Cond::Null);
    }
    if let Some(v) = value.strip_prefix("integer:") {
        let n: i64 = v
            .parse()
            .map_err(|_| format!("'{key}' is not of type 'integer'"))?;
        return Ok(Cond::Eq(Value::from(n)));
    }
    if let Some(v) = value.strip_prefix("number:") {
        return Ok(Cond::Eq(Value::from(number(key, v)?)));
    }
    if let Some(v) = value.strip_prefix("boolean:") {
        return match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Cond::Eq(Value::Bool(true))),
            "false" | "0" => Ok(Cond::Eq(Value::Bool(false))),
            _ => Err(format!("'{key}' is not of type 'boolean'")),
        };
    }
    if let Some(v) = value.strip_prefix("string:") {
        return Ok(Cond::Eq(Value::String(v.to_owned())));
    }
    if key == "ts" || key == "ttl" {
        return Ok(Cond::Eq(Value::from(number(key, value)?)));
    }
    Ok(Cond::Eq(Value::String(value.to_owned())))
}

/// The values at a dotted path, fanning out over arrays as MongoDB does.
fn values_at<'a>(record: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match record {
        Value::Object(map) => {
            if let Some(v) = map.get(head) {
                match rest {
                    Some(r) => values_at(v, r, out),
                    None => out.push(v),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                values_at(item, path, out);
            }
        }
        _ => {}
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A field value matches a wanted value if equal, or if it is an array
/// holding an equal element.
fn holds(field: &Value, wanted: &Value) -> bool {
    equal(field, wanted)
        || matches!(field, Value::Array(items) if items.iter().any(|i| equal(i, wanted)))
}

fn satisfies(record: &Value, path: &str, cond: &Cond) -> bool {
    let mut found = Vec::new();
    values_at(record, path, &mut found);
    match cond {
        Cond::Eq(w) => found.iter().any(|f| holds(f, w)),
        Cond::In(ws) => found.iter().any(|f| ws.iter().any(|w| holds(f, w))),
        Cond::Cmp(op, limit) => found.iter().filter_map(|f| f.as_f64()).any(|x| match op {
            Op::Lt => x < *limit,
            Op::Lte => x <= *limit,
            Op::Gt => x > *limit,
            Op::Gte => x >= *limit,
        }),
        Cond::Exists(want) => found.iter().any(|f| !f.is_null()) == *want,
        Cond::Null => found.iter().all(|f| f.is_null()),
    }
}

impl Query {
    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &Value) -> bool {
        self.filters
            .iter()
            .all(|(path, cond)| satisfies(record, path, cond))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_keys_lists_and_numbers() {
        let md = json!({"id": "m1", "ts": 5, "eventType": "e",
            "parameters": {"measurement": {"href": "http://u/measurements/a"}},
            "ports": [{"href": "http://u/ports/p1"}, {"href": "http://u/ports/p2"}]});
        let q = |s: &str| parse(s).unwrap();
        assert!(q("parameters.measurement.href=http%3A%2F%2Fu%2Fmeasurements%2Fa").matches(&md));
        assert!(
            q("parameters.measurement.href=http://u/measurements/b,http://u/measurements/a")
                .matches(&md)
        );
        assert!(!q("parameters.measurement.href=http://u/measurements/b").matches(&md));
        assert!(
            q("ports.href=http://u/ports/p2").matches(&md),
            "fan-out over arrays"
        );
        assert!(q("ts=5").matches(&md), "ts is a number");
        assert!(q("ts=gt=4&ts=lt=6").matches(&md));
        assert!(!q("ts=gte=6").matches(&md));
        assert!(q("id=m1&eventType=e").matches(&md));
        assert!(!q("id=m1&eventType=x").matches(&md));
        assert!(q("urn=exists=false").matches(&md));
        assert!(q("urn=urn:ogf:network:domain=x:node=y:").filters.len() == 1);
        let u = q("name=blipp&unique=true&limit=2");
        assert!(u.unique);
        assert_eq!(u.limit, Some(2));
        assert!(parse("name=reg=^b").is_err());
        assert!(parse("limit=x").is_err());
    }
}
