//! `make bench`: the operator's speed, memory and call counts at scale, against the real
//! control plane (KUBECONFIG, started by hack/bench.sh) and the emulator. Prints one table and
//! writes it to target/bench-operator.md. See docs/performance.md.

use personalize_watch_testkit::bench::{self, Scale};

#[tokio::main]
async fn main() {
    let started = std::time::Instant::now();
    let hashing = hashing();
    println!("{hashing}");
    let rows = bench::run(&Scale::full().from_env()).await;
    let mut report = bench::table(&rows);
    report.push_str(&format!("\n{hashing}\n"));
    if let Some(slope) = bench::bytes_per_watch(&rows) {
        report.push_str(&format!(
            "\npeak RSS grows by {:.1} KiB per watch (scaling curve slope)\n",
            slope / 1024.0
        ));
    }
    report.push_str(&format!(
        "\nmachine: {} cores; total bench time {:.0}s\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    ));
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&out).expect("target/ is writable");
    std::fs::write(out.join("bench-operator.md"), &report).expect("target/ is writable");
}

/// The bench row "hashing": what SHA-256 job ids and the job-list digest cost per poll, for a
/// listing of 10,000 jobs and a status showing 200 of them (the best of five rounds).
fn hashing() -> String {
    use personalize_watch::crd::JobSummary;
    use personalize_watch::events::ledger::job_hash;
    use personalize_watch::personalize::ListedJob;
    use personalize_watch::status::jobs::digest_of;
    use std::time::{Duration, Instant};

    let arn = "arn:aws:personalize:us-east-1:123456789012:batch-inference-job";
    let jobs: Vec<ListedJob> = (0..10_000)
        .map(|i| ListedJob {
            arn: format!("{arn}/bench-job-{i:05}"),
            name: format!("bench-job-{i:05}"),
            status: "ACTIVE".into(),
            ..Default::default()
        })
        .collect();
    let summaries: Vec<JobSummary> = jobs
        .iter()
        .take(200)
        .map(|j| JobSummary {
            name: j.name.clone(),
            arn: j.arn.clone(),
            status: j.status.clone(),
            ..Default::default()
        })
        .collect();
    let best = |f: &dyn Fn() -> usize| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO)
    };
    let ids = best(&|| jobs.iter().filter_map(job_hash).count());
    let digest = best(&|| digest_of(&summaries, false).len());
    format!(
        "hashing: 10,000 job ids in {:.2} ms ({:.0} ns each); the digest of 200 summaries in {:.0} µs",
        ids.as_secs_f64() * 1e3,
        ids.as_nanos() as f64 / 10_000.0,
        digest.as_secs_f64() * 1e6
    )
}
