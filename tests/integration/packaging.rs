//! Packaging: the Helm chart (real helm, server-side dry runs on the real API server), the
//! least-privilege RBAC doing the whole job, the Dockerfile (hadolint) and the image's binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::command::helm;
use crate::support::{
    self, CommandOutput, Emulator, Fixture, Operator, OperatorOptions, http, kubectl,
    kubectl_with_input, total, wait_for,
};

const CHART: &str = "charts/personalize-watch";

fn render(release: &str, namespace: &str, sets: &[&str]) -> String {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = helm(&args);
    assert!(ok, "helm template {sets:?} failed: {err}");
    out
}

fn server_dry_run(yaml: &str) {
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], Some(yaml));
    assert!(
        ok,
        "the API server refused the rendered chart: {err}\n{out}"
    );
}

#[test]
fn helm_lint_strict_passes() {
    let CommandOutput {
        success: ok,
        stdout: out,
        stderr: err,
    } = helm(&["lint", "--strict", CHART]);
    assert!(ok, "helm lint --strict: {out}{err}");
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn chart_crd_and_app_version_follow_the_crate() {
    let root = support::repo_root();
    let crd = std::fs::read_to_string(
        root.join("crds/solutionversionwatches.personalize-watch.dev.yaml"),
    )
    .unwrap();
    let chart_crd = std::fs::read_to_string(
        root.join(CHART)
            .join("crds/solutionversionwatches.personalize-watch.dev.yaml"),
    )
    .unwrap();
    assert!(
        crd == chart_crd,
        "the chart's crds/ differs from crds/: copy it (make crds)"
    );
    let chart = std::fs::read_to_string(root.join(CHART).join("Chart.yaml")).unwrap();
    let app_version = format!("appVersion: \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        chart.contains(&app_version),
        "Chart.yaml needs {app_version}"
    );
    // Artifact Hub's image list names the image of this version.
    let image = format!(
        "image: ghcr.io/personalize-watch/personalize-watch:{}",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        chart.contains(&image),
        "Chart.yaml's artifacthub.io/images needs {image}"
    );
}

/// One registry path everywhere a user reads it: the chart's default image, the README's image
/// and chart references, and where the release workflow pushes (ghcr.io, the repository's owner).
#[test]
fn the_chart_readme_and_release_workflow_name_one_registry_path() {
    let root = support::repo_root();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("charts/personalize-watch/values.yaml")).unwrap();
    let repository = values["image"]["repository"].as_str().unwrap_or_default();
    assert_eq!(repository, "ghcr.io/personalize-watch/personalize-watch");
    assert_eq!(
        values["image"]["tag"].as_str(),
        Some(""),
        "the tag defaults to the appVersion"
    );
    let (registry, image) = repository.rsplit_once('/').unwrap();
    let readme = read("README.md");
    let version = env!("CARGO_PKG_VERSION");
    for named in [
        format!("`{repository}:VERSION`"),
        format!("oci://{registry}/charts/personalize-watch --version {version}"),
    ] {
        assert!(readme.contains(&named), "README does not name {named}");
    }
    let workflow: serde_yaml::Value =
        serde_yaml::from_str(&read(".github/workflows/release.yml")).unwrap();
    let pushes_to = workflow["jobs"]["release"]["env"]["PW_REGISTRY"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(pushes_to, "ghcr.io/${{ github.repository_owner }}");
    assert_eq!(
        registry, "ghcr.io/personalize-watch",
        "the owner the chart's home names"
    );
    assert_eq!(
        image, "personalize-watch",
        "hack/release.sh pushes $PW_REGISTRY/personalize-watch"
    );
    assert!(read("hack/release.sh").contains(r#"repo="$PW_REGISTRY/personalize-watch""#));
}

#[tokio::test]
async fn chart_renders_value_sets_the_api_server_accepts() {
    let client = support::client().await;
    support::install_crds(&client).await;
    support::install_prometheus_operator_crds(&["servicemonitors"]);
    let ns = support::namespace(&client, "chart").await;
    let other = support::namespace(&client, "chart-b").await;
    let value_sets: Vec<Vec<String>> = vec![
        vec![],
        vec![format!("watchNamespace={{{ns},{other}}}"), "labelSelector=shard=a".into()],
        vec![
            "replicaCount=2".into(),
            "podDisruptionBudget.enabled=true".into(),
            "networkPolicy.enabled=true".into(),
            "metrics.serviceMonitor.enabled=true".into(),
            "aws.region=eu-west-1".into(),
            "aws.endpointUrl=https://personalize.eu-west-1.amazonaws.com".into(),
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/pw".into(),
        ],
        vec!["metrics.enabled=false".into(), "serviceAccount.create=false".into(), "serviceAccount.name=existing".into()],
        vec![
            "fullnameOverride=pw-custom".into(),
            "crds.install=true".into(),
            "aws.credentialsSecret=aws-creds".into(),
            "extraArgs={--max-backoff=10m}".into(),
            "revisionHistoryLimit=3".into(),
            "terminationGracePeriodSeconds=60".into(),
            "podSecurityContext.runAsUser=null".into(),
            "podSecurityContext.runAsGroup=null".into(),
            "metrics.serviceMonitor.enabled=true".into(),
            "metrics.serviceMonitor.scrapeTimeout=10s".into(),
            "metrics.grafanaDashboard.enabled=true".into(),
            format!("metrics.grafanaDashboard.namespace={other}"),
        ],
    ];
    for (i, sets) in value_sets.iter().enumerate() {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let yaml = render(&format!("pw{i}"), &ns, &sets);
        server_dry_run(&yaml);
        if sets.iter().any(|s| s.starts_with("replicaCount=2")) {
            assert!(
                yaml.contains("--leader-election"),
                "two replicas elect a leader"
            );
            assert!(
                !yaml.contains("type: Recreate"),
                "with leader election a rolling update hands over"
            );
            assert!(
                yaml.contains("kind: PodDisruptionBudget") && yaml.contains("kind: NetworkPolicy")
            );
            assert!(yaml.contains("kind: ServiceMonitor"));
        }
        if sets.iter().any(|s| s.starts_with("crds.install")) {
            assert!(
                yaml.contains("helm.sh/resource-policy: keep"),
                "the CRD outlives the release"
            );
            assert!(yaml.contains("secretRef:\n                name: aws-creds"));
            assert!(yaml.contains("- \"--max-backoff=10m\"") && yaml.contains("name: pw-custom"));
            assert!(
                !yaml.contains("runAsUser"),
                "OpenShift assigns the user: {yaml}"
            );
            assert!(yaml.contains("honorLabels: true") && yaml.contains("scrapeTimeout: 10s"));
            assert!(
                yaml.contains("grafana_dashboard: \"1\"")
                    && yaml.contains(&format!("name: pw-custom-dashboard\n  namespace: {other}")),
                "the dashboard's ConfigMap, in the namespace asked for"
            );
        }
        if sets.is_empty() {
            assert!(
                yaml.contains("type: Recreate"),
                "without leader election two operators never run at once"
            );
        }
        if sets.iter().any(|s| s.starts_with("watchNamespace")) {
            let cluster_roles: Vec<&str> = yaml
                .split("\n---")
                .filter(|d| d.contains("\nkind: ClusterRole\n"))
                // The roles aggregated into view/edit/admin are for people, not the operator.
                .filter(|d| !d.contains("rbac.authorization.k8s.io/aggregate-to-view"))
                .filter(|d| !d.contains("rbac.authorization.k8s.io/aggregate-to-edit"))
                .collect();
            assert_eq!(cluster_roles.len(), 1, "namespaced installs use Roles");
            assert!(
                cluster_roles[0].contains("resources: [\"namespaces\"]")
                    && cluster_roles[0].contains(&format!("resourceNames: [\"{ns}\",\"{other}\"]")),
                "the only cluster-wide rule reads the watched namespaces, by name: {}",
                cluster_roles[0]
            );
            assert_eq!(
                yaml.matches("\nkind: Role\n").count(),
                2,
                "a Role per watched namespace"
            );
        }
    }
    let default = render("pw", &ns, &[]);
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "type: RuntimeDefault",
        "drop:\n              - ALL",
        "path: /readyz",
        "path: /healthz",
    ] {
        assert!(default.contains(needle), "default render lacks {needle}");
    }
    assert!(!default.contains("--leader-election"));
}

#[test]
fn values_schema_refuses_bad_values_clearly() {
    for (set, expect) in [
        ("logFormat=xml", "logFormat"),
        ("replicaCount=0", "replicaCount"),
        ("aws.retryMode=sometimes", "retryMode"),
        ("defaultPollInterval=soon", "defaultPollInterval"),
        ("tpyo=1", "tpyo"),
        ("image.digest=latest", "digest"),
    ] {
        let CommandOutput {
            success: ok,
            stderr: err,
            ..
        } = helm(&["template", "pw", CHART, "--set", set]);
        assert!(!ok, "{set} was accepted");
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{set}: {err}"
        );
        assert!(
            err.contains(expect),
            "{set}: the message should name {expect}: {err}"
        );
    }
}

/// The README's install commands, run as written with `helm install` rendered by `helm template`
/// (the chart from this run's registry, as `make release` pushed it) and checked by the API server.
#[tokio::test]
async fn readme_install_commands_render_and_are_accepted() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).unwrap();
    let blocks: Vec<String> = support::markdown::blocks(&readme)
        .into_iter()
        .filter(|b| {
            b.name
                .as_deref()
                .is_some_and(|n| n.starts_with("helm-install-"))
        })
        .map(|b| b.body)
        .collect();
    assert_eq!(blocks.len(), 3, "README's helm-install-* blocks");
    for script in blocks {
        assert!(script.contains("helm install"), "{script}");
        // Namespaces the commands name may not exist here; the dry run creates nothing.
        for ns in ["personalize-watch", "team-a", "team-b"] {
            let _ = kubectl(&["create", "namespace", ns]);
        }
        let helpers = crate::support::dedent(
            r#"
            set -euo pipefail
            kubectl() { "$PW_KUBECTL_BIN" "$@" >&2; }
            "#,
        );
        // helm install renders (helm template), from this run's registry (the README's
        // ghcr.io chart is the one `make release` pushed there).
        let helm =
            crate::readme::helm_from_the_test_registry().replace("helm() {", "released_helm() {");
        let install = "helm() { if [ \"$1\" = install ]; then shift; released_helm template \"$@\"; else released_helm \"$@\"; fi; }\n";
        let wrapper = format!("{helpers}{helm}{install}{script}\n");
        let out = Command::new("bash")
            .args(["-c", &wrapper])
            .env("PW_HELM_BIN", support::tool("helm"))
            .env("PW_KUBECTL_BIN", support::tool("kubectl"))
            .env("KUBECONFIG", &support::control_plane().kubeconfig)
            .current_dir(support::repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8_lossy(&out.stdout);
        assert!(yaml.contains("kind: Deployment"));
        server_dry_run(&yaml);
    }
}

/// The operator does its whole job as the chart's ServiceAccount (impersonated), which may do
/// nothing else.
#[tokio::test]
async fn operator_works_with_the_charts_rbac_and_nothing_more() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "rbac").await;
    let release = format!("pw-{ns}");
    let yaml = render(
        &release,
        &ns,
        &[
            "replicaCount=2",
            "accountRoles.222222222222=arn:aws:iam::222222222222:role/reader",
        ],
    );
    let roles_cm = format!("{release}-personalize-watch-account-roles");
    // Only the ServiceAccount, RBAC objects and the account-roles ConfigMap: no pods run on a
    // bare API server.
    let docs: Vec<&str> = yaml
        .split("\n---")
        .filter(|d| {
            [
                "kind: ServiceAccount",
                "kind: ConfigMap",
                "kind: ClusterRole",
                "kind: Role",
                "Binding",
            ]
            .iter()
            .any(|k| d.contains(k))
        })
        .collect();
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl_with_input(&["apply", "-f", "-"], Some(&docs.join("\n---\n")));
    assert!(ok, "{err}");
    // The chart names the ServiceAccount after the release's full name.
    let sa = format!("system:serviceaccount:{ns}:{release}-personalize-watch");
    // RBAC reaches the authorizer's cache a moment after it is written.
    wait_for(Duration::from_secs(10), "the RBAC in effect", || {
        let sa = sa.clone();
        async move {
            let CommandOutput { stdout: out, .. } = kubectl(&[
                "auth",
                "can-i",
                "list",
                "solutionversionwatches.personalize-watch.dev",
                "--as",
                &sa,
                "-A",
            ]);
            (out.trim() == "yes").then_some(())
        }
    })
    .await;

    // A kubeconfig that authenticates as admin and impersonates the ServiceAccount.
    let kubeconfig = support::impersonating_kubeconfig(&sa, &format!("rbac-{ns}"));

    let emu = Emulator::start();
    let sv = support::solution_version_arn("rbac");
    let arns = emu.generate(&sv, 3, "IN PROGRESS", "job").await;
    let op = Operator::start(OperatorOptions {
        kubeconfig: kubeconfig.clone(),
        endpoint: &emu.url,
        // Scoped to the test's namespace so other tests' watches do not queue ahead (the
        // ClusterRole allows either).
        args: vec![
            "--watch-namespace".into(),
            ns.clone(),
            "--leader-election".into(),
            "--lease-name".into(),
            release.clone(),
            "--lease-namespace".into(),
            ns.clone(),
            "--account-roles".into(),
            format!("{ns}/{roles_cm}"),
        ],
        env: vec![],
    });
    op.wait_ready().await;
    let f = Fixture {
        client: client.clone(),
        ns: ns.clone(),
        emu,
        op,
    };
    f.apply_watch("rbac", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status(
        "rbac",
        Duration::from_secs(30),
        "status written as the ServiceAccount",
        |w| total(w) == Some(3),
    )
    .await;
    f.emu
        .set_status(&arns[0], "CREATE FAILED", Some("rbac test"))
        .await;
    wait_for(
        Duration::from_secs(15),
        "an Event published as the ServiceAccount",
        || async { (f.job_events("BatchInferenceJobFailed", "job-1").await > 0).then_some(()) },
    )
    .await;
    let leader = http::get(&f.op.admin_url, "/metrics").await.body;
    assert!(
        leader.contains("personalize_watch_leader 1"),
        "held the Lease as the ServiceAccount"
    );
    assert!(
        !f.op.logs().contains("Forbidden"),
        "no request was refused:\n{}",
        f.op.logs()
    );

    for (verb, resource) in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "configmaps"),
        ("delete", "solutionversionwatches.personalize-watch.dev"),
        ("update", "solutionversionwatches.personalize-watch.dev"),
        ("create", "pods"),
        ("delete", "events.events.k8s.io"),
        ("patch", "events.events.k8s.io"),
        ("list", "events"),
        ("get", "configmaps"),
        ("watch", "configmaps"),
    ] {
        let CommandOutput { stdout: out, .. } =
            kubectl(&["auth", "can-i", verb, resource, "-n", &ns, "--as", &sa]);
        assert_eq!(out.trim(), "no", "{sa} may {verb} {resource}");
    }
    // The account-roles ConfigMap, and only to read it.
    for (verb, expect) in [
        ("get", "yes"),
        ("watch", "yes"),
        ("update", "no"),
        ("delete", "no"),
    ] {
        let target = format!("configmaps/{roles_cm}");
        let CommandOutput { stdout: out, .. } =
            kubectl(&["auth", "can-i", verb, &target, "-n", &ns, "--as", &sa]);
        assert_eq!(out.trim(), expect, "{sa} may {verb} {target}");
    }
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl(&["get", "secrets", "-n", &ns, "--as", &sa]);
    assert!(!ok && err.to_lowercase().contains("forbidden"), "{err}");
    let CommandOutput {
        success: ok,
        stderr: err,
        ..
    } = kubectl(&["create", "configmap", "x", "-n", &ns, "--as", &sa]);
    assert!(!ok && err.to_lowercase().contains("forbidden"), "{err}");
    let _ = std::fs::remove_file(kubeconfig);
}

#[test]
fn dockerfile_passes_hadolint() {
    let out = Command::new(support::tool("hadolint"))
        .arg("Dockerfile")
        .current_dir(support::repo_root())
        .output()
        .expect("hadolint runs");
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dockerfile = std::fs::read_to_string(support::repo_root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("USER 65532:65532"),
        "numeric non-root user"
    );
    assert!(
        !dockerfile.contains("personalize-emulator /"),
        "only the operator binary"
    );
}

/// The released amd64 image's files, alone in a root (only the kubeconfig added): `--version`,
/// then `run` reaching the API server, as a container runtime would start it.
#[tokio::test]
async fn the_released_image_runs_in_an_empty_root() {
    let released = crate::release::released();
    let (_, digest) = crate::release::platforms(released)
        .into_iter()
        .find(|(p, _)| p == "linux/amd64")
        .expect("an amd64 image");
    let jail = std::env::temp_dir().join(format!("pw-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&jail);
    for (name, bytes) in crate::release::files(&format!("{}@{digest}", released.repository())) {
        let path = jail.join(name);
        std::fs::create_dir_all(path.parent().expect("a folder")).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    std::fs::set_permissions(
        jail.join("personalize-watch"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::copy(
        &support::control_plane().kubeconfig,
        jail.join("kubeconfig"),
    )
    .unwrap();
    let entries: Vec<_> = walk(&jail);
    assert_eq!(
        entries.len(),
        3,
        "only the binary, the CA bundle and the kubeconfig: {entries:?}"
    );

    // The device nodes every container runtime provides, even for a FROM scratch image.
    std::fs::create_dir_all(jail.join("dev")).unwrap();
    for (name, minor) in [
        ("null", "3"),
        ("zero", "5"),
        ("random", "8"),
        ("urandom", "9"),
    ] {
        let status = Command::new("mknod")
            .args([
                "-m",
                "666",
                jail.join("dev").join(name).to_str().unwrap(),
                "c",
                "1",
                minor,
            ])
            .status()
            .expect("mknod runs");
        assert!(status.success(), "mknod /dev/{name}");
    }
    let version = Command::new(chroot())
        .arg(&jail)
        .args(["/personalize-watch", "--version"])
        .output()
        .expect("chroot runs");
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));

    let client = support::client().await;
    support::install_crds(&client).await;
    let port = crate::support::processes::free_port();
    let mut child = Command::new(chroot())
        .arg(&jail)
        .args([
            "/personalize-watch",
            "run",
            "--admin-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("KUBECONFIG", "/kubeconfig")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", support::FAKE_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", support::FAKE_SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(Stdio::piped())
        .spawn()
        .expect("chroot runs");
    let url = format!("http://127.0.0.1:{port}");
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(r) = http::request("GET", &url, "/readyz", None).await
                && r.status == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&jail);
    assert!(
        ready.is_ok(),
        "not ready in the empty root: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// chroot(8) lives in /usr/sbin, which a test's PATH may leave out.
fn chroot() -> PathBuf {
    ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("chroot not found: install coreutils (it ships /usr/sbin/chroot)")
        })
}

/// The IAM actions a policy file of docs/iam allows.
pub fn iam_actions(file: &str) -> std::collections::BTreeSet<String> {
    let path = support::repo_root().join("docs/iam").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let policy: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
    assert_eq!(policy["Version"], "2012-10-17", "{file}");
    let statements = policy["Statement"].as_array().expect("a Statement list");
    let mut actions = std::collections::BTreeSet::new();
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{file}: only Allow statements");
        match &s["Action"] {
            serde_json::Value::String(a) => {
                actions.insert(a.clone());
            }
            serde_json::Value::Array(list) => {
                actions.extend(list.iter().filter_map(|a| a.as_str().map(String::from)));
            }
            other => panic!("{file}: Action {other}"),
        }
    }
    actions
}

#[test]
fn the_iam_policies_parse_and_name_the_charts_service_account() {
    let files: Vec<String> = std::fs::read_dir(support::repo_root().join("docs/iam"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 5, "{files:?}");
    for file in &files {
        assert!(!iam_actions(file).is_empty(), "{file}");
    }
    // The trust policies allow exactly what each way of getting credentials calls.
    let trust = |file: &str| iam_actions(file).into_iter().collect::<Vec<_>>();
    assert_eq!(
        trust("irsa-trust-policy.json"),
        ["sts:AssumeRoleWithWebIdentity"]
    );
    assert_eq!(
        trust("pod-identity-trust-policy.json"),
        ["sts:AssumeRole", "sts:TagSession"]
    );
    assert_eq!(trust("reader-trust-policy.json"), ["sts:AssumeRole"]);

    // The IRSA subject is the ServiceAccount the README's install renders.
    let rendered = render("personalize-watch", "personalize-watch", &[]);
    let account = rendered
        .split("\n---")
        .find(|doc| doc.contains("\nkind: ServiceAccount"))
        .and_then(|doc| serde_yaml::from_str::<serde_json::Value>(doc).ok())
        .and_then(|sa| sa["metadata"]["name"].as_str().map(String::from))
        .expect("the chart renders a ServiceAccount");
    let irsa =
        std::fs::read_to_string(support::repo_root().join("docs/iam/irsa-trust-policy.json"))
            .unwrap();
    let irsa: serde_json::Value = serde_json::from_str(&irsa).unwrap();
    assert_eq!(
        irsa["Statement"][0]["Condition"]["StringEquals"]["OIDC_PROVIDER:sub"],
        format!("system:serviceaccount:personalize-watch:{account}")
    );
}
