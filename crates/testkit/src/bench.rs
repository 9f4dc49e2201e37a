//! The performance harness: drives the real operator binary against the real control plane and
//! the emulator, and measures what docs/performance.md reports. `make bench` runs it at full
//! scale (benches/operator.rs); `make test` runs it tiny to prove the harness works.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use personalize_emulator::LoggedRequest;
use personalize_emulator::model::Job;
use personalize_watch::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};

use super::processes::{Emulator, Operator, OperatorOptions, job};
use super::prometheus::Scrape;
use super::{client, control_plane, http, install_crds, namespace};

/// Sizes of every scenario.
#[derive(Clone, Debug)]
pub struct Scale {
    pub a_jobs: usize,
    pub b_watches: usize,
    pub b_jobs: usize,
    pub c_watches: usize,
    pub c_jobs: usize,
    pub e_failures: usize,
    pub steady_cycles: u32,
    /// Poll interval (and active poll interval) of B's watches, seconds.
    pub b_interval_secs: u64,
    pub curve: Vec<usize>,
    pub rate_watches: usize,
    /// The raised rate for A to C (they measure the operator, not the limit).
    pub raised_rate: f64,
}

impl Scale {
    pub fn full() -> Self {
        Scale {
            a_jobs: 10_000,
            b_watches: 1_000,
            b_jobs: 100,
            c_watches: 200,
            c_jobs: 1_000,
            e_failures: 500,
            steady_cycles: 3,
            b_interval_secs: 30,
            curve: vec![10, 100, 1_000, 5_000],
            rate_watches: 200,
            raised_rate: 2_000.0,
        }
    }

    pub fn tiny() -> Self {
        Scale {
            a_jobs: 250,
            b_watches: 5,
            b_jobs: 20,
            c_watches: 2,
            c_jobs: 150,
            e_failures: 3,
            steady_cycles: 1,
            b_interval_secs: 5,
            curve: vec![2, 4],
            rate_watches: 12,
            raised_rate: 2_000.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub watches: usize,
    pub jobs: usize,
    pub converge_secs: Option<f64>,
    pub calls: usize,
    /// Complete listings made (first pages requested).
    pub listings: usize,
    /// The minimum for those listings: ceil(jobs / 100) calls each.
    pub min_calls: usize,
    pub repeated_calls: usize,
    pub status_writes: f64,
    pub events: f64,
    pub peak_rss_mib: f64,
    pub cpu_secs: f64,
    pub cpu_ms_per_page: f64,
    pub latency_p50: Option<f64>,
    pub latency_p99: Option<f64>,
    pub note: String,
}

/// Peak resident set (VmHWM) in MiB and CPU seconds (user + system) of a process.
pub fn process_usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let clock_ticks = 100.0;
    (hwm_kib / 1024.0, (ticks(11) + ticks(12)) / clock_ticks)
}

fn metric(scrape: &Scrape, name: &str) -> f64 {
    scrape.sum(name)
}

async fn metrics(op: &Operator) -> Scrape {
    Scrape::parse(
        http::request("GET", &op.admin_url, "/metrics", None)
            .await
            .map(|r| r.body)
            .unwrap_or_default(),
    )
}

fn sv_arn(scenario: &str, i: usize) -> String {
    format!("arn:aws:personalize:us-east-1:123456789012:solution/{scenario}{i}/v1")
}

fn watch(name: &str, sv: &str, interval: u64, max_jobs: i32) -> SolutionVersionWatch {
    SolutionVersionWatch::new(
        name,
        SolutionVersionWatchSpec {
            solution_version_arn: sv.to_string(),
            region: None,
            poll_interval: Some(format!("{interval}s")),
            active_poll_interval: Some(format!("{interval}s")),
            suspend: false,
            max_jobs_in_status: max_jobs,
        },
    )
}

async fn create_watches(api: &Api<SolutionVersionWatch>, watches: Vec<SolutionVersionWatch>) {
    let mut pending = futures::stream::iter(watches.into_iter().map(|w| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &w)
                .await
                .expect("create a watch");
        }
    }))
    .buffer_unordered(16);
    while pending.next().await.is_some() {}
}

/// Waits until every watch in the namespace has listed `jobs` jobs; returns the seconds taken.
async fn converge(
    api: &Api<SolutionVersionWatch>,
    watches: usize,
    jobs: usize,
    started: Instant,
    limit: Duration,
) -> Option<f64> {
    let deadline = started + limit;
    loop {
        if let Ok(list) = api.list(&ListParams::default()).await {
            let done = list
                .items
                .iter()
                .filter(|w| {
                    w.status
                        .as_ref()
                        .and_then(|s| s.counts.as_ref())
                        .is_some_and(|c| c.total == jobs as i64)
                })
                .count();
            if done == watches {
                return Some(started.elapsed().as_secs_f64());
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Setup {
    client: Client,
    ns: String,
    emu: Emulator,
    op: Operator,
}

async fn setup(name: &str, rate: f64) -> Setup {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, name).await;
    let emu = Emulator::start();
    let op = Operator::start(OperatorOptions {
        kubeconfig: control_plane().kubeconfig.clone(),
        endpoint: &emu.url,
        args: vec![
            "--watch-namespace".into(),
            ns.clone(),
            "--personalize-rate".into(),
            rate.to_string(),
            "--personalize-burst".into(),
            "10".into(),
            "--concurrency".into(),
            "32".into(),
        ],
        env: vec![("RUST_LOG".into(), "warn".into())],
    });
    op.wait_ready().await;
    Setup {
        client,
        ns,
        emu,
        op,
    }
}

async fn list_calls(emu: &Emulator) -> Vec<LoggedRequest> {
    emu.requests()
        .await
        .into_iter()
        .filter(|r| r.operation == "ListBatchInferenceJobs")
        .collect()
}

/// Listings started: requests without a page token.
fn listings(calls: &[LoggedRequest]) -> usize {
    calls
        .iter()
        .filter(|r| !r.had_next_token && r.status == 200)
        .count()
}

/// Calls repeated: the same (ARN, first page or not) more often than the listings need is
/// counted by comparing with the minimum; here, requests that failed and were re-sent.
fn repeated(calls: &[LoggedRequest]) -> usize {
    calls.iter().filter(|r| r.status != 200).count()
}

fn fill_usage(row: &mut Row, op: &Operator, cpu_before: f64) {
    if let Some(pid) = op.pid() {
        let (rss, cpu) = process_usage(pid);
        row.peak_rss_mib = rss;
        row.cpu_secs = cpu - cpu_before;
    }
    if row.calls > 0 {
        row.cpu_ms_per_page = row.cpu_secs * 1000.0 / row.calls as f64;
    }
}

/// A and C: watches x jobs each, listed once; measured from apply to every status complete.
async fn listing_scenario(label: &str, watches: usize, jobs: usize, rate: f64) -> Row {
    let s = setup(&label.to_lowercase(), rate).await;
    for i in 0..watches {
        s.emu
            .generate(&sv_arn(label, i), jobs, "ACTIVE", "job")
            .await;
    }
    let api: Api<SolutionVersionWatch> = Api::namespaced(s.client.clone(), &s.ns);
    let cpu_before = s.op.pid().map_or(0.0, |p| process_usage(p).1);
    let before = metrics(&s.op).await;
    let started = Instant::now();
    create_watches(
        &api,
        (0..watches)
            .map(|i| watch(&format!("w{i}"), &sv_arn(label, i), 600, 50))
            .collect(),
    )
    .await;
    let converge_secs = converge(&api, watches, jobs, started, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = metrics(&s.op).await;
    let calls = list_calls(&s.emu).await;
    let mut row = Row {
        scenario: label.into(),
        watches,
        jobs: watches * jobs,
        converge_secs,
        calls: calls.len(),
        listings: listings(&calls),
        min_calls: listings(&calls) * jobs.div_ceil(100),
        repeated_calls: repeated(&calls),
        status_writes: metric(&after, "personalize_watch_status_writes_total")
            - metric(&before, "personalize_watch_status_writes_total"),
        events: metric(&after, "personalize_watch_events_total")
            - metric(&before, "personalize_watch_events_total"),
        note: "first listing: 1 status write and 1 JobsDiscovered Event per watch".into(),
        ..Default::default()
    };
    fill_usage(&mut row, &s.op, cpu_before);
    row
}

/// B, then D (B left alone for some poll cycles), then E (jobs failing at once across B).
async fn fleet_scenarios(scale: &Scale) -> Vec<Row> {
    let s = setup("b", scale.raised_rate).await;
    let n = scale.b_watches;
    let mut running = Vec::new();
    for i in 0..n {
        let sv = sv_arn("B", i);
        s.emu.generate(&sv, scale.b_jobs - 1, "ACTIVE", "job").await;
        running.push(s.emu.generate(&sv, 1, "IN PROGRESS", "run").await.remove(0));
    }
    let api: Api<SolutionVersionWatch> = Api::namespaced(s.client.clone(), &s.ns);
    let cpu0 = s.op.pid().map_or(0.0, |p| process_usage(p).1);
    let m0 = metrics(&s.op).await;
    let started = Instant::now();
    create_watches(
        &api,
        (0..n)
            .map(|i| watch(&format!("w{i}"), &sv_arn("B", i), scale.b_interval_secs, 50))
            .collect(),
    )
    .await;
    let converge_secs = converge(&api, n, scale.b_jobs, started, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m1 = metrics(&s.op).await;
    let calls_b = list_calls(&s.emu).await;
    let mut b = Row {
        scenario: "B".into(),
        watches: n,
        jobs: n * scale.b_jobs,
        converge_secs,
        calls: calls_b.len(),
        listings: listings(&calls_b),
        min_calls: listings(&calls_b) * scale.b_jobs.div_ceil(100),
        repeated_calls: repeated(&calls_b),
        status_writes: metric(&m1, "personalize_watch_status_writes_total")
            - metric(&m0, "personalize_watch_status_writes_total"),
        events: metric(&m1, "personalize_watch_events_total")
            - metric(&m0, "personalize_watch_events_total"),
        note: "first listing: 1 status write and 1 JobsDiscovered Event per watch".into(),
        ..Default::default()
    };
    fill_usage(&mut b, &s.op, cpu0);

    // D: steady state over whole poll cycles.
    let cpu1 = s.op.pid().map_or(0.0, |p| process_usage(p).1);
    let calls_before = list_calls(&s.emu).await.len();
    let d_secs = scale.b_interval_secs * u64::from(scale.steady_cycles);
    tokio::time::sleep(Duration::from_secs(d_secs)).await;
    let m2 = metrics(&s.op).await;
    let calls_d: Vec<_> = list_calls(&s.emu).await.split_off(calls_before);
    let polls = listings(&calls_d) as f64;
    let mut d = Row {
        scenario: "D".into(),
        watches: n,
        jobs: n * scale.b_jobs,
        calls: calls_d.len(),
        listings: listings(&calls_d),
        min_calls: listings(&calls_d) * scale.b_jobs.div_ceil(100),
        repeated_calls: repeated(&calls_d),
        status_writes: metric(&m2, "personalize_watch_status_writes_total")
            - metric(&m1, "personalize_watch_status_writes_total"),
        events: metric(&m2, "personalize_watch_events_total")
            - metric(&m1, "personalize_watch_events_total"),
        ..Default::default()
    };
    d.note = format!(
        "{} cycles of {}s; {:.2} status writes per watch per poll",
        scale.steady_cycles,
        scale.b_interval_secs,
        if polls > 0.0 {
            d.status_writes / polls
        } else {
            0.0
        }
    );
    fill_usage(&mut d, &s.op, cpu1);

    // E: failures at once across the fleet; latency from the change to the Event.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let events: Api<Event> = Api::namespaced(s.client.clone(), &s.ns);
    let watcher_task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let stream = watcher(events, watcher::Config::default()).applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(e)) = stream.next().await {
                if e.reason.as_deref() == Some("BatchInferenceJobFailed")
                    && let Some(job) = e.related.and_then(|r| r.name)
                {
                    let count = e.series.map_or(1, |s| s.count);
                    let mut seen = seen.lock().unwrap();
                    seen.entry(job.clone()).or_insert_with(Instant::now);
                    if count > 1 {
                        seen.insert(format!("{job}#repeat"), Instant::now());
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = scale.e_failures.min(n);
    let cpu2 = s.op.pid().map_or(0.0, |p| process_usage(p).1);
    let calls_before = list_calls(&s.emu).await.len();
    let upserts: Vec<Job> = running
        .iter()
        .take(failures)
        .map(|arn| Job {
            status: Some("CREATE FAILED".into()),
            failure_reason: Some("bench".into()),
            ..job(arn)
        })
        .collect();
    let failed_at = Instant::now();
    s.emu.upsert(&upserts).await;
    let limit = Duration::from_secs(scale.b_interval_secs * 3 + 30);
    while failed_at.elapsed() < limit {
        if seen.lock().unwrap().len() >= failures {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher_task.abort();
    let seen = seen.lock().unwrap().clone();
    let mut latencies: Vec<f64> = seen
        .iter()
        .filter(|(k, _)| !k.ends_with("#repeat"))
        .map(|(_, t)| t.duration_since(failed_at).as_secs_f64())
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    let calls_e: Vec<_> = list_calls(&s.emu).await.split_off(calls_before);
    let m3 = metrics(&s.op).await;
    let mut e = Row {
        scenario: "E".into(),
        watches: failures,
        jobs: failures,
        calls: calls_e.len(),
        listings: listings(&calls_e),
        min_calls: listings(&calls_e) * scale.b_jobs.div_ceil(100),
        repeated_calls: repeated(&calls_e),
        events: metric(&m3, "personalize_watch_events_total")
            - metric(&m2, "personalize_watch_events_total"),
        status_writes: metric(&m3, "personalize_watch_status_writes_total")
            - metric(&m2, "personalize_watch_status_writes_total"),
        latency_p50: pct(0.5),
        latency_p99: pct(0.99),
        ..Default::default()
    };
    e.note = format!(
        "{}/{} failure Events seen, {} repeated; activePollInterval {}s",
        latencies.len(),
        failures,
        seen.keys().filter(|k| k.ends_with("#repeat")).count(),
        scale.b_interval_secs
    );
    fill_usage(&mut e, &s.op, cpu2);
    vec![b, d, e]
}

/// The default limit during a backlog: calls per second at or under rate + burst, and the share
/// of the rate achieved.
async fn rate_limit_run(watches: usize) -> Row {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "rate").await;
    let emu = Emulator::start();
    let op = Operator::start(OperatorOptions {
        kubeconfig: control_plane().kubeconfig.clone(),
        endpoint: &emu.url,
        args: vec!["--watch-namespace".into(), ns.clone()],
        env: vec![("RUST_LOG".into(), "warn".into())],
    });
    op.wait_ready().await;
    for i in 0..watches {
        emu.generate(&sv_arn("R", i), 1, "ACTIVE", "job").await;
    }
    let api: Api<SolutionVersionWatch> = Api::namespaced(client, &ns);
    let started = Instant::now();
    create_watches(
        &api,
        (0..watches)
            .map(|i| watch(&format!("w{i}"), &sv_arn("R", i), 600, 5))
            .collect(),
    )
    .await;
    let converge_secs = converge(&api, watches, 1, started, Duration::from_secs(240)).await;
    let calls = list_calls(&emu).await;
    let times: Vec<i64> = calls.iter().map(|r| r.time_ms).collect();
    let mut worst = 0;
    for (i, t) in times.iter().enumerate() {
        worst = worst.max(times[i..].iter().take_while(|x| **x < t + 1000).count());
    }
    let span = times
        .last()
        .zip(times.first())
        .map_or(0.0, |(l, f)| (l - f) as f64 / 1000.0);
    // The bucket starts full (the burst); after it, calls should come at the rate.
    let burst = 5.0;
    let achieved = if span > 0.0 {
        (times.len() as f64 - burst) / span
    } else {
        0.0
    };
    Row {
        scenario: "rate".into(),
        watches,
        jobs: watches,
        converge_secs,
        calls: calls.len(),
        listings: listings(&calls),
        min_calls: listings(&calls),
        repeated_calls: repeated(&calls),
        note: format!(
            "default limit 5/s, burst 5: busiest 1s window {worst} calls (limit + burst = 10); {achieved:.2} calls/s after the initial burst = {:.0}% of the limit",
            achieved / 5.0 * 100.0
        ),
        ..Default::default()
    }
}

/// Peak RSS and CPU for a number of watches (one job each), each in a fresh operator process.
async fn curve_point(watches: usize, rate: f64) -> Row {
    let mut row = listing_scenario(&format!("curve{watches}-"), watches, 1, rate).await;
    row.scenario = format!("curve {watches}");
    row
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| scenario | watches | jobs | apply to complete (s) | listings | calls / minimum | failed calls | status writes | events | peak RSS (MiB) | CPU (s) | CPU ms per page | event latency p50 / p99 (s) | notes |"
    ).expect("writing to a String");
    writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .expect("writing to a String");
    for r in rows {
        let converge = r
            .converge_secs
            .map_or("-".to_string(), |s| format!("{s:.1}"));
        let ratio = if r.min_calls > 0 {
            format!(
                "{} / {} ({:.2})",
                r.calls,
                r.min_calls,
                r.calls as f64 / r.min_calls as f64
            )
        } else {
            format!("{}", r.calls)
        };
        let latency = match (r.latency_p50, r.latency_p99) {
            (Some(a), Some(b)) => format!("{a:.1} / {b:.1}"),
            _ => "-".into(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} | {} | {} |",
            r.scenario,
            r.watches,
            r.jobs,
            converge,
            r.listings,
            ratio,
            r.repeated_calls,
            r.status_writes,
            r.events,
            r.peak_rss_mib,
            r.cpu_secs,
            r.cpu_ms_per_page,
            latency,
            r.note
        ).expect("writing to a String");
    }
    out
}

/// Runs every scenario and the scaling curve; returns the rows.
pub async fn run(scale: &Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    rows.push(listing_scenario("A", 1, scale.a_jobs, scale.raised_rate).await);
    eprintln!("{}", table(&rows));
    rows.extend(fleet_scenarios(scale).await);
    eprintln!("{}", table(&rows));
    rows.push(listing_scenario("C", scale.c_watches, scale.c_jobs, scale.raised_rate).await);
    eprintln!("{}", table(&rows));
    for &n in &scale.curve {
        rows.push(curve_point(n, scale.raised_rate).await);
    }
    rows.push(rate_limit_run(scale.rate_watches).await);
    rows
}

/// The slope of peak RSS over watches from the curve rows, in KiB per watch.
pub fn bytes_per_watch(rows: &[Row]) -> Option<f64> {
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.scenario.starts_with("curve"))
        .map(|r| (r.watches as f64, r.peak_rss_mib))
        .collect();
    let (first, last) = (points.first()?, points.last()?);
    (last.0 > first.0).then(|| (last.1 - first.1) * 1024.0 * 1024.0 / (last.0 - first.0))
}
