//! The monitoring stack of the tests: prometheus-operator and Prometheus, both built from their
//! Go modules (hack/tools.sh), run on the host against the test control plane.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use serde_json::Value;

use crate::node::Release;
use crate::support::command::run;
use crate::support::{self, kubectl, kubectl_with_input, tool, wait_for};

/// The Prometheus object the tests create; prometheus-operator names what it generates after it.
const PROMETHEUS: &str = "watchers";

/// prometheus-operator and the Prometheus server it configures, as processes on the host.
///
/// prometheus-operator runs against the test control plane and does its real work: it selects
/// the chart's ServiceMonitor and PrometheusRule for the Prometheus object `watchers`, writes the
/// generated configuration into the Secret `prometheus-watchers` and the rules into the ConfigMap
/// `prometheus-watchers-rulefiles-0`. The object asks for no replicas (no image can be pulled
/// here), so the harness plays the StatefulSet's part: it puts the Secret and ConfigMap where
/// the pod would mount them, under its own folder, and runs Prometheus on that configuration.
/// Prometheus discovers the metrics Service's endpoints through the API server with a
/// ServiceAccount token (the Prometheus object's `apiserverConfig`) and scrapes the pod's IP.
pub(crate) struct Monitoring {
    dir: PathBuf,
    operator: Option<Child>,
    prometheus: Option<Child>,
    url: String,
}

impl Monitoring {
    /// The stack for `release`, whose chart was installed with the ServiceMonitor and the
    /// PrometheusRule on (after `install_prometheus_operator_crds`); returns once Prometheus is
    /// ready (the first scrape may be pending).
    pub(crate) async fn start(release: &Release) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pw-monitoring-{}-{}",
            release.ns,
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("monitoring folder");
        // Built first and filled in as each part starts, so that a panic on the way (a timeout
        // below) still stops what started and removes the folder.
        let mut stack = Monitoring {
            dir,
            operator: None,
            prometheus: None,
            url: String::new(),
        };
        discovery_credentials(release, &stack.dir).await;
        apply_prometheus_object(&release.ns, &stack.dir);
        stack.operator = Some(start_prometheus_operator(&release.ns, &stack.dir));
        let config = generated_configuration(release, &stack.dir).await;
        let (prometheus, url) = start_prometheus(&stack.dir, &config);
        stack.prometheus = Some(prometheus);
        stack.url = url;
        stack.ready().await;
        stack
    }

    async fn ready(&self) {
        wait_for(Duration::from_secs(60), "Prometheus ready", || async {
            let out = Command::new("curl")
                .args(["-fsS", "--max-time", "2", &format!("{}/-/ready", self.url)])
                .output()
                .ok()?;
            out.status.success().then_some(())
        })
        .await;
    }

    /// The result of an instant query: its `data.result` (a list of {metric, value}).
    pub(crate) fn query(&self, promql: &str) -> Vec<Value> {
        let body = self.api(
            &["--get", "--data-urlencode", &format!("query={promql}")],
            "/api/v1/query",
        );
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alerts the rules hold now (pending or firing), each {labels, annotations, state}.
    pub(crate) fn alerts(&self) -> Vec<Value> {
        let body = self.api(&[], "/api/v1/alerts");
        body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn api(&self, args: &[&str], path: &str) -> Value {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .arg(format!("{}{path}", self.url));
        let out = run(command, None);
        let body: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "Prometheus answered {path} with no JSON ({e}): {}",
                out.text()
            )
        });
        assert_eq!(
            body["status"], "success",
            "Prometheus refused {args:?} {path}: {body}"
        );
        body
    }

    /// Polls `check` every 500 ms until it returns Some; after `within`, panics with what
    /// Prometheus scrapes and what both processes logged.
    pub(crate) async fn eventually<T>(
        &self,
        within: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = check() {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {within:?} waiting for {what}\n{}",
                    self.diagnosis()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The scrape targets' health and the tail of both processes' logs.
    pub(crate) fn diagnosis(&self) -> String {
        let targets = self.api(&[], "/api/v1/targets");
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "targets: {}\nprometheus-operator:\n{}\nprometheus:\n{}",
            targets["data"]["activeTargets"],
            tail(read("operator.log")),
            tail(read("prometheus.log"))
        )
    }
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        for child in [&mut self.prometheus, &mut self.operator]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every CRD of prometheus-operator's release (it checks for them at start), from its Go module.
pub(crate) fn install_prometheus_operator_crds() {
    support::install_prometheus_operator_crds(&[
        "alertmanagerconfigs",
        "alertmanagers",
        "podmonitors",
        "probes",
        "prometheusagents",
        "prometheuses",
        "prometheusrules",
        "scrapeconfigs",
        "servicemonitors",
        "thanosrulers",
    ]);
}

/// What an in-cluster Prometheus would have: a ServiceAccount allowed to discover targets in the
/// release's namespace, its token, and the cluster's CA (the namespace's kube-root-ca.crt).
async fn discovery_credentials(release: &Release, dir: &Path) {
    let ns = &release.ns;
    let rbac = support::dedent(&format!(
        r#"
        apiVersion: v1
        kind: ServiceAccount
        metadata: {{name: prometheus, namespace: {ns}}}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata: {{name: prometheus-discovery, namespace: {ns}}}
        rules:
          - apiGroups: [""]
            resources: [services, endpoints, pods]
            verbs: [get, list, watch]
          - apiGroups: [discovery.k8s.io]
            resources: [endpointslices]
            verbs: [get, list, watch]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata: {{name: prometheus-discovery, namespace: {ns}}}
        roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: prometheus-discovery}}
        subjects: [{{kind: ServiceAccount, name: prometheus, namespace: {ns}}}]
        "#
    ));
    kubectl_with_input(&["apply", "-f", "-"], Some(&rbac)).expect_success();
    let token = kubectl(&[
        "create",
        "token",
        "prometheus",
        "-n",
        ns,
        "--duration",
        "1h",
    ])
    .expect_success();
    std::fs::write(dir.join("token"), token.trim()).expect("token file");
    let maps: Api<ConfigMap> = Api::namespaced(release.client.clone(), ns);
    let ca = wait_for(Duration::from_secs(30), "kube-root-ca.crt", || async {
        maps.get_opt("kube-root-ca.crt")
            .await
            .ok()
            .flatten()?
            .data?
            .remove("ca.crt")
    })
    .await;
    std::fs::write(dir.join("ca.crt"), ca).expect("CA file");
}

/// The Prometheus object: every ServiceMonitor and PrometheusRule of its namespace, scraped and
/// evaluated each second, no replicas, and the API server reached with the files above.
fn apply_prometheus_object(ns: &str, dir: &Path) {
    let server = kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
    .expect_success();
    let yaml = support::dedent(&format!(
        r#"
        apiVersion: monitoring.coreos.com/v1
        kind: Prometheus
        metadata: {{name: {PROMETHEUS}, namespace: {ns}}}
        spec:
          replicas: 0
          version: v3.16.0
          scrapeInterval: 1s
          evaluationInterval: 1s
          serviceMonitorSelector: {{}}
          ruleSelector: {{}}
          apiserverConfig:
            host: {server}
            authorization: {{credentialsFile: {token}}}
            tlsConfig: {{caFile: {ca}}}
        "#,
        token = dir.join("token").display(),
        ca = dir.join("ca.crt").display(),
    ));
    kubectl_with_input(&["apply", "-f", "-"], Some(&yaml)).expect_success();
}

/// prometheus-operator with the admin's kubeconfig, limited to the release's namespace.
fn start_prometheus_operator(ns: &str, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("operator.log")).expect("operator log");
    let stdout = log.try_clone().expect("operator log");
    Command::new(tool("prometheus-operator"))
        .env("KUBECONFIG", &support::control_plane().kubeconfig)
        .args(["--namespaces", ns, "--web.listen-address", "127.0.0.1:0"])
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .expect("prometheus-operator starts")
}

/// The configuration prometheus-operator generated, as the pod would run it: the rule files
/// written where its paths point (`/etc/prometheus/` in the pod, the harness's folder here) and
/// the config-reloader's variables expanded. Waits until the chart's ServiceMonitor is in it.
async fn generated_configuration(release: &Release, dir: &Path) -> String {
    let secrets: Api<Secret> = Api::namespaced(release.client.clone(), &release.ns);
    let maps: Api<ConfigMap> = Api::namespaced(release.client.clone(), &release.ns);
    let job = format!("serviceMonitor/{}/", release.ns);
    let (config, rules) = wait_for(
        Duration::from_secs(60),
        "the configuration prometheus-operator generates from the chart's ServiceMonitor",
        || async {
            let secret = secrets
                .get_opt(&format!("prometheus-{PROMETHEUS}"))
                .await
                .ok()
                .flatten()?;
            let gz = secret.data?.remove("prometheus.yaml.gz")?;
            let config = gunzip(&gz.0);
            // The operator writes the rules' ConfigMap before the configuration that names it.
            let rules = maps
                .get_opt(&format!("prometheus-{PROMETHEUS}-rulefiles-0"))
                .await
                .ok()?
                .and_then(|m| m.data)
                .unwrap_or_default();
            config.contains(&job).then_some((config, rules))
        },
    )
    .await;
    let rules_dir = dir.join(format!(
        "etc/prometheus/rules/prometheus-{PROMETHEUS}-rulefiles-0"
    ));
    std::fs::create_dir_all(&rules_dir).expect("rules folder");
    for (file, text) in rules {
        std::fs::write(rules_dir.join(file), text).expect("rule file");
    }
    // The pod's config-reloader expands `$(VAR)` from the container's environment: the shard
    // (the one shard, 0) and the pod's name.
    config
        .replace(
            "/etc/prometheus/",
            &format!("{}/etc/prometheus/", dir.display()),
        )
        .replace("$(SHARD)", "0")
        .replace("$(POD_NAME)", &format!("prometheus-{PROMETHEUS}-0"))
}

fn gunzip(bytes: &[u8]) -> String {
    let mut command = Command::new("gzip");
    command.arg("-dc");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(bytes).expect("write to gzip");
    }
    let out = child.wait_with_output().expect("gzip output");
    assert!(
        out.status.success(),
        "gzip -dc failed on prometheus.yaml.gz"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_prometheus(dir: &Path, config: &str) -> (Child, String) {
    let file = dir.join("prometheus.yaml");
    std::fs::write(&file, config).expect("prometheus.yaml");
    let addr = format!("127.0.0.1:{}", support::free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    (child, format!("http://{addr}"))
}

/// The value of an instant query's sample.
pub(crate) fn value(sample: &Value) -> Option<f64> {
    sample.get("value")?.get(1)?.as_str()?.parse().ok()
}

/// The label `name` of each series or alert.
pub(crate) fn label<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item.get("metric")
        .or_else(|| item.get("labels"))?
        .get(name)?
        .as_str()
}
