//! The keys a probe's options type accepts, read from its `Deserialize`
//! implementation, so that a test can hold the schema's
//! `$defs/options_<module>` to the struct the probe really parses instead
//! of to a second hand-written list.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The keys `T` declares (after `rename`), or `None` when `T` is not read
/// as a plain struct: a `#[serde(flatten)]` field makes serde read a map
/// whose keys it cannot list.
pub fn option_keys<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    // The deserializer refuses everything; all it wants is the field list
    // serde hands to `deserialize_struct` on the way.
    let _ = T::deserialize(FieldsOf(&mut fields));
    fields
}

struct FieldsOf<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct Listed;

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("only the field list is read")
    }
}

impl std::error::Error for Listed {}

impl de::Error for Listed {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Listed
    }
}

impl<'de> Deserializer<'de> for FieldsOf<'_> {
    type Error = Listed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Listed> {
        Err(Listed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Listed> {
        *self.0 = Some(fields);
        Err(Listed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn lists_renamed_fields_and_gives_up_on_flatten() {
        #[derive(Deserialize)]
        #[expect(dead_code, reason = "only its keys are read")]
        struct Plain {
            a: Option<u32>,
            #[serde(rename = "eventTypes")]
            b: Option<String>,
        }
        #[derive(Deserialize)]
        #[expect(dead_code, reason = "only its keys are read")]
        struct Flat {
            #[serde(flatten)]
            inner: std::collections::HashMap<String, u32>,
        }
        assert_eq!(option_keys::<Plain>(), Some(&["a", "eventTypes"][..]));
        assert_eq!(option_keys::<Flat>(), None);
    }
}
