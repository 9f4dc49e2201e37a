//! The emulator and the operator as real processes, killed when the test ends (also on panic).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use personalize_emulator::LoggedRequest;
use personalize_emulator::admin::{GenerateRequest, JobsChanged, RequestLog};
use personalize_emulator::faults::FaultRule;
use personalize_emulator::model::Job;

use super::{FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, http, repo_root, wait_for};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The path of the workspace binary `name`. The first call builds every package's binaries
/// (once per test process, so tests always run the current code) as hack/cluster.sh, `make build`
/// and `make demo` do: `cargo build --workspace --bins`, in the profile this harness was built
/// with. With the features of the test build (crates/testkit/Cargo.toml) nothing compiles twice.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(build_binaries);
    built
        .get(name)
        .unwrap_or_else(|| panic!("cargo built no executable named {name}"))
        .clone()
}

fn build_binaries() -> HashMap<String, PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--locked", "--quiet", "--message-format=json"])
        .args(["--workspace", "--bins"])
        .current_dir(repo_root())
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} to build the binaries: {e}"));
    assert!(
        output.status.success(),
        "cargo build --workspace --bins failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_string();
            Some((name, PathBuf::from(m["executable"].as_str()?)))
        })
        .collect()
}

/// The emulator as its own process, and a client of its admin API.
pub struct Emulator {
    child: Child,
    pub url: String,
    /// The state file this harness wrote for it, removed with it.
    state_file: Option<PathBuf>,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let listen: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(binary("personalize-emulator"))
            .args(listen)
            .args(["--log-level", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("personalize-emulator starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("emulator prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected emulator output: {line:?}"))
            .to_string();
        Emulator {
            child,
            url,
            state_file: None,
        }
    }

    /// With a state file holding `yaml` (identities, roles, jobs).
    pub fn start_with_state(yaml: &str, args: &[&str]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "personalize-emulator-state-{}-{:08x}.yaml",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::write(&path, yaml).expect("write the emulator state file");
        let shown = path.display().to_string();
        let mut all = vec!["--state", shown.as_str()];
        all.extend_from_slice(args);
        let mut emulator = Self::start_with(&all);
        emulator.state_file = Some(path);
        emulator
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal and waits for the exit; returns the exit code and how long it took.
    pub fn stop_with(&mut self, signal: &str) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        signal_process(self.child.id(), signal);
        let status = self.child.wait().expect("wait for the emulator");
        (status.code(), started.elapsed())
    }

    /// Adds `count` jobs in `status` named `PREFIX-N`; returns their ARNs.
    pub async fn generate(
        &self,
        sv: &str,
        count: usize,
        status: &str,
        prefix: &str,
    ) -> Vec<String> {
        self.generate_batch(&GenerateRequest {
            solution_version_arn: sv.to_string(),
            count,
            status: Some(status.to_string()),
            name_prefix: Some(prefix.to_string()),
            ..Default::default()
        })
        .await
    }

    /// Adds generated jobs as `batch` says (age, failure reason); returns their ARNs.
    pub async fn generate_batch(&self, batch: &GenerateRequest) -> Vec<String> {
        let reply = http::post(&self.url, "/_emulator/generate", batch).await;
        reply.parse::<JobsChanged>().batch_inference_job_arns
    }

    /// Inserts jobs, or overlays the members given onto the jobs with the same ARN.
    pub async fn upsert(&self, jobs: &[Job]) {
        http::post(&self.url, "/_emulator/jobs", &jobs).await;
    }

    /// Sets one job's status (and failure reason).
    pub async fn set_status(&self, arn: &str, status: &str, failure_reason: Option<&str>) {
        self.upsert(&[Job {
            status: Some(status.to_string()),
            failure_reason: failure_reason.map(str::to_string),
            ..job(arn)
        }])
        .await;
    }

    pub async fn fault(&self, rule: FaultRule) {
        http::post(&self.url, "/_emulator/faults", &rule).await;
    }

    pub async fn clear_faults(&self) {
        http::delete(&self.url, "/_emulator/faults").await;
    }

    /// The request log, oldest first.
    pub async fn requests(&self) -> Vec<LoggedRequest> {
        http::get(&self.url, "/_emulator/requests")
            .await
            .parse::<RequestLog>()
            .requests
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        reap(&mut self.child);
        if let Some(path) = self.state_file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Kills a child process and waits for it, so no zombie is left.
fn reap(child: &mut Child) {
    if let Err(e) = child.kill() {
        eprintln!("cannot kill process {}: {e}", child.id());
    }
    if let Err(e) = child.wait() {
        eprintln!("cannot wait for process {}: {e}", child.id());
    }
}

/// A job update naming the job by its ARN; set the members to change.
pub fn job(arn: &str) -> Job {
    Job {
        batch_inference_job_arn: Some(arn.to_string()),
        ..Default::default()
    }
}

fn signal_process(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
}

/// The operator binary, or a profiler running it when `PW_OPERATOR_WRAPPER` names one (such as
/// `hack/heaptrack-exec.sh`, which execs so that signals and the peak-RSS reading by pid still
/// reach the operator): for measuring a benchmark, never set by the tests.
fn operator_command() -> Command {
    let operator = binary("personalize-watch");
    let wrapper = std::env::var("PW_OPERATOR_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(operator);
            command
        }
        None => Command::new(operator),
    }
}

/// The operator binary, `run`, against a control plane and an emulator.
pub struct Operator {
    child: Option<Child>,
    pub admin_url: String,
    pub log: PathBuf,
}

pub struct OperatorOptions<'a> {
    pub kubeconfig: PathBuf,
    pub endpoint: &'a str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Operator {
    pub fn start(options: OperatorOptions<'_>) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "personalize-watch-operator-{}-{port}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let child = operator_command()
            .arg("run")
            .args(["--admin-addr", &format!("127.0.0.1:{port}")])
            .args(["--min-backoff", "1s", "--max-backoff", "5s"])
            .args(&options.args)
            .env("KUBECONFIG", &options.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_ACCESS_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_PERSONALIZE", options.endpoint)
            .env("AWS_ENDPOINT_URL_STS", options.endpoint)
            .env("RUST_LOG", "info,personalize_watch=debug")
            .envs(options.env)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("personalize-watch starts");
        Operator {
            child: Some(child),
            admin_url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal and waits for the exit; returns the exit code and how long it took.
    pub fn stop_with(&mut self, signal: &str) -> (Option<i32>, Duration) {
        let Some(mut child) = self.child.take() else {
            return (None, Duration::ZERO);
        };
        let started = std::time::Instant::now();
        signal_process(child.id(), signal);
        let status = child.wait().expect("wait for the operator");
        (status.code(), started.elapsed())
    }

    /// Sends a signal (STOP and CONT pause and resume it, like a stalled node).
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            signal_process(pid, signal);
        }
    }

    /// Kills the process at once (SIGKILL), like a crash or a node loss.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            reap(&mut child);
        }
    }

    pub async fn wait_ready(&self) {
        let url = self.admin_url.clone();
        wait_for(Duration::from_secs(30), "operator /readyz", || {
            let url = url.clone();
            async move {
                let r = http::request("GET", &url, "/readyz", None).await.ok()?;
                (r.status == 200).then_some(())
            }
        })
        .await;
    }

    /// One scrape of /metrics.
    pub async fn metrics(&self) -> super::prometheus::Scrape {
        super::prometheus::Scrape::parse(http::get(&self.admin_url, "/metrics").await.body)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        // A failing test's log stays where this says; a passing test's goes.
        if std::thread::panicking() {
            eprintln!(
                "---- operator log ({}) ----\n{}",
                self.log.display(),
                tail(&self.logs(), 60)
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
