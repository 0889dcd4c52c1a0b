//! JSON deep merge, the original BLiPP's `merge_dicts`: objects merge key by
//! key, anything else is replaced by the newer value.

use serde_json::Value;

/// Merges `newer` into `base`; `newer` wins on conflicts.
pub fn merge(base: &mut Value, newer: Value) {
    match (base, newer) {
        (Value::Object(base), Value::Object(newer)) => {
            for (key, value) in newer {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, newer) => *base = newer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep() {
        let mut a = json!({"a": {"b": 1, "c": [1]}, "d": 1});
        merge(&mut a, json!({"a": {"c": [2], "e": 3}, "d": {"x": 1}}));
        assert_eq!(a, json!({"a": {"b": 1, "c": [2], "e": 3}, "d": {"x": 1}}));
    }
}
