//! `make bench`: the operator's speed, memory and call counts at scale, against the real
//! control plane (KUBECONFIG, started by hack/bench.sh) and the emulator. Prints one table and
//! writes it to target/bench-operator.md. See docs/performance.md.

use personalize_watch_testkit::bench::{self, Scale};

#[tokio::main]
async fn main() {
    let started = std::time::Instant::now();
    let rows = bench::run(&Scale::full().from_env()).await;
    let mut report = bench::table(&rows);
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
