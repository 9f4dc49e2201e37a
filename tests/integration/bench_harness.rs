//! The performance harness itself works (tiny sizes); `make bench` runs it at scale. One test
//! per group of scenarios, so they run side by side (`Scale::only`, as `PW_BENCH_ONLY` does).

use crate::support::bench::{self, Row, Scale, Scenario};

/// The tiny scale, running only `groups`; its rows and their table, checked for shape.
async fn run_only(groups: &[&str]) -> (Vec<Row>, String) {
    let scale = Scale {
        only: Some(groups.iter().map(|g| g.to_string()).collect()),
        ..Scale::tiny()
    };
    let rows = bench::run(&scale).await;
    let table = bench::table(&rows);
    for group in groups {
        assert!(
            rows.iter().any(|r| r.scenario.starts_with(group)),
            "no row for {group}:\n{table}"
        );
    }
    assert!(table.lines().count() >= rows.len() + 2);
    // Every row has as many cells as the header.
    let cells = |l: &str| l.matches('|').count();
    let header = cells(table.lines().next().unwrap());
    assert!(
        table.lines().all(|l| cells(l) == header),
        "ragged table:\n{table}"
    );
    (rows, table)
}

#[tokio::test]
async fn bench_harness_measures_the_listing_scenarios() {
    let listings = [
        Scenario::OneLongListing,
        Scenario::LongListings,
        Scenario::LargeFleet,
    ]
    .map(Scenario::name);
    let (rows, table) = run_only(&listings).await;
    for r in &rows {
        assert!(
            r.converge_secs.is_some(),
            "{} did not converge:\n{table}",
            r.scenario
        );
        assert!(
            r.calls <= r.min_calls && r.polls >= r.watches,
            "{} made more calls than its watches' own listings take:\n{table}",
            r.scenario
        );
        assert!(
            r.peak_rss_mib > 1.0 && r.cpu_secs > 0.0,
            "process figures:\n{table}"
        );
    }
}

#[tokio::test]
async fn bench_harness_measures_the_fleet_its_quiet_time_and_a_failure_burst() {
    let (rows, table) = run_only(&[Scenario::Fleet.name()]).await;
    let row = |s: Scenario| {
        rows.iter()
            .find(|r| r.scenario == s.name())
            .unwrap_or_else(|| panic!("no row for {}:\n{table}", s.name()))
    };
    let b = row(Scenario::Fleet);
    assert!(
        b.converge_secs.is_some(),
        "fleet did not converge:\n{table}"
    );
    assert!(
        b.calls <= b.min_calls,
        "fleet made more calls than its watches' own listings take:\n{table}"
    );
    // quiet-fleet: the fleet alone: no Event, heartbeats only (10s heartbeat, 22s window: at
    // most two writes per watch).
    let d = row(Scenario::QuietFleet);
    assert_eq!(d.events, 0.0, "{table}");
    assert!(d.polls >= d.watches * 3, "the fleet kept polling:\n{table}");
    assert!(d.status_writes <= (d.watches * 2) as f64, "{table}");
    assert!(
        d.note.contains("status writes per watch per hour"),
        "{table}"
    );
    let e = row(Scenario::FailureBurst);
    assert!(
        e.latency_p99.is_some(),
        "failure-burst saw its Events:\n{table}"
    );
    let failures = Scale::tiny().e_failures;
    assert!(
        e.note.starts_with(&format!("{failures}/{failures} ")),
        "every failure announced:\n{table}"
    );
}

#[tokio::test]
async fn bench_harness_measures_memory_the_scaling_curve_and_the_rate_limit() {
    let (rows, table) = run_only(&["memory", "curve", "rate"]).await;
    for row in ["memory 0", "memory 2", "rate"] {
        assert!(
            rows.iter().any(|r| r.scenario == row),
            "no row for {row}:\n{table}"
        );
    }
    assert!(bench::bytes_per_watch(&rows).is_some(), "{table}");
}

#[tokio::test]
async fn bench_harness_measures_shared_listings_and_a_solution_s_calls_per_poll() {
    let groups = [Scenario::Shared, Scenario::Solution].map(Scenario::name);
    let (rows, table) = run_only(&groups).await;
    let shared = rows
        .iter()
        .find(|r| r.scenario == "shared")
        .expect("shared row");
    // A cycle: every watch polled once. The first is each watch's own listing, then one
    // account-wide listing a cycle.
    let cycles = shared.polls.div_ceil(shared.watches);
    let most = shared.watches + (cycles - 1) * shared.jobs.div_ceil(100);
    assert!(
        shared.converge_secs.is_some()
            && cycles >= 3
            && shared.calls <= most
            && shared.calls < shared.min_calls,
        "shared: {} calls over {cycles} cycles, at most {most}:\n{table}",
        shared.calls
    );
    assert!(shared.note.contains("calls per cycle"), "{table}");
    let solution = rows
        .iter()
        .find(|r| r.scenario == "solution")
        .expect("solution row");
    // The first poll's own listing (1 + 6 versions), then one page a poll.
    let own = 1 + Scale::tiny().solution_versions;
    assert!(
        solution.converge_secs.is_some()
            && solution.polls >= 3
            && solution.calls <= own + (solution.polls - 1) * 2
            && solution.calls < solution.min_calls
            && solution.note.contains("then 1.00 calls per poll"),
        "solution: {} calls over {} polls:\n{table}",
        solution.calls,
        solution.polls
    );
}
