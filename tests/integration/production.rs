//! Running it in production: admin server and metrics, readiness, leader election, scoping,
//! the process-wide rate limit, graceful shutdown and logs.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use personalize_emulator::faults::{FaultKind, FaultRule};
use personalize_watch::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};

use crate::support::fixture::start_operator;
use crate::support::prometheus::Scrape;
use crate::support::{
    self, Emulator, Fixture, Operator, OperatorOptions, PrivateControlPlane, http, total, wait_for,
};

fn metric_value(text: &str, series: &str) -> Option<f64> {
    Scrape::parse(text).value(series)
}

fn metric_sum(text: &str, name: &str) -> f64 {
    Scrape::parse(text).sum(name)
}

#[tokio::test]
async fn metrics_after_a_reconcile_show_the_right_values() {
    let mut f = Fixture::start("metrics").await;
    let sv = support::solution_version_arn("metered");
    f.emu.generate(&sv, 130, "ACTIVE", "job").await;
    f.emu.generate(&sv, 4, "CREATE FAILED", "bad").await;
    f.emu.generate(&sv, 2, "PENDING", "wait").await;
    f.apply_watch("metered", &sv, "").await;
    f.wait_status("metered", Duration::from_secs(30), "136 jobs", |w| {
        total(w) == Some(136)
    })
    .await;
    // The duration is observed when the reconcile returns, just after the status write.
    let url = f.op.admin_url.clone();
    let text = wait_for(Duration::from_secs(10), "the reconcile recorded", || {
        let url = url.clone();
        async move {
            let text = http::request("GET", &url, "/metrics", None)
                .await
                .ok()?
                .body;
            (metric_sum(&text, "personalize_watch_reconcile_duration_seconds_count") >= 1.0)
                .then_some(text)
        }
    })
    .await;
    let ns = &f.ns;
    let job = |state: &str| {
        metric_value(
            &text,
            &format!(
                "personalize_watch_jobs{{namespace=\"{ns}\",name=\"metered\",state=\"{state}\"}}"
            ),
        )
    };
    assert_eq!(job("active"), Some(130.0), "{text}");
    assert_eq!(job("failed"), Some(4.0));
    assert_eq!(job("pending"), Some(2.0));
    assert_eq!(job("in_progress"), Some(0.0));
    assert_eq!(
        metric_value(
            &text,
            "personalize_watch_personalize_requests_total{operation=\"ListBatchInferenceJobs\",outcome=\"Success\"}"
        ),
        Some(2.0),
        "ceil(136/100) calls"
    );
    assert!(metric_sum(&text, "personalize_watch_reconciles_total") >= 1.0);
    assert!(metric_sum(&text, "personalize_watch_reconcile_duration_seconds_count") >= 1.0);
    assert_eq!(metric_value(&text, "personalize_watch_watches"), Some(1.0));
    assert_eq!(metric_value(&text, "personalize_watch_leader"), Some(1.0));
    let age = metric_value(
        &text,
        &format!(
            "personalize_watch_seconds_since_last_sync{{namespace=\"{ns}\",name=\"metered\"}}"
        ),
    )
    .expect("age of the last sync");
    assert!((0.0..30.0).contains(&age), "{age}");

    // Throttled polls are counted apart and show in the condition.
    f.emu
        .fault(
            FaultRule::new(FaultKind::Throttle)
                .times(1000)
                .for_subject(&sv),
        )
        .await;
    f.op.kill();
    f.op = start_operator(&f.ns, &f.emu, vec!["--aws-max-attempts".into(), "1".into()]);
    f.wait_status(
        "metered",
        Duration::from_secs(30),
        "Ready=False Throttled",
        |w| support::condition(w, "Ready") == Some(("False".into(), "Throttled".into())),
    )
    .await;
    // Errors are counted when the reconcile returns, just after the status write.
    let url = f.op.admin_url.clone();
    wait_for(Duration::from_secs(10), "throttling counted", || {
        let url = url.clone();
        async move {
            let text = http::request("GET", &url, "/metrics", None)
                .await
                .ok()?
                .body;
            let throttled = metric_sum(
                &text,
                "personalize_watch_personalize_throttled_requests_total",
            );
            let errors = metric_value(
                &text,
                "personalize_watch_reconcile_errors_total{reason=\"Throttled\"}",
            );
            (throttled >= 1.0 && errors.unwrap_or(0.0) >= 1.0).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn readyz_is_503_until_the_watch_cache_syncs() {
    let cp = PrivateControlPlane::start("readyz");
    let client = support::client_for(&cp.kubeconfig).await;
    support::install_crds(&client).await;
    let emu = Emulator::start();
    // The API server is paused: the operator is alive but cannot sync.
    cp.signal_apiserver("STOP");
    let op = Operator::start(OperatorOptions {
        kubeconfig: cp.kubeconfig.clone(),
        endpoint: &emu.url,
        args: vec![],
        env: vec![],
    });
    let url = op.admin_url.clone();
    wait_for(Duration::from_secs(10), "/healthz", || {
        let url = url.clone();
        async move {
            (http::request("GET", &url, "/healthz", None)
                .await
                .ok()?
                .status
                == 200)
                .then_some(())
        }
    })
    .await;
    let before = http::get(&op.admin_url, "/readyz").await;
    cp.signal_apiserver("CONT");
    assert_eq!(before.status, 503, "{}", before.body);
    op.wait_ready().await;
    assert_eq!(http::get(&op.admin_url, "/readyz").await.status, 200);
}

fn leader_options(ns: &str, name: &str) -> Vec<String> {
    vec![
        "--leader-election".into(),
        "--lease-namespace".into(),
        ns.into(),
        "--lease-duration".into(),
        "6s".into(),
        "--instance".into(),
        name.into(),
    ]
}

async fn leader_metric(op: &Operator) -> Option<f64> {
    let reply = http::request("GET", &op.admin_url, "/metrics", None)
        .await
        .ok()?;
    metric_value(&reply.body, "personalize_watch_leader")
}

#[tokio::test]
async fn leader_election_hands_over_without_losing_or_repeating_an_event() {
    let mut f = Fixture::start_with("leader", vec![]).await;
    // The fixture's plain operator is not part of this test.
    f.op.kill();
    let sv = support::solution_version_arn("ha");
    let arns = f.emu.generate(&sv, 4, "IN PROGRESS", "job").await;
    let a = start_operator(&f.ns, &f.emu, leader_options(&f.ns, "replica-a"));
    a.wait_ready().await;
    let b = start_operator(&f.ns, &f.emu, leader_options(&f.ns, "replica-b"));
    b.wait_ready().await;
    f.apply_watch("ha", &sv, "  activePollInterval: 5s\n").await;
    f.wait_status("ha", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(4)
    })
    .await;

    let leases: Api<Lease> = Api::namespaced(f.client.clone(), &f.ns);
    let holder = wait_for(Duration::from_secs(15), "a lease holder", || {
        let leases = leases.clone();
        async move {
            leases
                .get("personalize-watch")
                .await
                .ok()?
                .spec?
                .holder_identity
        }
    })
    .await;
    let (mut leader, standby, standby_name) = if holder == "replica-a" {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    // Exactly one leads.
    assert_eq!(leader_metric(&leader).await, Some(1.0));
    assert_eq!(leader_metric(&standby).await, Some(0.0));

    // The leader dies; a job fails during the handover.
    leader.kill();
    let killed = Instant::now();
    f.emu
        .set_status(&arns[0], "CREATE FAILED", Some("during handover"))
        .await;
    let new_holder = wait_for(
        Duration::from_secs(20),
        "the standby to take the lease",
        || {
            let leases = leases.clone();
            async move {
                let h = leases
                    .get("personalize-watch")
                    .await
                    .ok()?
                    .spec?
                    .holder_identity?;
                (h == standby_name).then_some(h)
            }
        },
    )
    .await;
    let took = killed.elapsed();
    assert_eq!(new_holder, standby_name);
    assert!(
        took <= Duration::from_secs(6 + 2),
        "took over after {took:?}; lease duration 6s"
    );
    wait_for(Duration::from_secs(20), "the failure Event", || async {
        (f.job_events("BatchInferenceJobFailed", "job-1").await > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(f.job_events("BatchInferenceJobFailed", "job-1").await, 1);
    assert_eq!(leader_metric(&standby).await, Some(1.0));
    drop(standby);
}

#[tokio::test]
async fn sigterm_exits_0_quickly_and_releases_the_lease() {
    let mut f = Fixture::start("sigterm").await;
    f.op.kill();
    let sv = support::solution_version_arn("term");
    f.emu.generate(&sv, 3, "ACTIVE", "job").await;
    let mut op = start_operator(&f.ns, &f.emu, leader_options(&f.ns, "only"));
    op.wait_ready().await;
    f.apply_watch("term", &sv, "").await;
    f.wait_status("term", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(3)
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(f.client.clone(), &f.ns);
    wait_for(Duration::from_secs(15), "the lease held", || {
        let leases = leases.clone();
        async move {
            leases
                .get("personalize-watch")
                .await
                .ok()?
                .spec?
                .holder_identity
                .filter(|h| h == "only")
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, took) = op.stop_with("TERM");
    assert_eq!(code, Some(0), "exit code; log:\n{}", op.logs());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let lease = leases.get("personalize-watch").await.unwrap();
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(holder.is_empty(), "lease still held by {holder:?}");
}

#[tokio::test]
async fn watch_namespace_and_label_selector_scope_the_operator() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let a = support::namespace(&client, "scope-a").await;
    let b = support::namespace(&client, "scope-b").await;
    let emu = Emulator::start();
    let sv = support::solution_version_arn("scoped");
    emu.generate(&sv, 2, "ACTIVE", "job").await;
    let op = Operator::start(OperatorOptions {
        kubeconfig: support::control_plane().kubeconfig.clone(),
        endpoint: &emu.url,
        args: vec![
            "--watch-namespace".into(),
            a.clone(),
            "--label-selector".into(),
            "shard=one".into(),
        ],
        env: vec![],
    });
    op.wait_ready().await;
    let make = |name: &str, shard: &str| {
        let mut w = SolutionVersionWatch::new(
            name,
            SolutionVersionWatchSpec {
                poll_interval: Some("5m".into()),
                active_poll_interval: Some("1m".into()),
                ..SolutionVersionWatchSpec::watching(sv.clone())
            },
        );
        w.metadata.labels = Some([("shard".to_string(), shard.to_string())].into());
        w
    };
    let in_a: Api<SolutionVersionWatch> = Api::namespaced(client.clone(), &a);
    let in_b: Api<SolutionVersionWatch> = Api::namespaced(client.clone(), &b);
    in_a.create(&PostParams::default(), &make("mine", "one"))
        .await
        .unwrap();
    in_a.create(&PostParams::default(), &make("other-shard", "two"))
        .await
        .unwrap();
    in_b.create(&PostParams::default(), &make("other-namespace", "one"))
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the watch in scope synced", || {
        let in_a = in_a.clone();
        async move { total(&in_a.get("mine").await.ok()?).map(|_| ()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        in_a.get("other-shard").await.unwrap().status.is_none(),
        "another shard untouched"
    );
    assert!(
        in_b.get("other-namespace").await.unwrap().status.is_none(),
        "another namespace untouched"
    );
    drop(op);
}

#[tokio::test]
async fn rate_limit_holds_for_200_watches_and_all_converge() {
    let f = Fixture::start_with(
        "ratelimit",
        vec![
            "--personalize-rate".into(),
            "5".into(),
            "--personalize-burst".into(),
            "5".into(),
        ],
    )
    .await;
    let api = f.watches();
    for i in 0..200 {
        let sv = support::solution_version_arn(&format!("rl{i}"));
        f.emu.generate(&sv, 3, "ACTIVE", &format!("rl{i}")).await;
        let w = SolutionVersionWatch::new(
            &format!("w{i}"),
            SolutionVersionWatchSpec {
                poll_interval: Some("10m".into()),
                active_poll_interval: Some("1m".into()),
                max_jobs_in_status: 5,
                ..SolutionVersionWatchSpec::watching(sv)
            },
        );
        api.create(&PostParams::default(), &w).await.unwrap();
    }
    wait_for(Duration::from_secs(120), "all 200 watches listed", || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.ok()?;
            (list.items.iter().filter(|w| total(w) == Some(3)).count() == 200).then_some(())
        }
    })
    .await;
    let times: Vec<i64> = f
        .emu
        .requests()
        .await
        .iter()
        .filter(|r| r.operation == "ListBatchInferenceJobs")
        .map(|r| r.time_ms)
        .collect();
    assert!(times.len() >= 200);
    let mut worst = 0;
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|x| **x < t + 1000).count();
        worst = worst.max(in_window);
    }
    assert!(
        worst <= 10,
        "{worst} calls in one second; limit 5/s + burst 5"
    );
    let per_second = times.len() as f64 / ((times[times.len() - 1] - times[0]) as f64 / 1000.0);
    assert!(per_second >= 4.0, "backlog drained at {per_second:.2}/s");
}

#[tokio::test]
async fn json_logs_name_the_watch_in_every_reconcile_span() {
    let mut f = Fixture::start("logs").await;
    f.op.kill();
    f.op = start_operator(&f.ns, &f.emu, vec!["--log-format".into(), "json".into()]);
    f.op.wait_ready().await;
    let sv = support::solution_version_arn("logged");
    f.emu.generate(&sv, 1, "ACTIVE", "job").await;
    f.apply_watch("logged", &sv, "").await;
    f.wait_status("logged", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = f.op.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let expected = format!("{}/logged", f.ns);
    let published = lines
        .iter()
        .find(|l| l["message"] == "published event")
        .expect("a log line for the published event");
    assert_eq!(published["span"]["watch"], expected.as_str(), "{published}");
    assert!(
        !logs.contains(support::FAKE_SECRET_ACCESS_KEY),
        "the secret key never appears in logs"
    );
}

/// Per-watch series follow the watches: a deleted watch's go and stay gone, a suspended watch
/// keeps its last sync time but does not age into the stale alert.
#[tokio::test]
async fn per_watch_metrics_follow_the_watches() {
    let f = Fixture::start("series").await;
    for name in ["kept", "gone", "paused"] {
        let sv = support::solution_version_arn(&format!("series-{name}"));
        f.emu.generate(&sv, 2, "IN PROGRESS", "job").await;
        f.apply_watch(name, &sv, "  activePollInterval: 5s\n").await;
        f.wait_status(name, Duration::from_secs(30), "first listing", |w| {
            total(w) == Some(2)
        })
        .await;
    }
    let sv = support::solution_version_arn("series-paused");
    f.apply_watch("paused", &sv, "  activePollInterval: 5s\n  suspend: true\n")
        .await;
    f.wait_status("paused", Duration::from_secs(30), "suspended", |w| {
        support::condition(w, "Ready").map(|c| c.1) == Some("Suspended".into())
    })
    .await;
    f.watches()
        .delete("gone", &Default::default())
        .await
        .unwrap();
    let series = |name: &str| format!("namespace=\"{}\",name=\"{name}\"", f.ns);
    let scrape = wait_for(
        Duration::from_secs(15),
        "the deleted watch's series gone",
        || async {
            let scrape = f.op.metrics().await;
            (!scrape.text().contains(&series("gone"))).then_some(scrape)
        },
    )
    .await;
    assert!(scrape.text().contains(&series("kept")));
    let age = |name: &str| {
        format!(
            "personalize_watch_seconds_since_last_sync{{{}}}",
            series(name)
        )
    };
    let synced_at = |name: &str| {
        format!(
            "personalize_watch_last_sync_timestamp_seconds{{{}}}",
            series(name)
        )
    };
    assert!(scrape.value(&age("kept")).is_some());
    assert!(
        scrape.value(&age("paused")).is_none(),
        "a suspended watch does not age"
    );
    assert!(
        scrape.value(&synced_at("paused")).is_some(),
        "its last sync is still known"
    );
    assert_eq!(
        scrape.value(&format!(
            "personalize_watch_pending_events{{{}}}",
            series("kept")
        )),
        Some(0.0)
    );
    // Polls of the other watches go on; the deleted one's series never come back.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(!f.op.metrics().await.text().contains(&series("gone")));
}

/// A leader paused past its Lease (a stalled node) finds the standby leading when it resumes:
/// it stands down, publishes and writes nothing, and drops its per-watch series.
#[tokio::test]
async fn a_paused_leader_that_lost_its_lease_stands_down() {
    let mut f = Fixture::start_with("paused", vec![]).await;
    f.op.kill();
    let sv = support::solution_version_arn("paused-leader");
    let arns = f.emu.generate(&sv, 4, "IN PROGRESS", "job").await;
    let a = start_operator(&f.ns, &f.emu, leader_options(&f.ns, "replica-a"));
    a.wait_ready().await;
    let b = start_operator(&f.ns, &f.emu, leader_options(&f.ns, "replica-b"));
    b.wait_ready().await;
    f.apply_watch("ha", &sv, "  activePollInterval: 5s\n").await;
    f.wait_status("ha", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(4)
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(f.client.clone(), &f.ns);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get("personalize-watch")
            .await
            .ok()?
            .spec?
            .holder_identity
    };
    let first = wait_for(Duration::from_secs(15), "a lease holder", || {
        holder(leases.clone())
    })
    .await;
    let (leader, standby, standby_name) = if first == "replica-a" {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    leader.signal("STOP");
    wait_for(
        Duration::from_secs(20),
        "the standby to take the lease",
        || {
            let leases = leases.clone();
            async move { (holder(leases).await? == standby_name).then_some(()) }
        },
    )
    .await;
    f.emu
        .set_status(
            &arns[0],
            "CREATE FAILED",
            Some("while the leader was paused"),
        )
        .await;
    wait_for(
        Duration::from_secs(20),
        "the new leader's Event",
        || async { (f.job_events("BatchInferenceJobFailed", "job-1").await > 0).then_some(()) },
    )
    .await;
    leader.signal("CONT");
    let stood_down = wait_for(
        Duration::from_secs(20),
        "the old leader standing down",
        || {
            let leader = &leader;
            async move {
                let scrape = leader.metrics().await;
                (scrape.value("personalize_watch_leader") == Some(0.0)).then_some(scrape)
            }
        },
    )
    .await;
    assert!(
        !stood_down.has("personalize_watch_jobs"),
        "the old leader dropped its per-watch series:\n{}",
        stood_down.text()
    );
    let writes = stood_down.sum("personalize_watch_status_writes_total");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        leader
            .metrics()
            .await
            .sum("personalize_watch_status_writes_total"),
        writes,
        "a standby writes nothing"
    );
    assert_eq!(f.job_events("BatchInferenceJobFailed", "job-1").await, 1);
    assert_eq!(
        standby.metrics().await.value("personalize_watch_leader"),
        Some(1.0)
    );
}
