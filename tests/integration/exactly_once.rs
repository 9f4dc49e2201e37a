//! Exactly-once under imperfect inputs, end to end: listings that shift and repeat jobs while
//! they change, listings that leave a job out, two operators writing at once, a watch name at
//! the limit, Event creation refused for minutes, a page that fails mid-listing, and job
//! summaries missing members the service model leaves optional.

use std::collections::HashMap;
use std::time::Duration;

use personalize_emulator::faults::{FaultKind, FaultRule};
use personalize_emulator::model::Job;

use crate::support::fixture::start_operator;
use crate::support::processes::job;
use crate::support::{
    self, Emulator, Fixture, condition, kubectl, kubectl_with_input, total, wait_for,
};

/// Job Events per job name in the fixture's namespace, by reason.
async fn events_by_job(f: &Fixture, reason: &str) -> HashMap<String, u32> {
    let mut by_job = HashMap::new();
    for e in f.events(reason).await {
        if let Some(name) = e.related.and_then(|r| r.name) {
            *by_job.entry(name).or_insert(0) += e.series.map_or(1, |s| s.count as u32);
        }
    }
    by_job
}

/// Failed and Completed Events per job.
async fn announcements(f: &Fixture) -> HashMap<String, u32> {
    let mut all = events_by_job(f, "BatchInferenceJobFailed").await;
    for (job, n) in events_by_job(f, "BatchInferenceJobCompleted").await {
        *all.entry(job).or_insert(0) += n;
    }
    all
}

/// Newest-first listings with offset tokens, 150 jobs, 20 finishing while new jobs are created
/// during pagination: pages shift and repeat jobs, and each of the 20 is announced once.
#[tokio::test]
async fn shifting_pages_while_jobs_finish_and_arrive_announce_each_finish_once() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "shifting").await;
    let emu = Emulator::start_with(&["--listing-order", "newest-first"]);
    let sv = support::solution_version_arn("shifting");
    emu.generate(&sv, 100, "ACTIVE", "done").await;
    emu.generate(&sv, 30, "PENDING", "queued").await;
    let running = emu.generate(&sv, 20, "IN PROGRESS", "run").await;
    let op = start_operator(&ns, &emu, vec![]);
    op.wait_ready().await;
    let f = Fixture {
        client,
        ns,
        emu,
        op,
    };
    f.apply_watch("shifting", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("shifting", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(150)
    })
    .await;
    // Pages take a while, so jobs arrive between a listing's two pages.
    f.emu
        .fault(
            FaultRule::new(FaultKind::Latency)
                .latency_ms(250)
                .times(100_000)
                .for_subject(&sv),
        )
        .await;
    for (i, arn) in running.iter().enumerate() {
        f.emu.generate(&sv, 1, "PENDING", &format!("late{i}")).await;
        let outcome = if i % 2 == 0 {
            "CREATE FAILED"
        } else {
            "ACTIVE"
        };
        f.emu.set_status(arn, outcome, Some("shifting pages")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for(Duration::from_secs(60), "20 announcements", || async {
        (announcements(&f).await.len() == 20).then_some(())
    })
    .await;
    // Two more polls may not repeat any.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let all = announcements(&f).await;
    assert_eq!(all.len(), 20, "{all:?}");
    assert!(all.values().all(|n| *n == 1), "{all:?}");
    assert!(all.keys().all(|job| job.starts_with("run-")), "{all:?}");
    let repeats = f
        .emu
        .requests()
        .await
        .iter()
        .filter(|r| r.had_next_token && r.solution_version_arn.as_deref() == Some(&sv))
        .count();
    assert!(
        repeats >= 3,
        "listings ran over two pages ({repeats} second pages)"
    );
}

/// The omit fault hides a running job from two listings while it fails: announced once.
#[tokio::test]
async fn a_job_hidden_from_two_listings_while_it_fails_is_announced_once() {
    let f = Fixture::start("omit").await;
    let sv = support::solution_version_arn("omit");
    let arns = f.emu.generate(&sv, 3, "IN PROGRESS", "job").await;
    f.apply_watch("omit", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("omit", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(3)
    })
    .await;
    // job-2 becomes the most recently updated job, and the next two listings leave it out.
    f.emu.set_status(&arns[1], "IN PROGRESS", None).await;
    f.emu
        .fault(
            FaultRule::new(FaultKind::Omit)
                .jobs(1)
                .times(2)
                .for_subject(&sv),
        )
        .await;
    f.wait_status(
        "omit",
        Duration::from_secs(20),
        "a listing without job-2",
        |w| total(w) == Some(2),
    )
    .await;
    f.emu
        .set_status(&arns[1], "CREATE FAILED", Some("hidden while failing"))
        .await;
    f.wait_status("omit", Duration::from_secs(30), "job-2 back, failed", |w| {
        w.status
            .as_ref()
            .and_then(|s| s.counts.as_ref())
            .is_some_and(|c| c.total == 3 && c.failed == 1)
    })
    .await;
    wait_for(Duration::from_secs(15), "the failure Event", || async {
        (f.job_events("BatchInferenceJobFailed", "job-2").await > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(f.job_events("BatchInferenceJobFailed", "job-2").await, 1);
    let omitted = f
        .emu
        .requests()
        .await
        .iter()
        .filter(|r| r.fault == Some(FaultKind::Omit))
        .count();
    assert_eq!(omitted, 2, "two listings left job-2 out");
    let metrics = f.op.metrics().await;
    assert!(metrics.sum("personalize_watch_listing_omissions_total") >= 2.0);
}

/// Two operators, leader election off, one watch, 10 jobs failing: exactly 10 Warning Events.
#[tokio::test]
async fn two_operators_without_leader_election_publish_each_event_once() {
    let f = Fixture::start("twowriters").await;
    let second = start_operator(&f.ns, &f.emu, vec![]);
    second.wait_ready().await;
    let sv = support::solution_version_arn("twowriters");
    let arns = f.emu.generate(&sv, 10, "IN PROGRESS", "job").await;
    f.apply_watch("twowriters", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status(
        "twowriters",
        Duration::from_secs(30),
        "first listing",
        |w| total(w) == Some(10),
    )
    .await;
    for arn in &arns {
        f.emu
            .set_status(arn, "CREATE FAILED", Some("two writers"))
            .await;
    }
    wait_for(Duration::from_secs(40), "10 Warning Events", || async {
        (events_by_job(&f, "BatchInferenceJobFailed").await.len() == 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let by_job = events_by_job(&f, "BatchInferenceJobFailed").await;
    assert_eq!(by_job.len(), 10);
    assert!(by_job.values().all(|n| *n == 1), "{by_job:?}");
    assert_eq!(f.events("BatchInferenceJobFailed").await.len(), 10);
    assert_eq!(f.events("JobsDiscovered").await.len(), 1, "one summary too");
    let both = [f.op.metrics().await, second.metrics().await];
    let conflicts: f64 = both
        .iter()
        .map(|m| m.sum("personalize_watch_status_conflicts_total"))
        .sum();
    let written: f64 = both
        .iter()
        .map(|m| m.sum("personalize_watch_status_writes_total"))
        .sum();
    assert!(
        written >= 2.0,
        "both wrote ({written} writes, {conflicts} conflicts)"
    );
}

/// A watch whose name is as long as a name can be gets its Events.
#[tokio::test]
async fn a_watch_with_a_253_character_name_gets_its_events() {
    let f = Fixture::start("longname").await;
    let name = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(name.len(), 253);
    let sv = support::solution_version_arn("longname");
    let arns = f.emu.generate(&sv, 2, "IN PROGRESS", "job").await;
    f.apply_watch(&name, &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status(&name, Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(2)
    })
    .await;
    f.emu
        .set_status(&arns[0], "CREATE FAILED", Some("long name"))
        .await;
    wait_for(Duration::from_secs(20), "the failure Event", || async {
        (f.job_events("BatchInferenceJobFailed", "job-1").await > 0).then_some(())
    })
    .await;
    assert_eq!(f.events("JobsDiscovered").await.len(), 1);
    let w = f.watches().get(&name).await.unwrap();
    assert_eq!(
        condition(&w, "EventsPublished").map(|c| c.0),
        Some("True".into())
    );
}

/// A page that fails mid-listing is asked for again; the listing goes on from it.
#[tokio::test]
async fn a_failed_page_is_asked_for_again_not_the_whole_listing() {
    let f = Fixture::start_with("pageretry", vec!["--aws-max-attempts".into(), "1".into()]).await;
    let sv = support::solution_version_arn("pageretry");
    f.emu.generate(&sv, 1000, "ACTIVE", "job").await;
    // The seventh page of the first listing is throttled once.
    f.emu
        .fault(
            FaultRule::new(FaultKind::Throttle)
                .after(6)
                .for_subject(&sv),
        )
        .await;
    f.apply_watch("pageretry", &sv, "").await;
    let w = f
        .wait_status("pageretry", Duration::from_secs(30), "1,000 jobs", |w| {
            total(w) == Some(1000)
        })
        .await;
    assert_eq!(
        condition(&w, "Ready"),
        Some(("True".into(), "Synced".into()))
    );
    let calls: Vec<_> = f
        .emu
        .requests()
        .await
        .into_iter()
        .filter(|r| r.solution_version_arn.as_deref() == Some(&sv))
        .collect();
    let statuses: Vec<u16> = calls.iter().map(|r| r.status).collect();
    assert_eq!(calls.len(), 11, "10 pages and page 7 again: {statuses:?}");
    assert_eq!(
        calls.iter().filter(|r| !r.had_next_token).count(),
        1,
        "one listing"
    );
    assert_eq!(statuses[6], 400);
}

/// Job summaries may leave out any member: counted, listed and announced all the same.
#[tokio::test]
async fn summaries_missing_members_are_handled_end_to_end() {
    let f = Fixture::start("sparse").await;
    let sv = support::solution_version_arn("sparse");
    let sparse = |name: &str, status: &str, absent: &[&str]| Job {
        solution_version_arn: Some(sv.clone()),
        job_name: Some(name.into()),
        status: Some(status.into()),
        absent_members: absent.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    };
    f.emu
        .upsert(&[
            sparse("no-status", "ACTIVE", &["status"]),
            sparse(
                "no-times",
                "IN PROGRESS",
                &["creationDateTime", "lastUpdatedDateTime"],
            ),
            sparse("no-mode", "ACTIVE", &["batchInferenceJobMode"]),
            sparse("no-arn", "IN PROGRESS", &["batchInferenceJobArn"]),
        ])
        .await;
    f.apply_watch("sparse", &sv, "  activePollInterval: 5s\n")
        .await;
    let w = f
        .wait_status("sparse", Duration::from_secs(30), "4 jobs", |w| {
            total(w) == Some(4)
        })
        .await;
    let status = w.status.unwrap();
    let counts = status.counts.unwrap();
    assert_eq!((counts.other, counts.in_progress, counts.active), (1, 2, 1));
    let by_name = |n: &str| status.jobs.iter().find(|j| j.name == n).unwrap().clone();
    assert_eq!(by_name("no-status").status, "UNKNOWN");
    assert!(by_name("no-times").creation_time.is_none());
    assert!(by_name("no-mode").mode.is_none());
    assert_eq!(by_name("no-arn").arn, "");
    // The two running ones finish: each announced once, the one without an ARN by its name.
    let arn_of = |name: &str| support::job_arn(name);
    f.emu
        .upsert(&[Job {
            status: Some("CREATE FAILED".into()),
            failure_reason: Some("sparse".into()),
            ..job(&arn_of("no-arn"))
        }])
        .await;
    f.emu
        .upsert(&[Job {
            status: Some("ACTIVE".into()),
            ..job(&arn_of("no-times"))
        }])
        .await;
    wait_for(Duration::from_secs(20), "both Events", || async {
        (f.job_events("BatchInferenceJobFailed", "no-arn").await == 1
            && f.job_events("BatchInferenceJobCompleted", "no-times").await == 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(f.job_events("BatchInferenceJobFailed", "no-arn").await, 1);
    assert_eq!(
        f.job_events("BatchInferenceJobCompleted", "no-times").await,
        1
    );
    assert_eq!(
        f.job_events("BatchInferenceJobCompleted", "no-status")
            .await,
        0
    );
}

/// Applies a ValidatingAdmissionPolicy that refuses every Event created in `ns`.
async fn refuse_events_in(ns: &str) {
    let yaml = crate::support::dedent(&format!(
        r#"
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {{name: refuse-events-{ns}}}
        spec:
          failurePolicy: Fail
          matchConstraints:
            resourceRules:
            - {{apiGroups: ["events.k8s.io", ""], apiVersions: ["*"], operations: [CREATE], resources: [events]}}
          validations:
          - {{expression: "false", message: "Events are refused by a test policy"}}
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {{name: refuse-events-{ns}}}
        spec:
          policyName: refuse-events-{ns}
          validationActions: [Deny]
          matchResources:
            namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
        "#
    ));
    kubectl_with_input(&["apply", "-f", "-"], Some(&yaml)).expect_success();
    // The API server enforces a new policy only once its informers have seen the policy and the
    // binding; until then Events still go through.
    wait_for_probe_event(ns, false).await;
}

async fn allow_events_in(ns: &str) {
    support::kubectl(&[
        "delete",
        "validatingadmissionpolicybinding,validatingadmissionpolicy",
        &format!("refuse-events-{ns}"),
    ])
    .expect_success();
    wait_for_probe_event(ns, true).await;
}

/// Creates an Event in `ns` with a server-side dry run (admission runs, nothing is stored) until
/// the API server accepts it (`accepted`) or refuses it by the test policy.
async fn wait_for_probe_event(ns: &str, accepted: bool) {
    let probe = crate::support::dedent(&format!(
        r#"
        apiVersion: events.k8s.io/v1
        kind: Event
        metadata: {{name: policy-probe, namespace: {ns}}}
        eventTime: "2026-01-01T00:00:00.000000Z"
        reportingController: personalize-watch.dev/test
        reportingInstance: probe
        action: Probe
        reason: Probe
        type: Normal
        regarding: {{kind: ConfigMap, name: policy-probe, namespace: {ns}}}
        "#
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = kubectl_with_input(&["create", "--dry-run=server", "-f", "-"], Some(&probe));
        let refused = out.text().contains("Events are refused by a test policy");
        if out.success == accepted && refused != accepted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the test policy did not {} Events within 60 s: {}",
            if accepted { "stop refusing" } else { "refuse" },
            out.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Event creation refused by an admission policy for 2 minutes in `make test`, 10 in `make soak`
/// (`support::soak`), on 20 watches whose jobs keep failing: counts keep updating, each object
/// stays under the status size limit with the outbox full, and once the refusal is lifted every
/// pending Event appears, once.
#[tokio::test]
async fn events_refused_for_minutes_all_go_out_once_afterwards() {
    const WATCHES: usize = 20;
    const JOBS: usize = 120;
    const ROUNDS: usize = 20;
    let refusal = support::soak(Duration::from_secs(120), Duration::from_secs(600));
    let f = Fixture::start("refused").await;
    let mut running: Vec<Vec<String>> = Vec::new();
    for w in 0..WATCHES {
        let sv = support::solution_version_arn(&format!("refused{w}"));
        running.push(
            f.emu
                .generate(&sv, JOBS, "IN PROGRESS", &format!("w{w}"))
                .await,
        );
        f.apply_watch(
            &format!("w{w}"),
            &sv,
            "  activePollInterval: 5s\n  maxJobsInStatus: 200\n",
        )
        .await;
    }
    for w in 0..WATCHES {
        f.wait_status(
            &format!("w{w}"),
            Duration::from_secs(60),
            "first listing",
            |w| total(w) == Some(JOBS as i64),
        )
        .await;
    }
    refuse_events_in(&f.ns).await;
    let reason = "r".repeat(1024);
    let per_round = JOBS / ROUNDS;
    for round in 0..ROUNDS {
        let failing: Vec<Job> = running
            .iter()
            .flat_map(|arns| &arns[round * per_round..(round + 1) * per_round])
            .map(|arn| Job {
                status: Some("CREATE FAILED".into()),
                failure_reason: Some(reason.clone()),
                ..job(arn)
            })
            .collect();
        f.emu.upsert(&failing).await;
        let failed = ((round + 1) * per_round) as i64;
        for w in 0..WATCHES {
            let watch = f
                .wait_status(
                    &format!("w{w}"),
                    Duration::from_secs(60),
                    "counts updated",
                    |w| {
                        w.status
                            .as_ref()
                            .and_then(|s| s.counts.as_ref())
                            .is_some_and(|c| c.failed == failed)
                    },
                )
                .await;
            let status = watch.status.unwrap();
            let size = personalize_watch::status::size::size(&status);
            assert!(
                size <= personalize_watch::status::size::STATUS_MAX_BYTES,
                "{size} bytes"
            );
            let pending = status.ledger.map_or(0, |l| l.outbox.len());
            assert!(pending <= personalize_watch::events::MAX_OUTBOX);
        }
        tokio::time::sleep(refusal / ROUNDS as u32).await;
    }
    let w0 = f.watches().get("w0").await.unwrap();
    assert_eq!(
        condition(&w0, "EventsPublished"),
        Some(("False".into(), "EventsPending".into())),
        "the condition says Events wait"
    );
    assert_eq!(
        w0.status.unwrap().ledger.unwrap().outbox.len(),
        personalize_watch::events::MAX_OUTBOX
    );
    assert!(
        f.events("BatchInferenceJobFailed").await.is_empty(),
        "the policy refused them all"
    );

    allow_events_in(&f.ns).await;
    let expected = WATCHES * JOBS;
    wait_for(Duration::from_secs(180), "every pending Event", || async {
        (f.events("BatchInferenceJobFailed").await.len() >= expected).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let by_job = events_by_job(&f, "BatchInferenceJobFailed").await;
    assert_eq!(by_job.len(), expected);
    assert!(by_job.values().all(|n| *n == 1));
    assert_eq!(
        f.events("BatchInferenceJobFailed").await.len(),
        expected,
        "none twice"
    );
    for w in 0..WATCHES {
        let watch = f.watches().get(&format!("w{w}")).await.unwrap();
        assert_eq!(
            condition(&watch, "EventsPublished").map(|c| c.0),
            Some("True".into())
        );
    }
}

/// Issue 25, item 6: status writes refused (only `solutionversionwatches/status` patch revoked)
/// for several Event lifetimes, on an API server whose Events live 15 s: a failed job's Event is
/// created once, not again each time the previous copy expired.
#[tokio::test]
async fn an_event_is_created_once_while_status_writes_fail_for_several_event_lifetimes() {
    use k8s_openapi::api::events::v1::Event;
    use kube::api::Api;
    use std::collections::HashSet;

    // Leases are reused for 60 s by default, which would stretch every Event's life by that much.
    let cp = support::PrivateControlPlane::start_with(
        "eventttl",
        &["--event-ttl=15s", "--lease-reuse-duration-seconds=1"],
    );
    let client = support::client_for(&cp.kubeconfig).await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "eventttl").await;
    let sa = format!("system:serviceaccount:{ns}:operator");
    let admin = cp.kubeconfig.to_string_lossy().into_owned();
    let apply = |yaml: &str| {
        let out = kubectl_with_input(&["--kubeconfig", &admin, "apply", "-f", "-"], Some(yaml));
        assert!(out.success, "{}", out.stderr);
    };
    apply(&support::operator_rbac(&ns, &sa, true));
    let kubeconfig =
        support::impersonating_kubeconfig_of(&cp.kubeconfig, &sa, &format!("eventttl-{ns}"));
    let emu = Emulator::start();
    let sv = support::solution_version_arn("eventttl");
    let arns = emu.generate(&sv, 2, "IN PROGRESS", "job").await;
    let op = support::Operator::start(support::OperatorOptions {
        kubeconfig: kubeconfig.clone(),
        endpoint: &emu.url,
        args: vec!["--watch-namespace".into(), ns.clone()],
        env: vec![],
    });
    op.wait_ready().await;
    let f = Fixture {
        client: client.clone(),
        ns: ns.clone(),
        emu,
        op,
    };
    f.apply_watch("ttl", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("ttl", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(2)
    })
    .await;

    // Only the status write is revoked; a job fails.
    apply(&support::operator_rbac(&ns, &sa, false));
    f.emu
        .set_status(&arns[0], "CREATE FAILED", Some("while status writes fail"))
        .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let mut copies = HashSet::new();
    // Four Event lifetimes and more; every copy lives at least 15 s, so a look every second sees
    // each one.
    let until = std::time::Instant::now() + Duration::from_secs(75);
    while std::time::Instant::now() < until {
        for e in events
            .list(&Default::default())
            .await
            .expect("list Events")
            .items
        {
            if e.reason.as_deref() == Some("BatchInferenceJobFailed") {
                copies.insert(e.metadata.uid.unwrap_or_default());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        f.op.logs().contains("writing the status failed"),
        "the status writes were refused"
    );
    assert_eq!(
        copies.len(),
        1,
        "the failure's Event was created {} times",
        copies.len()
    );
    let _ = std::fs::remove_file(kubeconfig);
}

/// Issue 25, item 7: an admission policy refuses one job's Event for what it says (422); the
/// other job's Event still goes out, and the refused one waits, named in EventsPublished.
#[tokio::test]
async fn an_event_refused_for_its_content_does_not_hold_back_the_others() {
    let f = Fixture::start("poison").await;
    let policy = format!("pw-poison-{}", f.ns);
    let yaml = support::dedent(&format!(
        r#"
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {{name: {policy}}}
        spec:
          failurePolicy: Fail
          matchConstraints:
            resourceRules:
            - {{apiGroups: [events.k8s.io], apiVersions: [v1], operations: [CREATE], resources: [events]}}
          validations:
          - {{expression: "!has(object.note) || !object.note.contains('poison')", message: "no poison in notes"}}
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {{name: {policy}}}
        spec:
          policyName: {policy}
          validationActions: [Deny]
          matchResources:
            namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
        "#,
        ns = f.ns
    ));
    let out = kubectl_with_input(&["apply", "-f", "-"], Some(&yaml));
    assert!(out.success, "{}", out.stderr);
    // In force once a poisoned probe is refused (the policy is compiled asynchronously).
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(f.client.clone(), &f.ns);
    wait_for(Duration::from_secs(30), "the policy in force", || async {
        let probe: k8s_openapi::api::events::v1::Event =
            serde_json::from_value(serde_json::json!({
                "metadata": {"generateName": "probe-"},
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "reportingController": "test/probe", "reportingInstance": "probe",
                "action": "Probe", "reason": "Probe", "type": "Normal", "note": "poison probe",
            "regarding": {"apiVersion": "v1", "kind": "Namespace", "name": f.ns, "namespace": f.ns}
            }))
            .ok()?;
        match events.create(&Default::default(), &probe).await {
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("no poison") => {
                Some(())
            }
            _ => None,
        }
    })
    .await;
    let sv = support::solution_version_arn("poison");
    let poison = f.emu.generate(&sv, 1, "IN PROGRESS", "poison").await;
    let good = f.emu.generate(&sv, 1, "IN PROGRESS", "good").await;
    f.apply_watch("poison", &sv, "  activePollInterval: 5s\n")
        .await;
    f.wait_status("poison", Duration::from_secs(30), "first listing", |w| {
        total(w) == Some(2)
    })
    .await;
    // The policy is in force once a poisoned Event is refused; then both jobs fail, poison first.
    f.emu
        .set_status(&poison[0], "CREATE FAILED", Some("bad input"))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    f.emu
        .set_status(&good[0], "CREATE FAILED", Some("bad input"))
        .await;
    wait_for(Duration::from_secs(60), "the good job's Event", || async {
        (f.job_events("BatchInferenceJobFailed", "good-1").await > 0).then_some(())
    })
    .await;
    let w = f
        .wait_status(
            "poison",
            Duration::from_secs(30),
            "the refusal named",
            |w| condition(w, "EventsPublished").is_some_and(|(status, _)| status == "False"),
        )
        .await;
    assert_eq!(f.job_events("BatchInferenceJobFailed", "poison-1").await, 0);
    let outbox = w.status.and_then(|s| s.ledger).map(|l| l.outbox.len());
    assert_eq!(outbox, Some(1), "the refused Event waits");
    let out = kubectl(&[
        "delete",
        "validatingadmissionpolicybinding,validatingadmissionpolicy",
        &policy,
    ]);
    assert!(out.success, "{}", out.stderr);
}
