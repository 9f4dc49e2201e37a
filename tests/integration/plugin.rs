//! The kubectl plugin (crates/plugin, `kubectl-personalize_watch`) through kubectl's own plugin
//! lookup and completion, against the test control plane and watches the operator synced.

use std::process::Command;
use std::time::Duration;

use personalize_emulator::store::Batch as GenerateRequest;

use crate::support::command::run;
use crate::support::processes::binary;
use crate::support::{self, CommandOutput, Fixture, control_plane, tool, total};

/// `kubectl personalize-watch ARGS` through kubectl's plugin lookup: the plugin's binary and its
/// completion script on PATH, as krew installs them.
fn plugin(args: &[&str], columns: Option<&str>) -> String {
    kubectl_with_plugin(args, columns).expect_success()
}

fn kubectl_with_plugin(args: &[&str], columns: Option<&str>) -> CommandOutput {
    // A folder per call (tests call this at once), removed after it.
    let dir = tempdir(&format!("plugin-{:08x}", rand::random::<u32>()));
    let link = dir.join("kubectl-personalize_watch");
    std::os::unix::fs::symlink(binary("kubectl-personalize_watch"), &link)
        .expect("link the plugin");
    let script = support::repo_root().join("crates/plugin/kubectl_complete-personalize_watch");
    std::os::unix::fs::symlink(script, dir.join("kubectl_complete-personalize_watch"))
        .expect("link the completion script");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(tool("kubectl"));
    command
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .env_remove("COLUMNS");
    if let Some(c) = columns {
        command.env("COLUMNS", c);
    }
    let output = run(command, None);
    let _ = std::fs::remove_dir_all(&dir);
    output
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn kubectl_personalize_watch_jobs_prints_the_table_of_237_jobs() {
    let f = Fixture::start("table").await;
    let sv = support::solution_version_arn("table");
    f.emu.generate(&sv, 200, "ACTIVE", "nightly").await;
    f.emu
        .generate_batch(&GenerateRequest {
            solution_version_arn: sv.clone(),
            count: 35,
            status: Some("CREATE FAILED".into()),
            name_prefix: Some("broken".into()),
            failure_reason: Some(format!(
                "AccessDenied: {}",
                "the role cannot read s3://in ".repeat(20)
            )),
            ..Default::default()
        })
        .await;
    f.emu.generate(&sv, 2, "IN PROGRESS", "running").await;
    f.apply_watch("table", &sv, "  maxJobsInStatus: 200\n")
        .await;
    f.wait_status("table", Duration::from_secs(30), "237 jobs", |w| {
        total(w) == Some(237)
    })
    .await;

    let text = plugin(
        &["personalize-watch", "jobs", "table", "-n", &f.ns],
        Some("120"),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME ")
            && lines[0].contains("STATUS")
            && lines[0].ends_with("FAILURE REASON"),
        "{text}"
    );
    let rows: Vec<&&str> = lines[1..].iter().take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 200, "as many as status holds:\n{text}");
    // Generated batches end now, one second apart: the newest second holds one of each.
    assert!(
        rows[..3].iter().any(|r| r.starts_with("running-2 ")),
        "newest first:\n{text}"
    );
    assert!(
        lines.iter().all(|l| l.chars().count() <= 120),
        "cut to COLUMNS:\n{text}"
    );
    assert!(
        rows.iter().any(|r| r.contains("CREATE FAILED")
            && r.contains("AccessDenied: the role")
            && r.ends_with("...")),
        "{text}"
    );
    assert!(
        text.contains("Counts:    237 jobs: 200 active, 35 failed, 0 pending, 2 in progress"),
        "{text}"
    );
    assert!(text.contains("the newest 200 of 237"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Ready ") && l.contains("True") && l.contains("Synced")),
        "{text}"
    );

    let jobs_as = |output: &str| {
        plugin(
            &[
                "personalize-watch",
                "jobs",
                "table",
                "-n",
                &f.ns,
                "-o",
                output,
            ],
            None,
        )
    };
    let wide = jobs_as("wide");
    assert!(
        wide.lines().next().unwrap_or_default().contains("ARN"),
        "{wide}"
    );
    assert!(wide.contains(&support::job_arn("running-1")), "{wide}");

    let json: serde_json::Value =
        serde_json::from_str(&jobs_as("json")).expect("-o json prints JSON");
    assert_eq!(
        json["kind"], "SolutionVersionWatch",
        "-o json is the Kubernetes object"
    );
    assert_eq!(json["status"]["jobs"].as_array().map(Vec::len), Some(200));
    assert_eq!(json["status"]["counts"]["total"], 237);
    assert!(json["metadata"].get("managedFields").is_none());
}

/// Synced watches in two namespaces, one labelled: `list` of one namespace, of all (-A) and by
/// label (-l), as a table, without headers, and as a List in json and yaml.
#[tokio::test]
async fn list_shows_every_watch_of_a_namespace_or_of_all_by_label() {
    let a = Fixture::start("plugin-list-a").await;
    let b = Fixture::start("plugin-list-b").await;
    let sv_a = support::solution_version_arn("plugin-list-a");
    let sv_b = support::solution_version_arn("plugin-list-b");
    a.emu.generate(&sv_a, 3, "ACTIVE", "nightly").await;
    b.emu.generate(&sv_b, 2, "CREATE FAILED", "broken").await;
    a.apply_watch("alpha", &sv_a, "").await;
    b.apply_watch("beta", &sv_b, "").await;
    b.apply_watch_labelled("gamma", &sv_b, "tier: gold").await;
    a.wait_status("alpha", Duration::from_secs(30), "3 jobs", |w| {
        total(w) == Some(3)
    })
    .await;
    for name in ["beta", "gamma"] {
        b.wait_status(name, Duration::from_secs(30), "2 jobs", |w| {
            total(w) == Some(2)
        })
        .await;
    }

    let one = plugin(&["personalize-watch", "list", "-n", &b.ns], None);
    let lines: Vec<&str> = one.lines().collect();
    assert!(
        lines[0].starts_with("NAME ") && lines[0].ends_with("AGE"),
        "{one}"
    );
    assert_eq!(lines.len(), 3, "a header and two watches:\n{one}");
    assert!(
        lines[1].starts_with("beta ") && lines[1].contains("broken-"),
        "{one}"
    );

    let all = plugin(&["personalize-watch", "list", "-A", "--no-headers"], None);
    let ours: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&a.ns) || l.starts_with(&b.ns))
        .collect();
    assert_eq!(ours.len(), 3, "{all}");
    let alpha: Vec<&str> = ours[0].split_whitespace().collect();
    assert_eq!(alpha[..4], [a.ns.as_str(), "alpha", "True", "3"], "{all}");
    assert!(!all.contains("NAMESPACE"), "--no-headers:\n{all}");

    let gold = plugin(
        &[
            "personalize-watch",
            "list",
            "-A",
            "-l",
            "tier=gold",
            "-o",
            "yaml",
        ],
        None,
    );
    let list: serde_json::Value = serde_yaml::from_str(&gold).expect("-o yaml prints YAML");
    assert_eq!(list["kind"], "List", "{gold}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .map(|i| {
            i.iter()
                .filter_map(|w| w["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["gamma"], "{gold}");

    let wide = plugin(
        &["personalize-watch", "list", "-n", &a.ns, "-o", "wide"],
        None,
    );
    assert!(wide.contains(&sv_a) && wide.contains(" ago"), "{wide}");

    let none = kubectl_with_plugin(
        &[
            "personalize-watch",
            "list",
            "-n",
            "default",
            "-l",
            "tier=none",
        ],
        None,
    );
    assert!(none.success && none.stdout.is_empty(), "{}", none.text());
    assert!(
        none.stderr
            .contains("No resources found in default namespace."),
        "{}",
        none.text()
    );
}

/// Help names the kubectl prefix and only the plugin's commands; kubectl's completion asks the
/// plugin (through kubectl_complete-personalize_watch) and offers the namespace's watches.
#[tokio::test]
async fn help_and_kubectl_completion_speak_as_kubectl_personalize_watch() {
    let help = plugin(&["personalize-watch", "--help"], None);
    assert!(
        help.contains("Usage: kubectl personalize-watch <COMMAND>"),
        "{help}"
    );
    assert!(
        help.contains("  jobs ") && help.contains("  list "),
        "{help}"
    );
    for operator_only in ["run", "crd", "__complete"] {
        assert!(
            !help
                .lines()
                .any(|l| l.trim_start().starts_with(operator_only)),
            "{help}"
        );
    }

    let f = Fixture::start("plugin-complete").await;
    let sv = support::solution_version_arn("plugin-complete");
    f.apply_watch("nightly", &sv, "").await;
    f.apply_watch("weekly", &sv, "").await;
    let names = plugin(
        &["__complete", "personalize-watch", "jobs", "-n", &f.ns, ""],
        None,
    );
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["nightly", "weekly", ":4"],
        "{names}"
    );
    let commands = plugin(&["__complete", "personalize-watch", "l"], None);
    assert!(commands.starts_with("list\n:4"), "{commands}");
    let formats = plugin(&["__complete", "personalize-watch", "list", "-o", ""], None);
    assert!(formats.starts_with("json\nwide\nyaml\n:4"), "{formats}");
}
