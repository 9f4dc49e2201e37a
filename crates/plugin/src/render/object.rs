//! `-o json` and `-o yaml`: the Kubernetes object as the API server returned it (a List of them
//! for `list`), without managedFields, as kubectl prints it by default.

use personalize_watch_api::crd::SolutionVersionWatch;
use serde_json::{Value, json};

/// json or yaml.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// Why an object could not be printed.
#[derive(thiserror::Error, Debug)]
pub enum EncodeError {
    #[error("cannot write the object as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the object as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// One watch.
pub fn one(watch: &SolutionVersionWatch, format: Format) -> Result<String, EncodeError> {
    encode(&object(watch)?, format)
}

/// A `v1` List of watches, as `kubectl get -o json` prints several.
pub fn list(watches: &[SolutionVersionWatch], format: Format) -> Result<String, EncodeError> {
    let items = watches.iter().map(object).collect::<Result<Vec<_>, _>>()?;
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": items,
    });
    encode(&list, format)
}

fn object(watch: &SolutionVersionWatch) -> Result<Value, EncodeError> {
    let mut value = serde_json::to_value(watch)?;
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    Ok(value)
}

fn encode(value: &Value, format: Format) -> Result<String, EncodeError> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_yaml::to_string(value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use personalize_watch_api::crd::SolutionVersionWatchSpec;

    fn watch(name: &str) -> SolutionVersionWatch {
        let mut w = SolutionVersionWatch::new(
            name,
            SolutionVersionWatchSpec::watching(
                "arn:aws:personalize:us-east-1:123456789012:solution/s/v",
            ),
        );
        w.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        w
    }

    #[test]
    fn json_is_the_kubernetes_object_without_managed_fields() {
        let text = one(&watch("nightly"), Format::Json).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["apiVersion"], "personalize-watch.dev/v1alpha1");
        assert_eq!(v["kind"], "SolutionVersionWatch");
        assert_eq!(v["metadata"]["name"], "nightly");
        assert!(v["metadata"].get("managedFields").is_none(), "{text}");
        assert!(v["spec"]["solutionVersionArn"].is_string(), "{text}");
    }

    #[test]
    fn several_are_a_v1_list_in_yaml_as_in_json() {
        let watches = [watch("a"), watch("b")];
        let yaml: Value = serde_yaml::from_str(&list(&watches, Format::Yaml).unwrap()).unwrap();
        let json: Value = serde_json::from_str(&list(&watches, Format::Json).unwrap()).unwrap();
        assert_eq!(yaml, json);
        assert_eq!(json["kind"], "List");
        assert_eq!(json["items"][1]["metadata"]["name"], "b");
        assert_eq!(json["items"][0]["kind"], "SolutionVersionWatch");
    }
}
