//! Reconcile against a mocked API server (tower-test), with the emulator in-process as
//! Personalize: the requests the reconcile makes, in order, what it writes, and when it polls
//! next.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_personalize::config::{BehaviorVersion, Credentials, Region};
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use personalize_emulator::{EmulatorState, server};

use super::*;
use crate::crd::SolutionVersionWatchSpec;
use crate::personalize::ClientOptions;
use crate::reasons::Reason;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/sol/v1";

fn watch(suspend: bool) -> SolutionVersionWatch {
    let mut w = SolutionVersionWatch::new(
        "test",
        SolutionVersionWatchSpec {
            solution_version_arn: SV.into(),
            region: None,
            poll_interval: Some("5m".into()),
            active_poll_interval: Some("1m".into()),
            suspend,
            max_jobs_in_status: 50,
        },
    );
    w.metadata.namespace = Some("default".into());
    w.metadata.uid = Some("uid-1".into());
    w.metadata.generation = Some(1);
    w.metadata.resource_version = Some("1".into());
    w
}

async fn emulator_with(jobs: usize) -> String {
    emulator_with_status(jobs, "ACTIVE").await
}

async fn emulator_with_status(jobs: usize, status: &str) -> String {
    let mut state = EmulatorState::default();
    state.store.generate(SV, jobs, status, "job").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::run(
        listener,
        server::Shared::new(state),
        std::future::pending(),
    ));
    url
}

async fn context(endpoint: &str) -> (Arc<Context>, Handle) {
    crate::install_crypto_provider();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let metrics = Arc::new(Metrics::new());
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "not-a-secret",
            None,
            None,
            "test",
        ))
        .region(Region::new("us-east-1"));
    let options = ClientOptions {
        endpoint_url: Some(endpoint.to_string()),
        adaptive_retry: false,
        max_attempts: 1,
        attempt_timeout: Duration::from_secs(5),
        rate_per_second: 100.0,
        burst: 10,
    };
    let personalize = Arc::new(Personalize::from_loader(loader, &options, metrics.clone()).await);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "personalize-watch".into(),
            instance: Some("test".into()),
        },
    );
    let settings = Settings {
        default_intervals: PollIntervals {
            idle: Duration::from_secs(300),
            active: Duration::from_secs(60),
        },
        min_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(300),
    };
    let ctx = Context::new(client, personalize, recorder, metrics, settings);
    (Arc::new(ctx), handle)
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Answers a status patch with the watch carrying the patched status.
async fn expect_status_patch(handle: &mut Handle, rv: &str) -> Value {
    let (request, send) = handle.next_request().await.expect("a status patch");
    if request.method() != Method::PATCH {
        let what = format!("{} {}", request.method(), request.uri());
        panic!(
            "expected a status patch, got {what}: {}",
            body_json(request).await
        );
    }
    assert_eq!(
        request.uri().path(),
        "/apis/personalize-watch.dev/v1alpha1/namespaces/default/solutionversionwatches/test/status"
    );
    let query = request.uri().query().unwrap_or_default().to_string();
    assert!(
        query.contains("fieldManager=personalize-watch") && query.contains("force=true"),
        "{query}"
    );
    let body = body_json(request).await;
    let mut object = serde_json::to_value(watch(false)).unwrap();
    object["status"] = body["status"].clone();
    object["metadata"]["resourceVersion"] = json!(rv);
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&object).unwrap()))
            .unwrap(),
    );
    body
}

async fn expect_event(handle: &mut Handle) -> Value {
    let (request, send) = handle.next_request().await.expect("an event");
    assert_eq!(request.method(), Method::POST);
    assert_eq!(
        request.uri().path(),
        "/apis/events.k8s.io/v1/namespaces/default/events"
    );
    let body = body_json(request).await;
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    body
}

#[tokio::test]
async fn first_listing_writes_status_then_publishes_the_summary() {
    let url = emulator_with(3).await;
    let (ctx, mut handle) = context(&url).await;
    let api_server = tokio::spawn(async move {
        let patch = expect_status_patch(&mut handle, "2").await;
        assert_eq!(
            patch["metadata"]["resourceVersion"], "1",
            "optimistic lock on the copy it read"
        );
        assert_eq!(patch["status"]["counts"]["total"], 3);
        assert!(
            patch["status"]["ledger"].get("outbox").is_none(),
            "nothing to announce one by one"
        );
        let ready = &patch["status"]["conditions"][0];
        assert_eq!(
            (ready["type"].as_str(), ready["status"].as_str()),
            (Some("Ready"), Some("True"))
        );
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "JobsDiscovered");
        assert_eq!(event["type"], "Normal");
    });
    let requeue = reconcile_watch(&watch(false), &ctx)
        .await
        .expect("reconcile succeeds");
    // No job is running: the next poll is the 5m interval, up to 10% early.
    let Requeue::After(after) = requeue else {
        panic!("{requeue:?}")
    };
    assert!(
        after <= Duration::from_secs(300) && after >= Duration::from_secs(270),
        "{after:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), api_server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_finished_job_is_written_to_the_outbox_published_then_cleared() {
    let mut state = EmulatorState::default();
    let arns = state.store.generate(SV, 2, "IN PROGRESS", "job").unwrap();
    state
        .store
        .upsert_job(personalize_emulator::model::Job {
            batch_inference_job_arn: Some(arns[0].clone()),
            status: Some("CREATE FAILED".into()),
            failure_reason: Some("bad input".into()),
            ..Default::default()
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::run(
        listener,
        server::Shared::new(state),
        std::future::pending(),
    ));
    let (ctx, mut handle) = context(&url).await;
    // The previous status saw both jobs in progress.
    let mut w = watch(false);
    let ledger = crate::crd::EventLedger {
        open: arns.iter().map(|a| crate::status::job_id(a)).collect(),
        ..Default::default()
    };
    w.status = Some(crate::crd::SolutionVersionWatchStatus {
        ledger: Some(ledger),
        ..Default::default()
    });
    let api_server = tokio::spawn(async move {
        let first = expect_status_patch(&mut handle, "2").await;
        assert_eq!(
            first["status"]["ledger"]["outbox"][0]["kind"], "Failed",
            "decision persisted first"
        );
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "BatchInferenceJobFailed");
        assert_eq!(event["type"], "Warning");
        assert_eq!(
            event["related"]["name"], "job-1",
            "the job is the secondary reference"
        );
        assert!(event["note"].as_str().unwrap().contains("bad input"));
        let second = expect_status_patch(&mut handle, "3").await;
        assert_eq!(second["metadata"]["resourceVersion"], "2");
        assert!(
            second["status"]["ledger"].get("outbox").is_none(),
            "outbox cleared"
        );
    });
    reconcile(Arc::new(w), ctx)
        .await
        .expect("reconcile succeeds");
    tokio::time::timeout(Duration::from_secs(5), api_server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn suspended_watch_writes_a_condition_and_does_not_poll() {
    let (ctx, mut handle) = context("http://127.0.0.1:9").await;
    let api_server = tokio::spawn(async move {
        let patch = expect_status_patch(&mut handle, "2").await;
        let ready = &patch["status"]["conditions"][0];
        assert_eq!(ready["reason"], "Suspended");
        assert_eq!(ready["status"], "True");
        assert!(patch["status"].get("counts").is_none());
    });
    let requeue = reconcile_watch(&watch(true), &ctx).await.unwrap();
    assert_eq!(requeue, Requeue::OnChange);
    tokio::time::timeout(Duration::from_secs(5), api_server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !ctx.metrics.encode(0.0).contains("outcome=\"Success\""),
        "no Personalize call"
    );
}

#[tokio::test]
async fn unreachable_endpoint_sets_ready_false_and_warns_once() {
    // Port 9 (discard) is closed on loopback: the connection is refused at once.
    let (ctx, mut handle) = context("http://127.0.0.1:9").await;
    let api_server = tokio::spawn(async move {
        let patch = expect_status_patch(&mut handle, "2").await;
        let conditions = patch["status"]["conditions"].as_array().unwrap().clone();
        let find = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(find("Ready")["reason"], "EndpointUnreachable");
        assert_eq!(find("Ready")["status"], "False");
        assert_eq!(find("Stalled")["status"], "False");
        assert_eq!(
            find("Reconciling")["status"],
            "True",
            "generation 1 never listed"
        );
        let event = expect_event(&mut handle).await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "EndpointUnreachable");
    });
    let w = Arc::new(watch(false));
    let err = reconcile(w.clone(), ctx.clone())
        .await
        .expect_err("the poll fails");
    assert_eq!(err.reason(), Reason::EndpointUnreachable);
    tokio::time::timeout(Duration::from_secs(10), api_server)
        .await
        .unwrap()
        .unwrap();
    // The error policy counts failures per watch and backs off: 5s, 10s, 20s.
    for (n, base) in [(1, 5), (2, 10), (3, 20)] {
        error_policy(w.clone(), &err, ctx.clone());
        let counted = ctx
            .failures()
            .get(&ObjectRef::from_obj(w.as_ref()))
            .copied();
        assert_eq!(counted, Some(n));
        let delay = retry_delay(&err, n, &ctx.settings, 0.0);
        assert_eq!(delay, Duration::from_secs(base), "failure {n}");
    }
}

#[test]
fn region_comes_from_spec_or_arn() {
    let mut w = watch(false);
    assert_eq!(spec::region_of(&w).unwrap(), "us-east-1");
    w.spec.region = Some("eu-west-1".into());
    assert_eq!(spec::region_of(&w).unwrap(), "eu-west-1");
    w.spec.region = None;
    w.spec.solution_version_arn = "arn:aws:personalize::123:solution/x/y".into();
    assert!(spec::region_of(&w).unwrap_err().contains("spec.region"));
}

/// An invalid spec is a Stalled condition and waits for a change of spec, without backoff.
#[tokio::test]
async fn an_invalid_spec_waits_for_a_change() {
    let (ctx, mut handle) = context("http://127.0.0.1:9").await;
    let mut w = watch(false);
    w.spec.solution_version_arn = "arn:aws:personalize::123:solution/x/y".into();
    let api_server = tokio::spawn(async move {
        let patch = expect_status_patch(&mut handle, "2").await;
        let ready = &patch["status"]["conditions"][0];
        assert_eq!(ready["reason"], "InvalidSpec");
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "InvalidSpec");
    });
    let action = reconcile(Arc::new(w), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    tokio::time::timeout(Duration::from_secs(5), api_server)
        .await
        .unwrap()
        .unwrap();
    assert!(ctx.failures().is_empty(), "no backoff entry");
}

/// An outbox left by a crash after publishing: the Event is found in the API and not published
/// again; the outbox is cleared.
#[tokio::test]
async fn inherited_outbox_is_checked_against_existing_events() {
    // The one job is still running: the only Event in play is the inherited one.
    let url = emulator_with_status(1, "IN PROGRESS").await;
    let (ctx, mut handle) = context(&url).await;
    let mut w = watch(false);
    w.status = Some(crate::crd::SolutionVersionWatchStatus {
        ledger: Some(crate::crd::EventLedger {
            outbox: vec![crate::crd::PendingEvent {
                kind: crate::crd::AnnouncementKind::Failed,
                job_name: "job-0".into(),
                note: "Batch inference job job-0 failed: x".into(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    let api_server = tokio::spawn(async move {
        let first = expect_status_patch(&mut handle, "2").await;
        assert_eq!(first["status"]["ledger"]["outbox"][0]["jobName"], "job-0");
        let (request, send) = handle.next_request().await.expect("a look for the Event");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/api/v1/namespaces/default/events");
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(
            query.contains("involvedObject.uid%3Duid-1")
                || query.contains("involvedObject.uid=uid-1"),
            "{query}"
        );
        let list = json!({
            "apiVersion": "v1", "kind": "EventList", "metadata": {},
            "items": [{
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "test.1", "namespace": "default"},
                "involvedObject": {"uid": "uid-1", "name": "test"},
                "reason": "BatchInferenceJobFailed",
                "related": {"kind": "BatchInferenceJob", "name": "job-0"}
            }]
        });
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&list).unwrap()))
                .unwrap(),
        );
        // Not published again: the next request clears the outbox.
        let second = expect_status_patch(&mut handle, "3").await;
        assert!(second["status"]["ledger"].get("outbox").is_none());
    });
    reconcile(Arc::new(w), ctx)
        .await
        .expect("reconcile succeeds");
    tokio::time::timeout(Duration::from_secs(5), api_server)
        .await
        .unwrap()
        .unwrap();
}

/// An outbox left by a crash before publishing: no Event in the API, so it is published now.
#[tokio::test]
async fn inherited_outbox_not_yet_published_is_published() {
    let url = emulator_with_status(1, "IN PROGRESS").await;
    let (ctx, mut handle) = context(&url).await;
    let mut w = watch(false);
    w.status = Some(crate::crd::SolutionVersionWatchStatus {
        ledger: Some(crate::crd::EventLedger {
            outbox: vec![crate::crd::PendingEvent {
                kind: crate::crd::AnnouncementKind::Failed,
                job_name: "job-0".into(),
                note: "Batch inference job job-0 failed: x".into(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    let api_server = tokio::spawn(async move {
        expect_status_patch(&mut handle, "2").await;
        let (request, send) = handle.next_request().await.expect("a look for the Event");
        assert_eq!(request.method(), Method::GET);
        let empty = json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []});
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&empty).unwrap()))
                .unwrap(),
        );
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "BatchInferenceJobFailed");
        assert_eq!(event["related"]["name"], "job-0");
        let cleared = expect_status_patch(&mut handle, "3").await;
        assert!(cleared["status"]["ledger"].get("outbox").is_none());
    });
    reconcile(Arc::new(w), ctx)
        .await
        .expect("reconcile succeeds");
    tokio::time::timeout(Duration::from_secs(5), api_server)
        .await
        .unwrap()
        .unwrap();
}
