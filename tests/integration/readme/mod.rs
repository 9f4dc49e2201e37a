//! The commands the README asks a user to type, run as written. Each block of them is named in
//! the README (`<!-- command-block: NAME -->`) and read here by that name;
//! `docs::every_readme_command_block_is_run_by_a_test` fails when a block has no name or no test.
//! The helm-install blocks run in `packaging::readme_install_commands_render_and_are_accepted`,
//! `make demo` in `gitops::demo_shows_counts_and_the_simulated_service_moving`, and the node
//! walk-through's first and last lines in `smoke::make_cluster_up_and_down_as_documented`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::command::run;
use crate::support::markdown::readme_block;
use crate::support::{self, CommandOutput, Fixture, free_port, node, tool};

/// A folder of the test's own, removed with it.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pw-readme-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The commands of a block, one a line, without their trailing `# ...` comments.
pub(crate) fn commands(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| l.split("  #").next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The README's chart, `oci://ghcr.io/personalize-watch/charts/personalize-watch`, is the one
/// this run's `make release` pushed: a bash `helm` function, prepended to a block, that names the
/// test registry's chart instead (plain HTTP) and runs $PW_HELM_BIN. The rest runs as written.
pub(crate) fn helm_from_the_test_registry() -> String {
    let chart = crate::release::released().chart_url().to_string();
    format!(
        r#"helm() {{
  local args=() a ghcr=oci://ghcr.io/personalize-watch/charts/personalize-watch
  for a in "$@"; do args+=("${{a/#$ghcr/{chart}}}"); done
  case " $* " in *" $ghcr "*) args+=(--plain-http) ;; esac
  "$PW_HELM_BIN" "${{args[@]}}"
}}
"#
    )
}

/// A copy of the admin kubeconfig whose context's namespace is `ns`, as a user's would be.
fn kubeconfig_in(dir: &Path, ns: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::copy(&support::control_plane().kubeconfig, &path).expect("kubeconfig copy");
    let mut command = Command::new(tool("kubectl"));
    command
        .args(["config", "set-context", "--current", "--namespace", ns])
        .env("KUBECONFIG", &path);
    run(command, None).expect_success();
    path
}

/// PATH with the folders of `tools` first.
fn path_with(tools: &[PathBuf]) -> String {
    let mut dirs: Vec<String> = tools
        .iter()
        .filter_map(|t| t.parent())
        .map(|d| d.display().to_string())
        .collect();
    dirs.push(std::env::var("PATH").unwrap_or_default());
    dirs.join(":")
}

/// `script` under bash with `set -euo pipefail`: its output goes to files in `dir` (a process
/// the block starts in the background keeps its output open, so pipes would not end), and it
/// runs in a process group of its own, returned: dropping it stops what the block left running.
fn run_script(
    script: &str,
    dir: &Path,
    configure: impl FnOnce(&mut Command),
) -> (CommandOutput, ProcessGroup) {
    let (out_path, err_path) = (dir.join("script.stdout"), dir.join("script.stderr"));
    let file = |p: &Path| std::fs::File::create(p).expect("script output file");
    let mut command = Command::new("bash");
    command
        .args(["-c", &format!("set -euo pipefail\n{script}\n")])
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path));
    configure(&mut command);
    let mut child = command.spawn().expect("bash runs");
    let group = child.id();
    let status = child.wait().expect("bash finishes");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let out = CommandOutput {
        success: status.success(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    (out, ProcessGroup(group))
}

/// What a block left running in the background (its process group), stopped when dropped.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .status();
    }
}

#[test]
fn the_setup_block_is_what_ci_runs() {
    let setup = commands(&readme_block("setup"));
    assert_eq!(setup, ["make demo", "make test"]);
    let ci = std::fs::read_to_string(support::repo_root().join(".ci/run")).expect(".ci/run");
    let last = ci
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert_eq!(
        last.trim(),
        setup[1],
        ".ci/run runs the README's test command"
    );
}

/// IAM and EKS stand-in (aws_stand_in.py, with the venv's Python), recording every request.
struct AwsStandIn {
    child: Child,
    url: String,
    log: PathBuf,
}

impl AwsStandIn {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let log = dir.join("requests.jsonl");
        let script = support::repo_root().join("tests/integration/readme/aws_stand_in.py");
        let child = Command::new(tool("python"))
            .arg(script)
            .arg(port.to_string())
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .expect("the stand-in starts");
        let addr = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the stand-in did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        AwsStandIn {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for AwsStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The IAM request `action` for `role` (the first, or the `nth` when a role gets two).
fn iam_request<'a>(requests: &'a [Value], action: &str, role: &str, nth: usize) -> &'a Value {
    requests
        .iter()
        .filter(|r| r["params"]["Action"] == action && r["params"]["RoleName"] == role)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {action} #{nth} for {role} in {requests:#?}"))
}

fn json_param(request: &Value, name: &str) -> Value {
    let text = request["params"][name].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}"))
}

fn iam_file(name: &str) -> Value {
    let path = support::repo_root().join("docs/iam").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("policy file"))
        .expect("policy JSON")
}

#[test]
fn the_iam_commands_send_the_documented_policies() {
    let blocks = ["iam-irsa", "iam-pod-identity", "iam-reader", "iam-check"].map(readme_block);
    // The blocks name docs/iam/ relative to the clone and write trust.json beside it: they run
    // in a folder of the test's own that links docs/.
    let scratch = Scratch::new("iam");
    std::os::unix::fs::symlink(support::repo_root().join("docs"), scratch.0.join("docs"))
        .expect("docs link");
    let stand_in = AwsStandIn::start(&scratch.0);
    let aws = tool("aws");
    let (out, _) = run_script(&blocks.join("\n"), &scratch.0, |c| {
        c.current_dir(&scratch.0)
            .env("PATH", path_with(std::slice::from_ref(&aws)))
            .env("HOME", &scratch.0)
            .env("AWS_ENDPOINT_URL", &stand_in.url)
            .env("AWS_ACCESS_KEY_ID", support::FAKE_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", support::FAKE_SECRET_ACCESS_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
    });
    assert!(
        out.success,
        "the README's IAM commands failed:\n{}",
        out.text()
    );
    // The association's reply comes first; the check prints its decision last.
    let answer = out.stdout.trim().lines().last().unwrap_or_default();
    assert_eq!(answer, "allowed", "the check's answer: {}", out.text());
    let requests = stand_in.requests();

    assert_irsa_role(&requests);
    assert_pod_identity_role(&requests);
    assert_reader_role(&requests);
    let placeholders = ["OPERATOR_ACCOUNT_ID", "OIDC_PROVIDER", "EXTERNAL_ID"];
    let sent = serde_json::to_string(&requests).unwrap_or_default();
    assert!(
        !placeholders.iter().any(|p| sent.contains(p)),
        "a placeholder left in {sent}"
    );
}

/// IRSA: the trust policy with the account and the cluster's OIDC provider filled in, and the
/// operator's policy as the file has it.
fn assert_irsa_role(requests: &[Value]) {
    let irsa = json_param(
        iam_request(requests, "CreateRole", "personalize-watch", 0),
        "AssumeRolePolicyDocument",
    );
    let provider = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    let statement = &irsa["Statement"][0];
    assert_eq!(
        statement["Principal"]["Federated"],
        format!("arn:aws:iam::111111111111:oidc-provider/{provider}")
    );
    assert_eq!(
        statement["Condition"]["StringEquals"][format!("{provider}:sub")],
        "system:serviceaccount:personalize-watch:personalize-watch"
    );
    let operator_policy = iam_request(requests, "PutRolePolicy", "personalize-watch", 0);
    assert_eq!(
        json_param(operator_policy, "PolicyDocument"),
        iam_file("operator-policy.json")
    );
}

/// Pod Identity: the trust policy as the file has it, and the association naming the chart's
/// ServiceAccount.
fn assert_pod_identity_role(requests: &[Value]) {
    let pod_identity = json_param(
        iam_request(requests, "CreateRole", "personalize-watch", 1),
        "AssumeRolePolicyDocument",
    );
    assert_eq!(pod_identity, iam_file("pod-identity-trust-policy.json"));
    let association = requests
        .iter()
        .find(|r| r["path"] == "/clusters/my-cluster/pod-identity-associations")
        .unwrap_or_else(|| panic!("no CreatePodIdentityAssociation in {requests:#?}"));
    assert_eq!(association["params"]["namespace"], "personalize-watch");
    assert_eq!(association["params"]["serviceAccount"], "personalize-watch");
    assert_eq!(
        association["params"]["roleArn"],
        "arn:aws:iam::111111111111:role/personalize-watch"
    );
}

/// The reader role: trusting the operator's role with the external ID the chart is given.
fn assert_reader_role(requests: &[Value]) {
    let reader = json_param(
        iam_request(requests, "CreateRole", "personalize-watch-reader", 0),
        "AssumeRolePolicyDocument",
    );
    assert_eq!(
        reader["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::111111111111:role/personalize-watch"
    );
    assert_eq!(
        reader["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "team-b-2f9c"
    );
    let reader_policy = iam_request(requests, "PutRolePolicy", "personalize-watch-reader", 0);
    assert_eq!(
        json_param(reader_policy, "PolicyDocument"),
        iam_file("reader-policy.json")
    );
}

/// The plugin block, as written, with the release's downloads served from this run's own
/// release: `curl` copies the archive from its folder, and krew (as `kubectl krew`, krew's own
/// binary under that name on PATH) installs from its manifest and archive there.
#[tokio::test]
async fn the_plugin_block_installs_a_plugin_that_prints_the_watch_s_jobs() {
    let released = crate::release::released();
    let f = Fixture::start("plugin").await;
    let sv = support::solution_version_arn("plugin");
    f.emu.generate(&sv, 2, "ACTIVE", "nightly").await;
    f.emu.generate(&sv, 1, "CREATE FAILED", "adhoc").await;
    f.apply_watch("movie-recs", &sv, "").await;
    f.wait_status("movie-recs", Duration::from_secs(30), "3 jobs", |w| {
        support::total(w) == Some(3)
    })
    .await;
    // HOME is a folder of the test's own: ~/.local/bin, ~/.krew/bin and kubectl-krew on PATH.
    let scratch = Scratch::new("plugin");
    let kubeconfig = kubeconfig_in(&scratch.0, &f.ns);
    let bin = scratch.0.join(".local/bin");
    let krew_bin = scratch.0.join(".krew/bin");
    let tools = scratch.0.join("tools");
    std::fs::create_dir_all(&tools).expect("a tools folder");
    std::os::unix::fs::symlink(tool("krew"), tools.join("kubectl-krew")).expect("kubectl-krew");
    let path = format!(
        "{}:{}:{}:{}",
        krew_bin.display(),
        bin.display(),
        tools.display(),
        path_with(&[tool("kubectl")])
    );
    let downloads = "https://github.com/personalize-watch/personalize-watch/releases/download";
    let serve = r#"curl() { local url=${*: -1}; cp "$PW_RELEASE_DIR/${url##*/}" .; }
kubectl() {
  if [ "$1 $2" = "krew install" ]; then
    command kubectl krew install --manifest="$PW_RELEASE_DIR/plugins/personalize-watch.yaml" \
      --archive="$PW_RELEASE_DIR/kubectl-personalize_watch_linux_amd64.tar.gz"
  else command kubectl "$@"; fi
}
"#;
    let block = readme_block("plugin");
    assert!(
        block.contains(&format!("{downloads}/v{}/", env!("CARGO_PKG_VERSION"))),
        "{block}"
    );
    let (out, _) = run_script(&format!("{serve}{block}"), &scratch.0, |c| {
        c.current_dir(&scratch.0)
            .env("HOME", &scratch.0)
            .env("PATH", &path)
            .env("KUBECONFIG", &kubeconfig)
            .env("PW_RELEASE_DIR", &released.dir);
    });
    assert!(out.success, "the plugin block failed:\n{}", out.text());
    assert!(bin.join("kubectl-personalize_watch").exists());
    assert!(bin.join("kubectl_complete-personalize_watch").exists());
    assert!(
        krew_bin.join("kubectl-personalize_watch").exists(),
        "krew installed it"
    );
    let text = &out.stdout;
    // list -A: NAMESPACE NAME READY TOTAL ...
    let listed = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&f.ns.as_str()) && w.get(1) == Some(&"movie-recs"));
    assert!(
        listed.is_some_and(|f| f[3] == "3"),
        "list -A shows the watch with its 3 jobs:\n{text}"
    );
    assert!(
        text.contains("NAME") && text.contains("FAILURE REASON"),
        "the table:\n{text}"
    );
    assert!(
        text.contains("adhoc-1") && text.contains("CREATE FAILED"),
        "{text}"
    );
    assert!(
        text.contains("UPDATED") && text.contains("ARN"),
        "-o wide:\n{text}"
    );
    let json_start = text.find("\n{").expect("the -o json output");
    let json: Value = serde_json::from_str(&text[json_start..]).expect("-o json is JSON");
    assert_eq!(json["kind"], "SolutionVersionWatch", "{json}");
    assert_eq!(json["status"]["counts"]["total"], 3, "{json}");
}

/// Uninstalls the walk-through's release (`personalize-watch` in `personalize-watch`) when the
/// test ends, passed or not: a release left behind would refuse the next run's install.
struct Uninstall(PathBuf);

impl Drop for Uninstall {
    fn drop(&mut self) {
        let mut command = Command::new(tool("helm"));
        command
            .args([
                "uninstall",
                "personalize-watch",
                "-n",
                "personalize-watch",
                "--wait",
                "--ignore-not-found",
            ])
            .env("KUBECONFIG", &self.0);
        let _ = run(command, None);
    }
}

/// The node walk-through, on the test run's node and registry: `make release` (into a folder of
/// the test's own), the emulator on the node's address, the chart installed from the registry
/// with the image the node pulls from it, the demo watch applied and listed; then the README's
/// upgrade, CRD and uninstall commands on that release. Its first two and last two lines start
/// and stop a registry and a cluster with a node; one node runs per machine and the run's is
/// up, so smoke::make_cluster_up_and_down_as_documented runs those four (without the node).
/// The chart is installed watching the test's namespace only (the README's install watches all,
/// which would take other tests' watches), and the demo watch lands there (the kubeconfig's
/// namespace, as in a user's context).
#[tokio::test]
async fn the_node_walkthrough_installs_the_chart_that_syncs_the_demo_watch() {
    let block = readme_block("node-walkthrough");
    let lines: Vec<&str> = block.lines().collect();
    assert!(lines.len() > 4 && lines[1].contains("make -s cluster-up NODE=1"));
    assert!(lines[lines.len() - 2].starts_with("make cluster-down"));
    let middle = lines[2..lines.len() - 2].join("\n");
    let released = crate::release::released();

    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "walkthrough").await;
    let scratch = Scratch::new("walkthrough");
    let kubeconfig = kubeconfig_in(&scratch.0, &ns);
    let (host_ip, cluster_dir) = node();
    let helm_only_here = format!(
        "helm() {{ if [ \"$1\" = install ]; then \"$PW_HELM_BIN\" \"$@\" --set 'watchNamespace={{{ns}}}'; else \"$PW_HELM_BIN\" \"$@\"; fi; }}\n"
    );
    let _release = Uninstall(kubeconfig.clone());
    let (out, _emulator) = run_script(&format!("{helm_only_here}{middle}"), &scratch.0, |c| {
        c.current_dir(support::repo_root())
            .env("PATH", path_with(&[tool("kubectl")]))
            .env("PW_HELM_BIN", tool("helm"))
            .env("KUBECONFIG", &kubeconfig)
            .env("PW_HOST_IP", &host_ip)
            .env("PW_CLUSTER_DIR", &cluster_dir)
            .env("PW_REGISTRY", &released.registry)
            .env("PW_NODE_REGISTRY", &released.node_registry)
            .env("PW_RELEASE_DIR", scratch.0.join("dist"));
    });
    assert!(out.success, "the walk-through failed:\n{}", out.text());
    assert!(
        out.stdout.contains("movie-recs"),
        "kubectl get svw lists the demo watch:\n{}",
        out.stdout
    );
    let watches: kube::Api<personalize_watch::crd::SolutionVersionWatch> =
        kube::Api::namespaced(client, &ns);
    // Up to three minutes: the operator backs off while a poll fails (the emulator may have
    // started after the pod); the message says what the status held.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let w = watches.get_opt("movie-recs").await.ok().flatten();
        // The sample's 12 jobs, and any its simulated service has started since.
        if w.as_ref().and_then(support::total).is_some_and(|n| n >= 12) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo watch not synced by the pod after 180 s; its status: {:?}\nthe walk-through printed:\n{}",
            w.and_then(|w| w.status),
            out.text()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    upgrade_crds_and_uninstall(&scratch.0, &kubeconfig, &watches).await;
}

/// The README's upgrade, CRD and uninstall block on the walk-through's release: the watch stays.
async fn upgrade_crds_and_uninstall(
    scratch: &Path,
    kubeconfig: &Path,
    watches: &kube::Api<personalize_watch::crd::SolutionVersionWatch>,
) {
    let script = format!(
        "{}{}",
        helm_from_the_test_registry(),
        readme_block("upgrade-and-uninstall")
    );
    let (out, _) = run_script(&script, scratch, |c| {
        c.current_dir(support::repo_root())
            .env("PATH", path_with(&[tool("kubectl")]))
            .env("PW_HELM_BIN", tool("helm"))
            .env("KUBECONFIG", kubeconfig);
    });
    assert!(
        out.success,
        "upgrade, CRDs and uninstall failed:\n{}",
        out.text()
    );
    assert!(
        out.stdout.contains("has been upgraded") && out.stdout.contains("uninstalled"),
        "{}",
        out.stdout
    );
    assert!(
        watches.get_opt("movie-recs").await.ok().flatten().is_some(),
        "the watch outlives the release"
    );
}
