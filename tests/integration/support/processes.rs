//! The emulator and the operator as real processes, killed when the test ends (also on panic).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::http;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Emulator {
    child: Child,
    pub url: String,
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_personalize-emulator"))
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
        Emulator { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal and waits for the exit; returns the exit code and how long it took.
    pub fn stop_with(&mut self, signal: &str) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for the emulator");
        (status.code(), started.elapsed())
    }

    pub async fn generate(
        &self,
        sv: &str,
        count: usize,
        status: &str,
        prefix: &str,
    ) -> Vec<String> {
        let reply = http::post(
            &self.url,
            "/_emulator/generate",
            &json!({"solutionVersionArn": sv, "count": count, "status": status, "namePrefix": prefix}),
        )
        .await;
        reply.json()["batchInferenceJobArns"]
            .as_array()
            .expect("arns")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    pub async fn upsert(&self, jobs: Value) {
        http::post(&self.url, "/_emulator/jobs", &jobs).await;
    }

    pub async fn fault(&self, fault: Value) {
        http::post(&self.url, "/_emulator/faults", &fault).await;
    }

    pub async fn clear_faults(&self) {
        http::delete(&self.url, "/_emulator/faults").await;
    }

    /// The request log, oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        http::get(&self.url, "/_emulator/requests").await.json()["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operator binary, `run`, against the test control plane and an emulator.
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
        let child = Command::new(env!("CARGO_BIN_EXE_personalize-watch"))
            .arg("run")
            .args(["--admin-addr", &format!("127.0.0.1:{port}")])
            .args(["--min-backoff", "1s", "--max-backoff", "5s"])
            .args(&options.args)
            .env("KUBECONFIG", &options.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_PERSONALIZE", options.endpoint)
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
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait for the operator");
        (status.code(), started.elapsed())
    }

    /// Kills the process at once (SIGKILL), like a crash or a node loss.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn wait_ready(&self) {
        let url = self.admin_url.clone();
        super::wait_for(Duration::from_secs(30), "operator /readyz", || {
            let url = url.clone();
            async move {
                let r = http::request("GET", &url, "/readyz", None).await.ok()?;
                (r.status == 200).then_some(())
            }
        })
        .await;
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- operator log ({}) ----\n{}",
                self.log.display(),
                tail(&self.logs(), 60)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
