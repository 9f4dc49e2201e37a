//! The GitOps integrations of docs/gitops.md, tested on real objects from the control plane:
//! the Argo CD Lua health check (run by a Lua 5.1 interpreter), kstatus (the library Flux uses),
//! `kubectl wait`, Argo Events manifests against Argo Events' own CRDs and schema, and the
//! Prometheus rules (parsed the way promtool does, names checked against real metrics). Also the
//! demo, run as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use personalize_emulator::faults::{FaultKind, FaultRule};
use serde_json::json;

use crate::support::command::run_program;
use crate::support::markdown::blocks_in;
use crate::support::{self, CommandOutput, Fixture, condition, kubectl, kubectl_with_input, total};

fn docs(path: &str) -> PathBuf {
    support::repo_root().join("docs/gitops").join(path)
}

/// The alert rules, a plain rule file in the chart (which renders them as a PrometheusRule).
fn alert_rules() -> PathBuf {
    support::repo_root().join("charts/personalize-watch/files/prometheus-rules.yaml")
}

fn run_with_input(program: &Path, args: &[&str], input: &str) -> CommandOutput {
    run_program(program, args, Some(input))
}

/// name -> status, from "NAME STATUS ..." lines.
fn statuses(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

const ARGO_CD_RUNNER: &str = r#"
import json, sys
from lupa.lua51 import LuaRuntime
lua = LuaRuntime(unpack_returned_tuples=True)
assert lua.eval("_VERSION") == "Lua 5.1", lua.eval("_VERSION")
script = open(sys.argv[1]).read()
check = lua.eval("function(obj) " + script + " end")
def to_lua(v):
    if isinstance(v, dict):
        t = lua.table()
        for k, x in v.items():
            t[k] = to_lua(x)
        return t
    if isinstance(v, list):
        t = lua.table()
        for i, x in enumerate(v):
            t[i + 1] = to_lua(x)
        return t
    return v
for item in json.load(sys.stdin)["items"]:
    hs = check(to_lua(item))
    print(item["metadata"]["name"], hs["status"], hs["message"])
"#;

/// Six watches in the states the GitOps tools tell apart (healthy, degraded, progressing,
/// suspended, stuck, overdue), listed by a real operator: the objects as `kubectl get -o json`
/// gives them and the operator's /metrics, made once for the tests of each consumer below. The
/// objects stay in the API server for `kubectl wait`.
struct Watches {
    ns: String,
    objects: String,
    metrics: support::prometheus::Scrape,
}

static WATCHES: std::sync::OnceLock<Watches> = std::sync::OnceLock::new();

/// The watches, made by the first test that asks (on a runtime of its own: each test has one).
fn watches() -> &'static Watches {
    WATCHES.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .expect("a runtime")
                .block_on(make_watches())
        })
        .join()
        .expect("the GitOps watches were made")
    })
}

async fn make_watches() -> Watches {
    let f = Fixture::start("gitops").await;
    let healthy = support::solution_version_arn("healthy");
    let degraded = support::solution_version_arn("degraded");
    let progressing = support::solution_version_arn("progressing");
    f.emu.generate(&healthy, 3, "ACTIVE", "ok").await;
    f.emu.generate(&degraded, 3, "ACTIVE", "denied").await;
    f.emu.generate(&progressing, 3, "ACTIVE", "slow").await;
    f.emu
        .fault(
            FaultRule::new(FaultKind::AccessDenied)
                .times(100000)
                .for_subject(&degraded),
        )
        .await;
    f.emu
        .fault(
            FaultRule::new(FaultKind::Throttle)
                .times(100000)
                .for_subject(&progressing),
        )
        .await;
    f.apply_watch("healthy", &healthy, "").await;
    f.apply_watch("degraded", &degraded, "").await;
    f.apply_watch("progressing", &progressing, "").await;
    f.apply_watch("suspended", &healthy, "  suspend: true\n")
        .await;
    // A job running for 10 minutes, past stuckAfter; a newest job 10 minutes old, past
    // expectNewJobWithin.
    let stuck = support::solution_version_arn("stuck");
    let late = support::solution_version_arn("late");
    for (sv, status) in [(&stuck, "IN PROGRESS"), (&late, "ACTIVE")] {
        f.emu
            .generate_batch(&personalize_emulator::store::Batch {
                solution_version_arn: sv.clone(),
                count: 1,
                status: Some(status.into()),
                name_prefix: Some("old".into()),
                age_seconds: 600,
                ..Default::default()
            })
            .await;
    }
    f.apply_watch("stuck", &stuck, "  stuckAfter: 5m\n").await;
    f.apply_watch("late", &late, "  expectNewJobWithin: 5m\n")
        .await;
    f.wait_status("stuck", Duration::from_secs(30), "a stuck job", |w| {
        w.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.stuck == 1)
    })
    .await;
    f.wait_status("late", Duration::from_secs(30), "overdue", |w| {
        condition(w, "Overdue").map(|c| c.0) == Some("True".into())
    })
    .await;
    f.wait_status("healthy", Duration::from_secs(30), "healthy listed", |w| {
        total(w) == Some(3)
    })
    .await;
    f.wait_status(
        "degraded",
        Duration::from_secs(30),
        "degraded stalled",
        |w| condition(w, "Stalled").map(|c| c.0) == Some("True".into()),
    )
    .await;
    f.wait_status(
        "progressing",
        Duration::from_secs(30),
        "progressing reconciling",
        |w| condition(w, "Reconciling").map(|c| c.0) == Some("True".into()),
    )
    .await;
    f.wait_status("suspended", Duration::from_secs(30), "suspended", |w| {
        condition(w, "Ready").map(|c| c.1) == Some("Suspended".into())
    })
    .await;
    let CommandOutput {
        success: ok,
        stdout: objects,
        stderr: err,
    } = kubectl(&["get", "svw", "-n", &f.ns, "-o", "json"]);
    assert!(ok, "{err}");
    Watches {
        ns: f.ns.clone(),
        objects,
        metrics: f.op.metrics().await,
    }
}

#[test]
fn argo_cd_health_check_reads_real_watch_objects() {
    let Watches { objects, .. } = watches();
    let healthy = support::solution_version_arn("healthy");
    // Argo CD's health check, in Lua 5.1.
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = run_with_input(
        &support::tool("python"),
        &[
            "-c",
            ARGO_CD_RUNNER,
            docs("argocd-health.lua").to_str().unwrap(),
        ],
        objects,
    );
    assert!(ok, "the Lua health check failed: {err}");
    let argo = statuses(&out);
    assert_eq!(argo["healthy"], "Healthy", "{out}");
    assert_eq!(argo["degraded"], "Degraded", "{out}");
    assert_eq!(argo["progressing"], "Progressing", "{out}");
    assert_eq!(argo["suspended"], "Suspended", "{out}");
    assert_eq!(argo["stuck"], "Degraded", "{out}");
    assert_eq!(argo["late"], "Degraded", "{out}");
    // A watch no controller has touched yet is Progressing too.
    let unlisted = json!({"items": [{"apiVersion": "personalize-watch.dev/v1alpha1", "kind": "SolutionVersionWatch",
        "metadata": {"name": "new", "generation": 1}, "spec": {"solutionVersionArn": healthy}}]});
    let CommandOutput {
        success: ok,
        stdout: out,
        ..
    } = run_with_input(
        &support::tool("python"),
        &[
            "-c",
            ARGO_CD_RUNNER,
            docs("argocd-health.lua").to_str().unwrap(),
        ],
        &unlisted.to_string(),
    );
    assert!(ok && out.starts_with("new Progressing"), "{out}");

    // The documented command installs it into argocd-cm.
    // Both may exist from an earlier run against the same control plane.
    kubectl(&["create", "namespace", "argocd"]);
    kubectl(&["create", "configmap", "argocd-cm", "-n", "argocd"]);
    let command = blocks_in(
        &std::fs::read_to_string(support::repo_root().join("docs/gitops.md")).unwrap(),
        "bash",
    )
    .into_iter()
    .find(|b| b.contains("argocd-cm"))
    .expect("docs/gitops.md shows how to install the health check");
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{command}")])
        .current_dir(support::repo_root())
        .env("KUBECONFIG", &support::control_plane().kubeconfig)
        .env(
            "PATH",
            format!(
                "{}:{}",
                support::tool("kubectl").parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let CommandOutput {
        success: ok,
        stdout: installed,
        ..
    } = kubectl(&[
        "get",
        "configmap",
        "argocd-cm",
        "-n",
        "argocd",
        "-o",
        "jsonpath={.data.resource\\.customizations\\.health\\.personalize-watch\\.dev_SolutionVersionWatch}",
    ]);
    assert!(ok);
    assert_eq!(
        installed,
        std::fs::read_to_string(docs("argocd-health.lua")).unwrap()
    );

    // The ConfigMap in the docs carries the same script.
    let cm: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(docs("argocd-cm.yaml")).unwrap()).unwrap();
    let embedded =
        cm["data"]["resource.customizations.health.personalize-watch.dev_SolutionVersionWatch"]
            .as_str()
            .unwrap();
    assert_eq!(
        embedded,
        std::fs::read_to_string(docs("argocd-health.lua")).unwrap()
    );
}

#[test]
fn kstatus_reads_real_watch_objects_as_flux_does() {
    let Watches { objects, .. } = watches();
    // kstatus, as Flux computes health.
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = run_with_input(&support::tool("kstatus"), &[], objects);
    assert!(ok, "{err}");
    let flux = statuses(&out);
    assert_eq!(flux["healthy"], "Current", "{out}");
    assert_eq!(flux["suspended"], "Current", "{out}");
    assert_eq!(flux["degraded"], "Failed", "{out}");
    assert_eq!(flux["progressing"], "InProgress", "{out}");
    // kstatus reads Ready, Reconciling and Stalled only: a stuck or overdue watch that lists
    // is Current (its Overdue condition and counts.stuck are for Argo CD and alerts).
    assert_eq!(flux["stuck"], "Current", "{out}");
    assert_eq!(flux["late"], "Current", "{out}");
}

#[test]
fn kubectl_wait_reads_the_ready_and_stalled_conditions() {
    let Watches { ns, .. } = watches();
    // kubectl wait on the Ready condition.
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = kubectl(&[
        "wait",
        "--for=condition=Ready",
        "svw/healthy",
        "-n",
        ns,
        "--timeout=20s",
    ]);
    assert!(ok && out.contains("condition met"), "{out}{err}");
    let CommandOutput { success: ok, .. } = kubectl(&[
        "wait",
        "--for=condition=Ready",
        "svw/degraded",
        "-n",
        ns,
        "--timeout=2s",
    ]);
    assert!(!ok, "kubectl wait must not pass on a stalled watch");
    let CommandOutput { success: ok, .. } = kubectl(&[
        "wait",
        "--for=condition=Stalled",
        "svw/degraded",
        "-n",
        ns,
        "--timeout=10s",
    ]);
    assert!(ok);
}

#[test]
fn alert_rules_name_exported_metrics_with_stuck_and_overdue_values() {
    let Watches { ns, metrics, .. } = watches();
    // The alert rules name metrics this operator really exports.
    let rules = std::fs::read_to_string(alert_rules()).unwrap();
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("personalize_watch_"))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 6);
    for name in names {
        assert!(metrics.has(name), "{name} is not an exported metric");
    }
    // What the stuck and overdue rules compare, as /metrics says it.
    let series = |name: &str, watch: &str| {
        metrics.value(&format!("{name}{{namespace=\"{ns}\",name=\"{watch}\"}}"))
    };
    assert_eq!(series("personalize_watch_jobs_stuck", "stuck"), Some(1.0));
    assert_eq!(series("personalize_watch_jobs_stuck", "late"), Some(0.0));
    let age = series("personalize_watch_seconds_since_newest_job", "late").unwrap_or(0.0);
    let within = series("personalize_watch_expect_new_job_within_seconds", "late");
    assert!(
        within == Some(300.0) && age > 300.0,
        "{age} {within:?}\n{}",
        metrics.text()
    );
    assert_eq!(
        series("personalize_watch_expect_new_job_within_seconds", "healthy"),
        None
    );
}

#[tokio::test]
async fn argo_events_manifests_are_accepted_with_argo_events_crds() {
    let dir = PathBuf::from(std::env::var("PW_ARGO_EVENTS").unwrap_or_else(|_| {
        panic!("PW_ARGO_EVENTS is not set: run `make test`, or eval \"$(hack/tools.sh)\"")
    }));
    let client = support::client().await;
    for (file, crd) in [
        ("argoproj.io_eventsources.yaml", "eventsources.argoproj.io"),
        ("argoproj.io_sensors.yaml", "sensors.argoproj.io"),
    ] {
        support::install_crd_file(&dir.join("manifests/base/crds").join(file), crd);
    }
    let ns = support::namespace(&client, "events").await;
    for file in ["eventsource.yaml", "sensor.yaml"] {
        let text = std::fs::read_to_string(docs("argo-events").join(file)).unwrap();
        let CommandOutput {
            success: ok,
            stdout: out,
            stderr: err,
        } = kubectl_with_input(&["apply", "-n", &ns, "-f", "-"], Some(&text));
        assert!(ok, "{file} refused: {err}");
        assert!(out.contains("created"), "{out}");
    }
    // The CRDs accept any spec; Argo Events' own JSON schema checks the fields.
    let script = r##"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
for path, kind in [(sys.argv[2], "EventSource"), (sys.argv[3], "Sensor")]:
    doc = yaml.safe_load(open(path))
    jsonschema.validate(doc, {"$ref": "#/definitions/io.argoproj.events.v1alpha1." + kind, "definitions": schema["definitions"]})
    print(kind, "valid")
"##;
    let out = Command::new(support::tool("python"))
        .args([
            "-c",
            script,
            dir.join("api/jsonschema/schema.json").to_str().unwrap(),
            docs("argo-events/eventsource.yaml").to_str().unwrap(),
            docs("argo-events/sensor.yaml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "EventSource valid\nSensor valid\n"
    );
}

#[tokio::test]
async fn flux_kustomization_is_accepted_with_flux_crds() {
    let dir = PathBuf::from(
        std::env::var("PW_FLUX_KUSTOMIZE")
            .expect("PW_FLUX_KUSTOMIZE: run make test, or eval \"$(hack/tools.sh)\""),
    );
    support::install_crd_file(
        &dir.join("config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
        "kustomizations.kustomize.toolkit.fluxcd.io",
    );
    // It may exist from an earlier run against the same control plane.
    kubectl(&["create", "namespace", "flux-system"]);
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl(&[
        "apply",
        "--dry-run=server",
        "-f",
        docs("flux-kustomization.yaml").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
}

/// Every alert fires on its input series, stays quiet where it should (an old failure, a watch
/// without an expectation) and resolves: `promtool test rules` on
/// docs/gitops/prometheus-rules.test.yaml. A test expecting the failure alert for old failures
/// fails, so the check can fail.
#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let promtool = support::tool("promtool");
    let tests = docs("prometheus-rules.test.yaml");
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("SUCCESS"), "{printed}");

    let text = std::fs::read_to_string(&tests).unwrap();
    let rules = alert_rules();
    let wrong = text
        .replace(
            "../../charts/personalize-watch/files/prometheus-rules.yaml",
            rules.to_str().unwrap(),
        )
        .replacen(
            "alertname: PersonalizeBatchInferenceJobFailed\n        exp_alerts: []",
            "alertname: PersonalizeBatchInferenceJobFailed\n        exp_alerts:\n          \
             - exp_labels: {severity: warning, namespace: team-b, name: recs}",
            1,
        );
    assert_ne!(wrong, text);
    let path =
        std::env::temp_dir().join(format!("pw-wrong-alert-test-{}.yaml", std::process::id()));
    std::fs::write(&path, wrong).unwrap();
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        !out.status.success(),
        "an alert for old failures was expected and promtool agreed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn prometheus_rules_parse_and_the_prometheusrule_matches() {
    let out = Command::new(support::tool("promrules"))
        .arg(alert_rules())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 9 rules found"));
    // A broken expression is refused, so the check can fail.
    let broken = std::env::temp_dir().join(format!("pw-broken-rules-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        "groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: sum(rate(x[5m]) >\n",
    )
    .unwrap();
    let out = Command::new(support::tool("promrules"))
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_file(broken).unwrap();

    let plain: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(alert_rules()).unwrap()).unwrap();
    let wrapped: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(docs("prometheusrule.yaml")).unwrap())
            .unwrap();
    assert_eq!(plain["groups"], wrapped["spec"]["groups"]);
    let client = support::client().await;
    support::install_prometheus_operator_crds(&["prometheusrules"]);
    let ns = support::namespace(&client, "rules").await;
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl(&[
        "apply",
        "--dry-run=server",
        "-n",
        &ns,
        "-f",
        docs("prometheusrule.yaml").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");

    // The chart renders the same groups, opt-in, and the API server accepts its PrometheusRule.
    let rendered = support::command::helm(&[
        "template",
        "rules",
        "charts/personalize-watch",
        "--namespace",
        &ns,
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--show-only",
        "templates/prometheusrule.yaml",
    ]);
    assert!(rendered.success, "{}", rendered.stderr);
    let chart: serde_yaml::Value = serde_yaml::from_str(&rendered.stdout).unwrap();
    assert_eq!(plain["groups"], chart["spec"]["groups"]);
    let applied = kubectl_with_input(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&rendered.stdout),
    );
    assert!(applied.success, "{}", applied.stderr);
}

/// `make demo`, non-interactively, as a new user runs it: the simulated service starts, runs,
/// completes and fails jobs with no script touching the emulator, and the Events follow.
#[test]
fn demo_shows_counts_and_the_simulated_service_moving() {
    // The README's first set-up command (the block "setup").
    let make_demo = crate::readme::commands(&support::markdown::readme_block("setup"))
        .into_iter()
        .next()
        .expect("the setup block's first command");
    assert_eq!(make_demo, "make demo");
    let out = Command::new("bash")
        .args(["-c", &make_demo])
        .env_remove("MAKEFLAGS")
        .env("DEMO_EXIT", "1")
        .env_remove("KUBECONFIG")
        .current_dir(support::repo_root())
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "==> starting a local Kubernetes control plane",
        "==> starting the Personalize emulator",
        "==> installing the SolutionVersionWatch CRD",
        "==> running the operator",
        "==> applying examples/demo.yaml",
        "==> watching the simulated service",
        "==> kubectl personalize-watch jobs movie-recs",
        "==> stopping everything the demo started",
    ] {
        assert!(
            stdout.contains(step),
            "missing progress line {step:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("movie-recs   True    12      2         1         8        1"),
        "{stdout}"
    );
    let event = |reason: &str, text: &str| {
        stdout
            .lines()
            .any(|l| l.contains(reason) && l.contains("movie-recs") && l.contains(text))
    };
    assert!(
        event(
            "BatchInferenceJobCompleted",
            "Batch inference job live-1 completed"
        ),
        "{stdout}"
    );
    assert!(
        event(
            "BatchInferenceJobFailed",
            "Batch inference job live-2 failed: AccessDenied"
        ),
        "{stdout}"
    );
    assert!(
        event(
            "BatchInferenceJobStuck",
            "nightly-2026-11-28 has been IN PROGRESS for"
        ),
        "{stdout}"
    );
    assert!(
        event(
            "NoRecentBatchInferenceJob",
            "No new batch inference job since 2026-11-28T04:00:00Z"
        ),
        "{stdout}"
    );
    // The plugin's table shows the simulated jobs, then the counts and conditions.
    let table = stdout
        .split("==> kubectl personalize-watch jobs movie-recs")
        .nth(1)
        .unwrap_or_default();
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("NAME "),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("live-2 ") && l.contains("CREATE FAILED")),
        "{table}"
    );
    assert!(table.contains("Overdue"), "{table}");
    demo_followed_a_retraining(&stdout);
}

/// The demo's solution watch: a job of a version made after the watch was applied is counted
/// and announced, and the spec is the one applied (generation 1).
fn demo_followed_a_retraining(stdout: &str) {
    let part = stdout
        .split("==> watching a solution follow its retraining")
        .nth(1)
        .and_then(|rest| rest.split("==> the Events").next())
        .unwrap_or_default();
    let value = |prefix: &str| {
        part.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_default()
            .to_string()
    };
    let applied = value("spec at apply: ");
    assert!(applied.contains("solution/similar-items"), "{part}");
    assert_eq!(
        value("spec now: "),
        format!("{applied} (generation 1)"),
        "{part}"
    );
    let announced = value("announced: ");
    assert!(
        (announced.starts_with("BatchInferenceJobCompleted similar-")
            || announced.starts_with("BatchInferenceJobFailed similar-"))
            && announced.contains(" on version "),
        "{part}"
    );
    assert!(
        part.lines()
            .any(|l| l.starts_with("NAME ") && l.contains("VERSIONS")),
        "kubectl get svw -o wide has the VERSIONS column:\n{part}"
    );
    let versions = value("versions with jobs: ")
        .parse::<u32>()
        .unwrap_or_default();
    assert!(versions >= 2, "{part}");
    assert!(
        part.lines()
            .any(|l| l.starts_with("NAME ") && l.contains(" VERSION ")),
        "the plugin's table names each job's version:\n{part}"
    );
}

/// docs/gitops/argo-events run by Argo Events' own code (hack/argo-events-check): the resource
/// event sources against this control plane, the Sensor's filters on what they dispatch.
struct ArgoEvents {
    child: std::process::Child,
    triggers: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl ArgoEvents {
    fn start(ns: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(support::tool("argo-events-check"))
            .args([
                "--eventsource",
                docs("argo-events/eventsource.yaml").to_str().unwrap(),
            ])
            .args([
                "--sensor",
                docs("argo-events/sensor.yaml").to_str().unwrap(),
            ])
            .args(["--namespace", ns])
            .env("KUBECONFIG", &support::control_plane().kubeconfig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("argo-events-check starts");
        let stdout = child.stdout.take().unwrap();
        let triggers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = triggers.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v.get("dependency").is_some()
                {
                    seen.lock().unwrap().push(v);
                }
            }
        });
        ArgoEvents { child, triggers }
    }

    fn triggers(&self) -> Vec<serde_json::Value> {
        self.triggers.lock().unwrap().clone()
    }

    fn stop(mut self) -> Vec<serde_json::Value> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        self.triggers()
    }
}

impl Drop for ArgoEvents {
    fn drop(&mut self) {
        if self.child.kill().is_ok() {
            self.child.wait().unwrap();
        }
    }
}

/// Each failed job triggers the Sensor once; polls that leave the failed count alone trigger
/// nothing; a restarted EventSource replays nothing.
#[tokio::test]
async fn argo_events_fire_once_per_failure_and_never_on_restart() {
    let f = Fixture::start("argoevents").await;
    let sv = support::solution_version_arn("argoevents");
    let arns = f.emu.generate(&sv, 3, "IN PROGRESS", "job").await;
    f.apply_watch("argo", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("argo", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(3)
    })
    .await;
    let fail = |i: usize| {
        let f = &f;
        let arn = arns[i].clone();
        async move {
            f.emu
                .set_status(&arn, "CREATE FAILED", Some("argo events test"))
                .await;
            let job = format!("job-{}", i + 1);
            support::wait_for(Duration::from_secs(30), "the failure Event", || async {
                (f.job_events("BatchInferenceJobFailed", &job).await == 1).then_some(())
            })
            .await;
        }
    };
    fail(0).await;

    // Started after job-1's Event: it is not replayed.
    let first = ArgoEvents::start(&f.ns);
    tokio::time::sleep(Duration::from_secs(5)).await;
    fail(1).await;
    support::wait_for(Duration::from_secs(30), "two triggers", || async {
        (first.triggers().len() >= 2).then_some(())
    })
    .await;
    // Polls keep writing status; the failed count does not change: no more triggers.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let fired = first.stop();
    let by = |fired: &[serde_json::Value], dep: &str| {
        fired
            .iter()
            .filter(|t| t["dependency"] == dep)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed = by(&fired, "job-failed");
    assert_eq!(failed.len(), 1, "{fired:?}");
    assert!(
        failed[0]["message"].as_str().unwrap().contains("job-2"),
        "{fired:?}"
    );
    assert_eq!(by(&fired, "watch-status").len(), 1, "{fired:?}");
    assert_eq!(by(&fired, "watch-status")[0]["failed"], "2");

    // A restart replays neither Event nor status.
    let second = ArgoEvents::start(&f.ns);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        second.triggers().is_empty(),
        "replayed: {:?}",
        second.triggers()
    );
    fail(2).await;
    support::wait_for(Duration::from_secs(30), "two triggers", || async {
        (second.triggers().len() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let fired = second.stop();
    assert_eq!(by(&fired, "job-failed").len(), 1, "{fired:?}");
    assert!(
        by(&fired, "job-failed")[0]["message"]
            .as_str()
            .unwrap()
            .contains("job-3")
    );
    assert_eq!(by(&fired, "watch-status").len(), 1, "{fired:?}");
}
