//! The performance harness: drives the real operator binary against the real control plane and
//! the emulator, and measures what docs/performance.md reports. `make bench` runs it at full
//! scale (benches/operator.rs); `make test` runs it tiny to prove the harness works.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use personalize_emulator::LoggedRequest;
use personalize_emulator::admin::GenerateRequest;
use personalize_emulator::model::Job;
use personalize_watch::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};

use super::processes::{Emulator, Operator, OperatorOptions, job};
use super::prometheus::Scrape;
use super::{client, control_plane, install_crds, namespace};

/// Jobs are generated this long ago, as a watch's history usually is.
const HISTORY_AGE_SECS: u64 = 24 * 60 * 60;

/// The scenarios of `make bench`, by name; each row of the table names its scenario so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// One watch on one long listing (10,000 jobs).
    OneLongListing,
    /// A fleet's first listings (1,000 watches of 100 jobs).
    Fleet,
    /// The fleet left alone: status writes and CPU per quiet poll.
    QuietFleet,
    /// Jobs failing at once across the fleet: every Event, once, and how late.
    FailureBurst,
    /// Long listings across watches (200 watches of 1,000 jobs).
    LongListings,
    /// A large fleet (10,000 watches of 100 jobs, 200 jobs in status).
    LargeFleet,
    /// Watches of one account due together (200 watches of 3 jobs, every 30 s): one shared
    /// listing a cycle instead of one each.
    Shared,
    /// One solution retrained weekly for a year (52 versions of 2 jobs): calls per poll.
    Solution,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::OneLongListing,
        Scenario::Fleet,
        Scenario::QuietFleet,
        Scenario::FailureBurst,
        Scenario::LongListings,
        Scenario::LargeFleet,
        Scenario::Shared,
        Scenario::Solution,
    ];

    /// The name in the table, in `PW_BENCH_ONLY` and in docs/performance.md.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::OneLongListing => "one-long-listing",
            Scenario::Fleet => "fleet",
            Scenario::QuietFleet => "quiet-fleet",
            Scenario::FailureBurst => "failure-burst",
            Scenario::LongListings => "long-listings",
            Scenario::LargeFleet => "large-fleet",
            Scenario::Shared => "shared",
            Scenario::Solution => "solution",
        }
    }

    /// The first letter of each word of the name: what names its watches' solution versions.
    fn tag(self) -> String {
        self.name()
            .split('-')
            .filter_map(|w| w.chars().next())
            .collect::<String>()
            .to_uppercase()
    }
}

/// Sizes of every scenario.
#[derive(Clone, Debug)]
pub struct Scale {
    pub a_jobs: usize,
    pub b_watches: usize,
    pub b_jobs: usize,
    pub c_watches: usize,
    pub c_jobs: usize,
    pub e_failures: usize,
    /// Poll interval (and active poll interval) of the fleet's watches, seconds.
    pub b_interval_secs: u64,
    /// quiet-fleet: how long the fleet is left alone, and the heartbeat meanwhile (None: the
    /// default, 10m).
    pub d_window_secs: u64,
    pub d_heartbeat: Option<&'static str>,
    pub f_watches: usize,
    pub f_jobs: usize,
    /// The memory curve: watches, jobs each, and the maxJobsInStatus values.
    pub memory_watches: usize,
    pub memory_jobs: usize,
    pub memory_limits: Vec<i32>,
    pub curve: Vec<usize>,
    pub rate_watches: usize,
    /// shared: watches, jobs each, their interval and the window measured, seconds.
    pub shared_watches: usize,
    pub shared_jobs: usize,
    pub shared_interval_secs: u64,
    pub shared_window_secs: u64,
    /// solution: versions, jobs each, the interval and the window measured, seconds.
    pub solution_versions: usize,
    pub solution_jobs: usize,
    pub solution_interval_secs: u64,
    pub solution_window_secs: u64,
    /// The raised rate for the scenarios that measure the operator, not the limit.
    pub raised_rate: f64,
    /// Only these groups (a scenario's name, `memory`, `curve`, `rate`; `fleet` runs
    /// quiet-fleet and failure-burst after it); None: all.
    pub only: Option<Vec<String>>,
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
            b_interval_secs: 30,
            d_window_secs: 660,
            d_heartbeat: None,
            f_watches: 10_000,
            f_jobs: 100,
            memory_watches: 1_000,
            memory_jobs: 200,
            memory_limits: vec![0, 50, 200],
            curve: vec![10, 100, 1_000, 5_000],
            rate_watches: 200,
            shared_watches: 200,
            shared_jobs: 3,
            shared_interval_secs: 30,
            shared_window_secs: 300,
            solution_versions: 52,
            solution_jobs: 2,
            solution_interval_secs: 30,
            solution_window_secs: 150,
            raised_rate: 2_000.0,
            only: None,
        }
    }

    /// The groups named in `PW_BENCH_ONLY` (comma-separated), for measuring one change
    /// without the whole run; quiet-fleet's window from `PW_BENCH_QUIET_SECONDS`.
    pub fn from_env(mut self) -> Self {
        if let Ok(only) = std::env::var("PW_BENCH_ONLY") {
            self.only = Some(only.split(',').map(|g| g.trim().to_string()).collect());
        }
        if let Some(secs) = std::env::var("PW_BENCH_QUIET_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            self.d_window_secs = secs;
        }
        self
    }

    fn runs_scenario(&self, scenario: Scenario) -> bool {
        self.runs(scenario.name())
    }

    fn runs(&self, group: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|g| g == group))
    }

    pub fn tiny() -> Self {
        Scale {
            a_jobs: 250,
            b_watches: 5,
            b_jobs: 20,
            c_watches: 2,
            c_jobs: 150,
            e_failures: 3,
            b_interval_secs: 5,
            d_window_secs: 22,
            d_heartbeat: Some("10s"),
            f_watches: 20,
            f_jobs: 10,
            memory_watches: 3,
            memory_jobs: 4,
            memory_limits: vec![0, 2],
            curve: vec![2, 4],
            rate_watches: 12,
            shared_watches: 10,
            shared_jobs: 3,
            shared_interval_secs: 5,
            shared_window_secs: 20,
            solution_versions: 6,
            solution_jobs: 2,
            solution_interval_secs: 5,
            solution_window_secs: 15,
            raised_rate: 2_000.0,
            only: None,
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
    /// Complete listings made (first pages requested): a shared one serves several polls.
    pub listings: usize,
    /// The per-watch minimum for the polls made: ceil(jobs / 100) calls each, as a watch's
    /// own listing takes.
    pub min_calls: usize,
    pub repeated_calls: usize,
    /// Polls that got their jobs (`personalize_watch_listings_total`).
    pub polls: usize,
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

fn sv_arn(scenario: &str, i: usize) -> String {
    format!("arn:aws:personalize:us-east-1:123456789012:solution/{scenario}{i}/v1")
}

/// A group of watches and the jobs behind each.
#[derive(Clone, Debug)]
struct Fleet {
    label: String,
    watches: usize,
    jobs: usize,
    interval_secs: u64,
    max_jobs_in_status: i32,
    status: &'static str,
    failure_reason: Option<String>,
}

impl Fleet {
    fn new(label: &str, watches: usize, jobs: usize) -> Self {
        Fleet {
            label: label.into(),
            watches,
            jobs,
            interval_secs: 600,
            max_jobs_in_status: 50,
            status: "ACTIVE",
            failure_reason: None,
        }
    }

    fn watch(&self, i: usize) -> SolutionVersionWatch {
        SolutionVersionWatch::new(
            &format!("w{i}"),
            SolutionVersionWatchSpec {
                poll_interval: Some(format!("{}s", self.interval_secs)),
                active_poll_interval: Some(format!("{}s", self.interval_secs)),
                max_jobs_in_status: self.max_jobs_in_status,
                ..SolutionVersionWatchSpec::watching(sv_arn(&self.label, i))
            },
        )
    }

    /// The fleet's jobs in the emulator: history, a day old; ARNs per watch.
    async fn populate(&self, emu: &Emulator) -> Vec<Vec<String>> {
        let mut arns = Vec::with_capacity(self.watches);
        for i in 0..self.watches {
            let batch = GenerateRequest {
                solution_version_arn: sv_arn(&self.label, i),
                count: self.jobs,
                status: Some(self.status.into()),
                name_prefix: Some("job".into()),
                age_seconds: HISTORY_AGE_SECS,
                failure_reason: self.failure_reason.clone(),
            };
            arns.push(emu.generate_batch(&batch).await);
        }
        arns
    }
}

/// A namespace, an emulator and an operator scoped to it.
struct Setup {
    client: Client,
    ns: String,
    emu: Emulator,
    op: Operator,
}

impl Setup {
    /// With a raised Personalize rate (calls per second, burst 10), or the defaults.
    async fn start(name: &str, raised_rate: Option<f64>, extra: &[&str]) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = namespace(&client, name).await;
        let emu = Emulator::start();
        let mut args: Vec<String> = vec![
            "--watch-namespace".into(),
            ns.clone(),
            "--concurrency".into(),
            "32".into(),
        ];
        if let Some(rate) = raised_rate {
            args.extend(["--personalize-rate".into(), rate.to_string()]);
            args.extend(["--personalize-burst".into(), "10".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let op = Operator::start(OperatorOptions {
            kubeconfig: control_plane().kubeconfig.clone(),
            endpoint: &emu.url,
            args,
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

    fn watches(&self) -> Api<SolutionVersionWatch> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates the fleet's watches; seconds until every one lists `jobs` jobs.
    async fn apply(&self, fleet: &Fleet, limit: Duration) -> Option<f64> {
        let started = Instant::now();
        let converged = converge(self.watches(), fleet.watches, fleet.jobs, limit);
        let create = async {
            let api = self.watches();
            let mut pending = futures::stream::iter((0..fleet.watches).map(|i| {
                let api = api.clone();
                let w = fleet.watch(i);
                async move {
                    api.create(&PostParams::default(), &w)
                        .await
                        .expect("create a watch")
                }
            }))
            .buffer_unordered(16);
            while pending.next().await.is_some() {}
        };
        let (converged, ()) = tokio::join!(converged, create);
        converged.then(|| started.elapsed().as_secs_f64())
    }

    /// Deletes the namespace's watches, so etcd does not carry them into the next scenario.
    async fn clean_up(&self) {
        let deleted = self
            .watches()
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        if let Err(e) = deleted {
            eprintln!("could not delete the watches of {}: {e}", self.ns);
        }
    }
}

/// Watches until `watches` watches list `jobs` jobs each (a watch, not repeated lists: at 10,000
/// watches a list would cost more than the operator).
async fn converge(
    api: Api<SolutionVersionWatch>,
    watches: usize,
    jobs: usize,
    limit: Duration,
) -> bool {
    let stream = watcher(api, watcher::Config::default()).applied_objects();
    futures::pin_mut!(stream);
    let mut done = HashSet::new();
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return false,
            next = stream.next() => {
                let Some(Ok(w)) = next else { continue };
                let total = w.status.as_ref().and_then(|s| s.counts.as_ref()).map(|c| c.total);
                if total == Some(jobs as i64) {
                    done.insert(w.metadata.name.unwrap_or_default());
                }
                if done.len() >= watches {
                    return true;
                }
            }
        }
    }
}

/// Counters of the operator and the emulator at one moment, to measure a window.
struct Mark {
    cpu: f64,
    metrics: Scrape,
    calls: usize,
}

impl Mark {
    async fn now(s: &Setup) -> Self {
        Mark {
            cpu: s.op.pid().map_or(0.0, |p| process_usage(p).1),
            metrics: s.op.metrics().await,
            calls: list_calls(&s.emu).await.len(),
        }
    }

    /// The row for the window from this mark to now.
    async fn row(&self, s: &Setup, scenario: &str, jobs_per_watch: usize) -> Row {
        let end = s.op.metrics().await;
        let calls: Vec<LoggedRequest> = list_calls(&s.emu).await.split_off(self.calls);
        let (rss, cpu) = s.op.pid().map_or((0.0, 0.0), process_usage);
        let delta = |name: &str| end.sum(name) - self.metrics.sum(name);
        let polls = delta("personalize_watch_listings_total") as usize;
        let mut row = Row {
            scenario: scenario.into(),
            calls: calls.len(),
            listings: listings(&calls),
            polls,
            min_calls: polls * jobs_per_watch.div_ceil(100).max(1),
            repeated_calls: repeated(&calls),
            status_writes: delta("personalize_watch_status_writes_total"),
            events: delta("personalize_watch_events_total"),
            peak_rss_mib: rss,
            cpu_secs: cpu - self.cpu,
            ..Default::default()
        };
        if row.calls > 0 {
            row.cpu_ms_per_page = row.cpu_secs * 1000.0 / row.calls as f64;
        }
        row
    }
}

async fn list_calls(emu: &Emulator) -> Vec<LoggedRequest> {
    emu.requests()
        .await
        .into_iter()
        .filter(|r| {
            r.operation == "ListBatchInferenceJobs" || r.operation == "ListSolutionVersions"
        })
        .collect()
}

/// Listings started: requests without a page token.
fn listings(calls: &[LoggedRequest]) -> usize {
    calls
        .iter()
        .filter(|r| !r.had_next_token && r.status == 200)
        .count()
}

/// Requests that failed and were sent again.
fn repeated(calls: &[LoggedRequest]) -> usize {
    calls.iter().filter(|r| r.status != 200).count()
}

/// A fleet listed once, from apply to every status complete: A, C, F, the curves.
async fn listing_scenario(scenario: &str, fleet: Fleet, rate: f64) -> Row {
    let s = Setup::start(&fleet.label.to_lowercase(), Some(rate), &[]).await;
    fleet.populate(&s.emu).await;
    let mark = Mark::now(&s).await;
    let converge_secs = s.apply(&fleet, Duration::from_secs(600)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut row = mark.row(&s, scenario, fleet.jobs).await;
    row.watches = fleet.watches;
    row.jobs = fleet.watches * fleet.jobs;
    row.converge_secs = converge_secs;
    row.note = format!(
        "maxJobsInStatus {}; first listing: 1 status write and 1 JobsDiscovered Event per watch",
        fleet.max_jobs_in_status
    );
    s.clean_up().await;
    row
}

/// fleet, then quiet-fleet (the fleet left alone), then failure-burst (jobs failing at once
/// across the fleet).
async fn fleet_scenarios(scale: &Scale) -> Vec<Row> {
    let heartbeat: Vec<&str> = scale
        .d_heartbeat
        .map_or(vec![], |h| vec!["--status-heartbeat", h]);
    let s = Setup::start("b", Some(scale.raised_rate), &heartbeat).await;
    let fleet = Fleet {
        interval_secs: scale.b_interval_secs,
        ..Fleet::new(&Scenario::Fleet.tag(), scale.b_watches, scale.b_jobs - 1)
    };
    fleet.populate(&s.emu).await;
    let mut running = Vec::new();
    for i in 0..fleet.watches {
        running.push(
            s.emu
                .generate(&sv_arn(&Scenario::Fleet.tag(), i), 1, "IN PROGRESS", "run")
                .await
                .remove(0),
        );
    }
    let b = {
        let mark = Mark::now(&s).await;
        let converge_secs = s
            .apply(
                &Fleet {
                    jobs: scale.b_jobs,
                    ..fleet.clone()
                },
                Duration::from_secs(240),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut b = mark.row(&s, Scenario::Fleet.name(), scale.b_jobs).await;
        b.watches = fleet.watches;
        b.jobs = fleet.watches * scale.b_jobs;
        b.converge_secs = converge_secs;
        b.note = "first listing: 1 status write and 1 JobsDiscovered Event per watch".into();
        b
    };
    let d = quiet_fleet(&s, scale, fleet.watches).await;
    let e = failures_across(&s, scale, &running).await;
    vec![b, d, e]
}

/// quiet-fleet: the fleet left alone for a window: status writes per watch per hour (heartbeats only) and
/// CPU per poll.
async fn quiet_fleet(s: &Setup, scale: &Scale, watches: usize) -> Row {
    let mark = Mark::now(s).await;
    tokio::time::sleep(Duration::from_secs(scale.d_window_secs)).await;
    let mut d = mark.row(s, Scenario::QuietFleet.name(), scale.b_jobs).await;
    d.watches = watches;
    d.jobs = watches * scale.b_jobs;
    let hours = scale.d_window_secs as f64 / 3600.0;
    let per_hour = d.status_writes / watches as f64 / hours;
    let per_poll = if d.listings > 0 {
        d.cpu_secs * 1000.0 / d.listings as f64
    } else {
        0.0
    };
    d.note = format!(
        "{}s alone, polls every {}s, heartbeat {}: {per_hour:.2} status writes per watch per hour; {per_poll:.3} ms CPU per poll",
        scale.d_window_secs,
        scale.b_interval_secs,
        scale.d_heartbeat.unwrap_or("10m (default)")
    );
    d
}

/// Records when each job's first failure Event appears, and any repeat.
fn watch_failure_events(
    s: &Setup,
) -> (
    Arc<Mutex<HashMap<String, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let events: Api<Event> = Api::namespaced(s.client.clone(), &s.ns);
    let recorded = seen.clone();
    let task = tokio::spawn(async move {
        let stream = watcher(events, watcher::Config::default()).applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(e)) = stream.next().await {
            if e.reason.as_deref() == Some("BatchInferenceJobFailed")
                && let Some(job) = e.related.and_then(|r| r.name)
            {
                let mut seen = recorded.lock().unwrap();
                let key = format!(
                    "{}/{job}",
                    e.regarding.and_then(|r| r.name).unwrap_or_default()
                );
                if seen.contains_key(&key) {
                    seen.insert(format!("{key}#repeat"), Instant::now());
                } else {
                    seen.insert(key, Instant::now());
                }
            }
        }
    });
    (seen, task)
}

/// E: one job fails in each of `e_failures` watches at once; latency from the change to its
/// Event.
async fn failures_across(s: &Setup, scale: &Scale, running: &[String]) -> Row {
    let (seen, task) = watch_failure_events(s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = scale.e_failures.min(running.len());
    let mark = Mark::now(s).await;
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
    while failed_at.elapsed() < limit && seen.lock().unwrap().len() < failures {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    task.abort();
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
    let mut e = mark
        .row(s, Scenario::FailureBurst.name(), scale.b_jobs)
        .await;
    e.watches = failures;
    e.jobs = failures;
    e.latency_p50 = pct(0.5);
    e.latency_p99 = pct(0.99);
    e.note = format!(
        "{}/{} failure Events seen, {} repeated; activePollInterval {}s",
        latencies.len(),
        failures,
        seen.keys().filter(|k| k.ends_with("#repeat")).count(),
        scale.b_interval_secs
    );
    e
}

/// The default limit during a backlog: calls per second at or under rate + burst, and the share
/// of the rate achieved.
async fn rate_limit_run(watches: usize) -> Row {
    // Each watch lists on its own: one shared listing would leave no backlog to measure.
    let s = Setup::start("rate", None, &["--shared-listings=false"]).await;
    let fleet = Fleet {
        max_jobs_in_status: 5,
        ..Fleet::new("R", watches, 1)
    };
    fleet.populate(&s.emu).await;
    let converge_secs = s.apply(&fleet, Duration::from_secs(240)).await;
    let calls = list_calls(&s.emu).await;
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
    s.clean_up().await;
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

/// The memory curve: the same watches with maxJobsInStatus from 0 to 200 and 1 KiB failure
/// reasons, each in a fresh operator.
async fn memory_curve(scale: &Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    for &limit in &scale.memory_limits {
        let fleet = Fleet {
            max_jobs_in_status: limit,
            status: "CREATE FAILED",
            failure_reason: Some("r".repeat(1024)),
            ..Fleet::new(
                &format!("M{limit}-"),
                scale.memory_watches,
                scale.memory_jobs,
            )
        };
        let scenario = format!("memory {limit}");
        rows.push(listing_scenario(&scenario, fleet, scale.raised_rate).await);
    }
    rows
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | watches | jobs | apply to complete (s) | polls | listings | calls / per-watch minimum | failed calls | status writes | events | peak RSS (MiB) | CPU (s) | CPU ms per page | event latency p50 / p99 (s) | notes |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
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
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} | {} | {} |",
            r.scenario,
            r.watches,
            r.jobs,
            converge,
            r.polls,
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
        )
        .expect("writing to a String");
    }
    out
}

/// Runs every scenario and the curves; returns the rows (printing the table as it grows).
pub async fn run(scale: &Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    if scale.runs_scenario(Scenario::OneLongListing) {
        let a = Fleet::new(&Scenario::OneLongListing.tag(), 1, scale.a_jobs);
        rows.push(listing_scenario(Scenario::OneLongListing.name(), a, scale.raised_rate).await);
    }
    if scale.runs_scenario(Scenario::Fleet) {
        rows.extend(fleet_scenarios(scale).await);
        eprintln!("{}", table(&rows));
    }
    if scale.runs_scenario(Scenario::LongListings) {
        let c = Fleet::new(&Scenario::LongListings.tag(), scale.c_watches, scale.c_jobs);
        rows.push(listing_scenario(Scenario::LongListings.name(), c, scale.raised_rate).await);
    }
    if scale.runs_scenario(Scenario::LargeFleet) {
        let f = Fleet {
            max_jobs_in_status: 200,
            ..Fleet::new(&Scenario::LargeFleet.tag(), scale.f_watches, scale.f_jobs)
        };
        rows.push(listing_scenario(Scenario::LargeFleet.name(), f, scale.raised_rate).await);
        eprintln!("{}", table(&rows));
    }
    if scale.runs("memory") {
        rows.extend(memory_curve(scale).await);
    }
    if scale.runs("curve") {
        for &n in &scale.curve {
            let fleet = Fleet::new(&format!("curve{n}-"), n, 1);
            rows.push(listing_scenario(&format!("curve {n}"), fleet, scale.raised_rate).await);
        }
    }
    if scale.runs("rate") {
        rows.push(rate_limit_run(scale.rate_watches).await);
    }
    if scale.runs_scenario(Scenario::Shared) {
        rows.push(shared_scenario(scale).await);
    }
    if scale.runs_scenario(Scenario::Solution) {
        rows.push(solution_scenario(scale).await);
    }
    rows
}

/// shared: watches of one account with a few jobs each, all polling every interval, from
/// apply over the window: Personalize calls per cycle, against one listing per watch.
async fn shared_scenario(scale: &Scale) -> Row {
    let s = Setup::start("shared", Some(scale.raised_rate), &[]).await;
    let fleet = Fleet {
        interval_secs: scale.shared_interval_secs,
        ..Fleet::new(
            &Scenario::Shared.tag(),
            scale.shared_watches,
            scale.shared_jobs,
        )
    };
    fleet.populate(&s.emu).await;
    let mark = Mark::now(&s).await;
    let started = Instant::now();
    let converge_secs = s.apply(&fleet, Duration::from_secs(240)).await;
    // The first cycle: every watch's own listing, which learns the sizes.
    let first = mark.row(&s, Scenario::Shared.name(), fleet.jobs).await;
    let window = Duration::from_secs(scale.shared_window_secs);
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let mut row = mark.row(&s, Scenario::Shared.name(), fleet.jobs).await;
    row.watches = fleet.watches;
    row.jobs = fleet.watches * fleet.jobs;
    row.converge_secs = converge_secs;
    // A cycle: every watch polled once.
    let cycles = row.polls.saturating_sub(first.polls) as f64 / fleet.watches as f64;
    let per_cycle = (row.calls - first.calls) as f64 / cycles.max(1.0);
    row.note = format!(
        "first cycle {} calls (each watch's own listing, which learns the sizes); then {per_cycle:.1} Personalize calls per cycle over {cycles:.1} cycles of {}s in {}s from apply, against {} (one listing per watch): {:.3} of the per-watch minimum; target ceil({}/100) + 1 = {}",
        first.calls,
        scale.shared_interval_secs,
        scale.shared_window_secs,
        fleet.watches,
        per_cycle / fleet.watches as f64,
        row.jobs,
        row.jobs.div_ceil(100) + 1
    );
    s.clean_up().await;
    row
}

/// solution: one solution watch over a year of weekly versions: calls per poll, against
/// ListSolutionVersions and a listing per version.
async fn solution_scenario(scale: &Scale) -> Row {
    let s = Setup::start("solution", Some(scale.raised_rate), &[]).await;
    let solution = "arn:aws:personalize:us-east-1:123456789012:solution/yearly";
    for week in 0..scale.solution_versions {
        let batch = GenerateRequest {
            solution_version_arn: format!("{solution}/week{week:02}"),
            count: scale.solution_jobs,
            status: Some("ACTIVE".into()),
            name_prefix: Some(format!("week{week:02}")),
            age_seconds: HISTORY_AGE_SECS,
            failure_reason: None,
        };
        s.emu.generate_batch(&batch).await;
    }
    let every = format!("{}s", scale.solution_interval_secs);
    let watch = SolutionVersionWatch::new(
        "yearly",
        SolutionVersionWatchSpec {
            poll_interval: Some(every.clone()),
            active_poll_interval: Some(every),
            ..SolutionVersionWatchSpec::watching_solution(solution)
        },
    );
    let jobs = scale.solution_versions * scale.solution_jobs;
    let mark = Mark::now(&s).await;
    let started = Instant::now();
    let converged = converge(s.watches(), 1, jobs, Duration::from_secs(120));
    let create = async {
        s.watches()
            .create(&PostParams::default(), &watch)
            .await
            .expect("create the solution watch")
    };
    let (converged, _) = tokio::join!(converged, create);
    let converge_secs = converged.then(|| started.elapsed().as_secs_f64());
    // The first poll (its own listing) learns the sizes; the polls after it show the plan.
    let first = mark.row(&s, Scenario::Solution.name(), jobs).await;
    let window = Duration::from_secs(scale.solution_window_secs);
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let mut row = mark.row(&s, Scenario::Solution.name(), jobs).await;
    let own = scale.solution_versions.div_ceil(100).max(1)
        + scale.solution_versions * scale.solution_jobs.div_ceil(100).max(1);
    row.watches = 1;
    row.jobs = jobs;
    row.converge_secs = converge_secs;
    row.min_calls = row.polls * own;
    let later =
        (row.calls - first.calls) as f64 / row.polls.saturating_sub(first.polls).max(1) as f64;
    row.note = format!(
        "{} versions of {} jobs: the first poll {} calls (ListSolutionVersions and a listing per version, which learn the sizes), then {later:.2} calls per poll over {} polls, against {own} each",
        scale.solution_versions,
        scale.solution_jobs,
        first.calls,
        row.polls.saturating_sub(first.polls)
    );
    s.clean_up().await;
    row
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
