//! A captured number turned into the value reported: converted from the
//! `unit` the command prints it in to blipp's (the units Nagios
//! performance data uses: `ms` and `us` to seconds, `KB`..`TB` to bytes),
//! then multiplied by `scale` and `offset` added.

use crate::sample::Value;
use crate::source::perfdata::{self, Unit};

/// One value's transformation; the identity by default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    factor: f64,
    offset: f64,
}

impl Default for Transform {
    fn default() -> Self {
        Self {
            factor: 1.0,
            offset: 0.0,
        }
    }
}

/// The units `unit` accepts, as written.
pub const UNITS: [&str; 8] = ["s", "ms", "us", "B", "KB", "MB", "GB", "TB"];

impl Transform {
    /// `unit` (one of [`UNITS`], any case for the byte units), then
    /// `scale`, then `offset`; `None` for a unit blipp does not convert or
    /// a factor or offset that is not a finite number.
    pub fn new(unit: Option<&str>, scale: Option<f64>, offset: Option<f64>) -> Option<Self> {
        let unit_factor = match unit {
            None => 1.0,
            Some(u) => match perfdata::unit(u) {
                (Unit::Seconds | Unit::Bytes, f) => f,
                _ => return None,
            },
        };
        let factor = unit_factor * scale.unwrap_or(1.0);
        let offset = offset.unwrap_or(0.0);
        (factor.is_finite() && offset.is_finite() && factor != 0.0)
            .then_some(Self { factor, offset })
    }

    /// The value reported for `value`: an integer stays one when the
    /// result is a whole number the factor and offset keep whole (`KB` to
    /// bytes), anything else is a real; `None` when it is not finite.
    pub fn apply(&self, value: Value) -> Option<Value> {
        if *self == Self::default() {
            return Some(value);
        }
        let (v, int) = match value {
            Value::Int(i) => (i as f64, true),
            Value::Float(f) => (f, false),
            Value::Text(_) => return None,
        };
        let out = v * self.factor + self.offset;
        if !out.is_finite() {
            return None;
        }
        let whole = self.factor.fract() == 0.0 && self.offset.fract() == 0.0;
        Some(if int && whole && (0.0..9.0e15).contains(&out) {
            Value::Int(out as u64)
        } else {
            Value::Float(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_then_scale_then_offset() {
        let t = Transform::new(Some("ms"), None, None).unwrap();
        assert_eq!(t.apply(Value::Float(250.0)), Some(Value::Float(0.25)));
        let t = Transform::new(Some("KB"), None, None).unwrap();
        assert_eq!(t.apply(Value::Int(3)), Some(Value::Int(3072)));
        let t = Transform::new(Some("kb"), Some(8.0), None).unwrap();
        assert_eq!(t.apply(Value::Int(1)), Some(Value::Int(8192)));
        // Celsius to kelvin: a real offset makes a real.
        let t = Transform::new(None, None, Some(273.15)).unwrap();
        assert_eq!(t.apply(Value::Int(20)), Some(Value::Float(293.15)));
        let t = Transform::new(None, Some(-1.0), None).unwrap();
        assert_eq!(t.apply(Value::Int(5)), Some(Value::Float(-5.0)));
        assert_eq!(
            Transform::default().apply(Value::Int(7)),
            Some(Value::Int(7))
        );
    }

    #[test]
    fn what_it_refuses() {
        assert_eq!(Transform::new(Some("Mbps"), None, None), None);
        assert_eq!(Transform::new(Some("%"), None, None), None);
        assert_eq!(Transform::new(None, Some(0.0), None), None);
        assert_eq!(Transform::new(None, Some(f64::INFINITY), None), None);
        let t = Transform::new(None, Some(1e300), None).unwrap();
        assert_eq!(t.apply(Value::Float(1e300)), None);
    }
}
