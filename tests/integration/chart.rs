//! The chart as platform teams run it: its README generated from values.yaml and the schema,
//! and the aggregated roles that let a namespace's editors create watches.

use std::time::Duration;

use serde_json::Value;

use crate::support::{self, CommandOutput, command::helm, kubectl, kubectl_with_input, wait_for};

const CHART: &str = "charts/personalize-watch";

/// One value: its dotted key, the schema's type, its default and the comment above it.
struct Row {
    key: String,
    kind: String,
    default: String,
    help: String,
}

/// The type the schema gives `path`, or "object" where it says nothing more.
fn schema_type(schema: &Value, path: &[String]) -> String {
    let mut node = schema;
    for key in path {
        node = match node["properties"].get(key) {
            Some(child) => child,
            None => return "object".into(),
        };
    }
    if let Some(kind) = node["type"].as_str() {
        return kind.into();
    }
    if let Some(values) = node["enum"].as_array() {
        let names: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return names.join(" / ");
    }
    "string or object".into()
}

/// Whether the schema leaves `path` free-form (an object without properties): one row shows it
/// whole, its keys are not values of their own.
fn free_form(schema: &Value, path: &[String]) -> bool {
    let mut node = schema;
    for key in path {
        match node["properties"].get(key) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node["type"] == "object" && node.get("properties").is_none()
}

/// Walks values.yaml: each `key: value` line at its indentation, with the comment lines right
/// above it (a blank line ends a comment that belongs to nothing). Defaults come from the
/// parsed file.
fn rows(values: &str, schema: &Value) -> Vec<Row> {
    let tree: Value = serde_yaml::from_str(values).expect("values.yaml parses");
    let mut rows = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    for line in values.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            comment.clear();
            continue;
        }
        if let Some(text) = trimmed.strip_prefix('#') {
            comment.push(text.trim().to_string());
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if key.starts_with('-') || key.contains(' ') {
            continue;
        }
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        let inside_free_form = {
            let keys: Vec<String> = path.iter().map(|(_, k)| k.clone()).collect();
            (1..=keys.len()).any(|n| free_form(schema, &keys[..n]))
        };
        path.push((indent, key.to_string()));
        let help = std::mem::take(&mut comment).join(" ");
        if inside_free_form {
            continue;
        }
        let keys: Vec<String> = path.iter().map(|(_, k)| k.clone()).collect();
        let value = keys.iter().fold(&tree, |node, key| &node[key.as_str()]);
        if value.is_object() && !free_form(schema, &keys) {
            continue;
        }
        rows.push(Row {
            key: keys.join("."),
            kind: schema_type(schema, &keys),
            default: format!("`{value}`"),
            help,
        });
    }
    rows
}

/// The chart's values.yaml and its schema.
fn values_and_schema() -> (String, Value) {
    let root = support::repo_root().join(CHART);
    let values = std::fs::read_to_string(root.join("values.yaml")).unwrap();
    let schema = std::fs::read_to_string(root.join("values.schema.json")).unwrap();
    (values, serde_json::from_str(&schema).unwrap())
}

fn chart_readme() -> String {
    let (values, schema) = values_and_schema();
    let mut doc = String::from(
        "# personalize-watch Helm chart\n\n\
         Installs the personalize-watch operator: it lists the batch inference jobs of the AWS\n\
         Personalize solution versions that SolutionVersionWatches name, and reports them in\n\
         status, Events and metrics. The project's README has the install commands, the access\n\
         policy, IAM (`docs/iam/`) and how CRDs upgrade.\n\n\
         Generated from `values.yaml` and `values.schema.json` by\n\
         `chart::the_chart_readme_is_generated_from_values_and_schema` (`PW_WRITE_DOCS=1` writes it\n\
         again); the schema refuses unknown keys.\n\n\
         | value | type | default | description |\n|---|---|---|---|\n",
    );
    for row in rows(&values, &schema) {
        doc.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.key,
            row.kind,
            row.default.replace('|', "\\|"),
            row.help.replace('|', "\\|")
        ));
    }
    doc
}

#[test]
fn the_chart_readme_is_generated_from_values_and_schema() {
    support::assert_generated(
        &format!("{CHART}/README.md"),
        &chart_readme(),
        "cargo test --test integration -- chart::the_chart_readme",
    );
    let (values, schema) = values_and_schema();
    let rows = rows(&values, &schema);
    for key in [
        "crds.install",
        "rbac.aggregateToDefaultRoles",
        "metrics.serviceMonitor.honorLabels",
        "metrics.prometheusRule.enabled",
    ] {
        assert!(rows.iter().any(|r| r.key == key), "{key} documented");
    }
    let undescribed: Vec<&str> = rows
        .iter()
        .filter(|r| r.help.is_empty())
        .map(|r| r.key.as_str())
        .collect();
    assert!(
        undescribed.is_empty(),
        "values.yaml has no comment for {undescribed:?}"
    );
}

/// A namespace's editor (bound only to the built-in `edit` ClusterRole there) creates, reads and
/// deletes a watch once the chart's aggregated roles are installed: kube-controller-manager
/// aggregates them into `edit`. Needs the node's controller manager (`make test` starts it).
#[tokio::test]
async fn an_editor_of_a_namespace_may_create_watches_there() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = &support::namespace(&client, "editor").await;
    let rendered = helm(&[
        "template",
        "aggregation-test",
        CHART,
        "--namespace",
        "aggregation-test",
        "--show-only",
        "templates/aggregate-roles.yaml",
    ]);
    assert!(rendered.success, "{}", rendered.stderr);
    let applied = kubectl_with_input(&["apply", "-f", "-"], Some(&rendered.stdout));
    assert!(applied.success, "{}", applied.stderr);
    let bound = kubectl(&[
        "create",
        "rolebinding",
        "alice-edits",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        ns,
    ]);
    assert!(bound.success, "{}", bound.stderr);
    let watch = "apiVersion: personalize-watch.dev/v1alpha1\nkind: SolutionVersionWatch\n\
        metadata:\n  name: movie-recs\nspec:\n  solutionVersionArn: \
        arn:aws:personalize:us-east-1:123456789012:solution/movie-recs/8f2a1c3d\n";
    wait_for(
        Duration::from_secs(60),
        "edit aggregates the chart's role",
        || async {
            let CommandOutput { success, .. } = kubectl_with_input(
                &["create", "--as", "alice", "-n", ns, "-f", "-"],
                Some(watch),
            );
            success.then_some(())
        },
    )
    .await;
    let read = kubectl(&["get", "svw", "movie-recs", "--as", "alice", "-n", ns]);
    assert!(read.success, "{}", read.stderr);
    let outsider = kubectl(&["get", "svw", "-n", "default", "--as", "alice"]);
    assert!(!outsider.success, "alice edits only her namespace");
    let deleted = kubectl(&["delete", "svw", "movie-recs", "--as", "alice", "-n", ns]);
    assert!(deleted.success, "{}", deleted.stderr);
    kubectl(&["delete", "namespace", ns.as_str(), "--wait=false"]);
    let removed = kubectl_with_input(&["delete", "-f", "-"], Some(&rendered.stdout));
    assert!(removed.success, "{}", removed.stderr);
}
