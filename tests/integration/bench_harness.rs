//! The performance harness itself works (tiny sizes); `make bench` runs it at scale.

use crate::support::bench::{self, Scale, Scenario};

#[tokio::test]
async fn bench_harness_measures_every_scenario() {
    let scale = Scale::tiny();
    let rows = bench::run(&scale).await;
    let table = bench::table(&rows);
    let named = Scenario::ALL.map(Scenario::name);
    for scenario in named.into_iter().chain(["memory 0", "memory 2", "rate"]) {
        assert!(
            rows.iter().any(|r| r.scenario == scenario),
            "no row for {scenario}:\n{table}"
        );
    }
    for r in rows.iter().filter(|r| {
        [
            Scenario::OneLongListing,
            Scenario::Fleet,
            Scenario::LongListings,
            Scenario::LargeFleet,
        ]
        .map(Scenario::name)
        .contains(&r.scenario.as_str())
    }) {
        assert!(
            r.converge_secs.is_some(),
            "{} did not converge:\n{table}",
            r.scenario
        );
        assert_eq!(
            r.calls, r.min_calls,
            "{} made more calls than needed:\n{table}",
            r.scenario
        );
        assert!(
            r.peak_rss_mib > 1.0 && r.cpu_secs > 0.0,
            "process figures:\n{table}"
        );
    }
    // quiet-fleet: the fleet alone: no Event, heartbeats only (10s heartbeat, 22s window: at
    // most two writes per watch).
    let d = rows
        .iter()
        .find(|r| r.scenario == Scenario::QuietFleet.name())
        .unwrap();
    assert_eq!(d.events, 0.0, "{table}");
    assert!(
        d.listings >= d.watches * 3,
        "the fleet kept polling:\n{table}"
    );
    assert!(d.status_writes <= (d.watches * 2) as f64, "{table}");
    assert!(
        d.note.contains("status writes per watch per hour"),
        "{table}"
    );
    let e = rows
        .iter()
        .find(|r| r.scenario == Scenario::FailureBurst.name())
        .unwrap();
    assert!(
        e.latency_p99.is_some(),
        "failure-burst saw its Events:\n{table}"
    );
    assert!(
        e.note.starts_with(&format!("{0}/{0} ", scale.e_failures)),
        "every failure announced:\n{table}"
    );
    assert!(bench::bytes_per_watch(&rows).is_some());
    assert!(table.lines().count() >= rows.len() + 2);
    // Every row has as many cells as the header.
    let cells = |l: &str| l.matches('|').count();
    let header = cells(table.lines().next().unwrap());
    assert!(
        table.lines().all(|l| cells(l) == header),
        "ragged table:\n{table}"
    );
}
