//! How many 100-job pages per second the emulator serves to the real SDK client.
//! Run with `make bench-emulator`; prints a table and writes target/bench-emulator.txt.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_personalize::Client;
use aws_sdk_personalize::config::{BehaviorVersion, Credentials, Region};

const JOBS: usize = 10_000;
const SECONDS: u64 = 10;

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_personalize::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "bench-secret",
            None,
            None,
            "bench",
        ))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

async fn run(clients: usize, url: &str, sv: &str) -> (usize, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = client(url);
        let sv = sv.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let mut token: Option<String> = None;
                loop {
                    let started = Instant::now();
                    let page = client
                        .list_batch_inference_jobs()
                        .solution_version_arn(&sv)
                        .max_results(100)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .expect("page");
                    latencies.push(started.elapsed());
                    assert_eq!(page.batch_inference_jobs().len(), 100);
                    token = page.next_token().map(str::to_string);
                    if token.is_none() || Instant::now() >= deadline {
                        break;
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    (all.len(), all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("a crypto provider was installed already");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_personalize-emulator"))
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("emulator starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let sv = "arn:aws:personalize:us-east-1:123456789012:solution/bench/v1";
    let body = format!(r#"{{"solutionVersionArn":"{sv}","count":{JOBS},"status":"ACTIVE"}}"#);
    let status = Command::new("curl")
        .args([
            "-fsS",
            "-o",
            "/dev/null",
            &format!("{url}/_emulator/generate"),
            "-d",
            &body,
        ])
        .status()
        .expect("curl");
    assert!(status.success());

    let mut report = format!(
        "emulator pages per second ({JOBS} jobs, 100-job pages, real aws-sdk-personalize over loopback, {SECONDS}s per row, {} cores)\n\
         | clients | pages | pages/s | p50 page ms | p99 page ms |\n|---|---|---|---|---|\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for clients in [1, 4, 16] {
        let (pages, latencies) = run(clients, &url, sv).await;
        report.push_str(&format!(
            "| {clients} | {pages} | {:.0} | {:.2} | {:.2} |\n",
            pages as f64 / SECONDS as f64,
            percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        ));
    }
    child.kill().expect("stop the emulator");
    child.wait().expect("reap the emulator");
    print!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&out).expect("target/ is writable");
    std::fs::write(out.join("bench-emulator.txt"), &report).expect("target/ is writable");
}
