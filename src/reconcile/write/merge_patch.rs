//! The JSON merge patch (RFC 7386) that turns one status into another: only what changed, with
//! null for what went away. Objects merge key by key on the server, so a key left out of a patch
//! stays; arrays are replaced whole.

use serde_json::{Map, Value};

/// The merge patch from `old` to `new`; an empty object when nothing changed.
pub fn diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => Value::Object(diff_objects(old, new)),
        _ if old == new => Value::Object(Map::new()),
        _ => new.clone(),
    }
}

fn diff_objects(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, new_value) in new {
        match old.get(key) {
            Some(old_value) if old_value == new_value => {}
            // The server merges a nested object key by key, so the patch does too.
            Some(Value::Object(old_object)) if new_value.is_object() => {
                if let Value::Object(new_object) = new_value {
                    patch.insert(
                        key.clone(),
                        Value::Object(diff_objects(old_object, new_object)),
                    );
                }
            }
            _ => {
                patch.insert(key.clone(), new_value.clone());
            }
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

/// Whether a patch changes nothing.
pub fn is_empty(patch: &Value) -> bool {
    patch.as_object().is_some_and(Map::is_empty)
}

/// What applying `patch` to `target` gives, as the API server does it.
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                apply(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn only_changes_and_removals() {
        let old = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": "gone"});
        let new = json!({"a": 1, "b": {"x": 1, "z": 3}, "c": [1]});
        assert_eq!(
            diff(&old, &new),
            json!({"b": {"y": null, "z": 3}, "c": [1], "d": null})
        );
        assert!(is_empty(&diff(&new, &new)));
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
            Just(Value::Bool(true)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Applying the diff to the old object gives the new one (objects without nulls, as a
        /// status serializes).
        #[test]
        fn the_diff_applied_gives_the_new_object(
            old in prop::collection::btree_map("[a-d]", value(), 0..4),
            new in prop::collection::btree_map("[a-d]", value(), 0..4),
        ) {
            let old = Value::Object(old.into_iter().collect());
            let new = Value::Object(new.into_iter().collect());
            let mut patched = old.clone();
            apply(&mut patched, &diff(&old, &new));
            prop_assert_eq!(patched, new);
        }
    }
}
