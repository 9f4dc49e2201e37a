//! Reconcile against a mocked API server (tower-test), with the emulator in-process as
//! Personalize: the requests the reconcile makes, in order, what it writes, and when it polls
//! next.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use personalize_emulator::{EmulatorState, server};
use serde_json::{Value, json};

use super::*;
use crate::crd::{EventLedger, ListingSource, SolutionVersionWatchSpec};
use crate::reasons::Reason;

use super::fixture::Handle;

const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/sol/v1";

fn watch(suspend: bool) -> SolutionVersionWatch {
    let mut w = SolutionVersionWatch::new(
        "test",
        SolutionVersionWatchSpec {
            poll_interval: Some("5m".into()),
            active_poll_interval: Some("1m".into()),
            suspend,
            ..SolutionVersionWatchSpec::watching(SV)
        },
    );
    w.metadata.namespace = Some("default".into());
    w.metadata.uid = Some("uid-1".into());
    w.metadata.generation = Some(1);
    w.metadata.resource_version = Some("1".into());
    w
}

/// A slot of the Context's own admission, as `reconcile` takes one.
async fn slot(ctx: &Context) -> Slot {
    Slot::new(ctx.admission.enter("default").await)
}

/// The watch as the controller's cache hands it to reconcile.
fn cached(w: SolutionVersionWatch) -> CachedWatch {
    CachedWatch::from_cache(Arc::new(w))
}

/// An emulator on a free port holding `state`; its URL.
async fn serve(state: EmulatorState) -> (String, server::Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shared = server::Shared::new(state);
    tokio::spawn(server::run(
        listener,
        shared.clone(),
        std::future::pending(),
    ));
    (url, shared)
}

async fn emulator_with(jobs: usize, status: &str) -> String {
    let mut state = EmulatorState::default();
    state.store.generate(SV, jobs, status, "job").unwrap();
    serve(state).await.0
}

async fn context(endpoint: &str) -> (Arc<Context>, Handle) {
    Context::test(endpoint).await
}

async fn context_with(
    endpoint: &str,
    defaults: crate::access::policy::Defaults,
) -> (Arc<Context>, Handle) {
    Context::test_with(endpoint, defaults).await
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn reply(send: tower_test::mock::SendResponse<Response<Body>>, status: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// Takes a status merge patch made against `status_before`, answers it with the watch carrying
/// the patched status at resourceVersion `rv`; returns the patch and the status after it.
async fn expect_status_patch(
    handle: &mut Handle,
    status_before: &Value,
    rv: &str,
) -> (Value, Value) {
    let (request, send) = handle.next_request().await.expect("a status patch");
    let what = format!("{} {}", request.method(), request.uri());
    assert_eq!(
        request.method(),
        Method::PATCH,
        "expected a status patch, got {what}"
    );
    assert_eq!(
        request.uri().path(),
        "/apis/personalize-watch.dev/v1alpha1/namespaces/default/solutionversionwatches/test/status"
    );
    assert_eq!(
        request.headers()["content-type"],
        "application/merge-patch+json"
    );
    assert_eq!(
        request.headers()["accept"],
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        "a status write asks for the written object's metadata only"
    );
    assert!(
        request
            .uri()
            .query()
            .unwrap_or_default()
            .contains("fieldManager=personalize-watch"),
        "{what}"
    );
    let patch = body_json(request).await;
    let mut status = status_before.clone();
    write::merge_patch::apply(&mut status, &patch["status"]);
    let mut object = serde_json::to_value(watch(false)).unwrap();
    object["status"] = status.clone();
    object["metadata"]["resourceVersion"] = json!(rv);
    reply(send, 200, &object);
    (patch, status)
}

/// Takes an Event creation and answers it with `status` (201 created, 409 already there, ...).
async fn expect_event_answered(handle: &mut Handle, status: u16) -> Value {
    let (request, send) = handle.next_request().await.expect("an event");
    assert_eq!(request.method(), Method::POST);
    assert_eq!(
        request.uri().path(),
        "/apis/events.k8s.io/v1/namespaces/default/events"
    );
    let body = body_json(request).await;
    let answer = match status {
        201 => body.clone(),
        409 => {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "already exists"})
        }
        _ => {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": status, "message": "denied by policy"})
        }
    };
    reply(send, status, &answer);
    body
}

async fn expect_event(handle: &mut Handle) -> Value {
    expect_event_answered(handle, 201).await
}

/// The previous status: a listing from the emulator's source saw `arns` running.
fn after_a_listing_of(arns: &[String], endpoint: &str) -> SolutionVersionWatchStatus {
    let open = arns
        .iter()
        .filter_map(|arn| {
            crate::events::ledger::job_hash(&crate::personalize::ListedJob {
                arn: arn.clone(),
                ..Default::default()
            })
            .map(|id| id.to_string())
        })
        .collect();
    SolutionVersionWatchStatus {
        ledger: Some(EventLedger {
            source: Some(ListingSource {
                region: "us-east-1".into(),
                endpoint: endpoint.into(),
            }),
            horizon: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1),
            )),
            open,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn finish<T>(api_server: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), api_server)
        .await
        .expect("the API server saw every request it expected")
        .expect("the API server's checks passed")
}

#[tokio::test]
async fn first_listing_publishes_the_summary_then_writes_status() {
    let url = emulator_with(3, "ACTIVE").await;
    let (ctx, mut handle) = context(&url).await;
    let api_server = tokio::spawn(async move {
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "JobsDiscovered");
        assert_eq!(event["type"], "Normal");
        assert!(
            event["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("test.")
        );
        assert_eq!(event["regarding"]["uid"], "uid-1");
        let (patch, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        assert_eq!(
            patch["metadata"]["resourceVersion"], "1",
            "optimistic lock on the copy it read"
        );
        assert_eq!(status["counts"]["total"], 3);
        assert!(
            status["ledger"].get("outbox").is_none(),
            "the summary went out"
        );
        let ready = &status["conditions"][0];
        assert_eq!(
            (ready["type"].as_str(), ready["status"].as_str()),
            (Some("Ready"), Some("True"))
        );
    });
    let requeue = reconcile_watch(&cached(watch(false)), &ctx, &slot(&ctx).await)
        .await
        .expect("reconcile succeeds");
    finish(api_server).await;
    // No job is running: the next poll is the 5m interval, up to 10% early.
    let Requeue::After(after) = requeue else {
        panic!("{requeue:?}")
    };
    assert!(
        after <= Duration::from_secs(300) && after >= Duration::from_secs(270),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_finished_job_is_published_then_recorded_in_one_write() {
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
    let (url, _) = serve(state).await;
    let (ctx, mut handle) = context(&url).await;
    let mut w = watch(false);
    w.status = Some(after_a_listing_of(&arns, &url));
    let before = json!(w.status);
    let api_server = tokio::spawn(async move {
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "BatchInferenceJobFailed");
        assert_eq!(event["type"], "Warning");
        assert_eq!(
            event["related"]["name"], "job-1",
            "the job is the secondary reference"
        );
        assert!(event["note"].as_str().unwrap().contains("bad input"));
        let (_, status) = expect_status_patch(&mut handle, &before, "2").await;
        assert!(
            status["ledger"].get("outbox").is_none(),
            "published, so not pending"
        );
        assert_eq!(
            status["ledger"]["open"].as_array().unwrap().len(),
            1,
            "job-2 still awaited"
        );
        assert_eq!(status["ledger"]["finished"].as_object().unwrap().len(), 1);
    });
    reconcile(Arc::new(w), ctx)
        .await
        .expect("reconcile succeeds");
    finish(api_server).await;
}

/// An Event found already there (a restart, another replica) counts as published.
#[tokio::test]
async fn an_event_already_there_counts_as_published() {
    let url = emulator_with(1, "CREATE FAILED").await;
    let (ctx, mut handle) = context(&url).await;
    let arn = format!(
        "{}batch-inference-job/job-1",
        &SV[..SV.find("solution").unwrap()]
    );
    let mut w = watch(false);
    w.status = Some(after_a_listing_of(&[arn], &url));
    let before = json!(w.status);
    let api_server = tokio::spawn(async move {
        expect_event_answered(&mut handle, 409).await;
        let (_, status) = expect_status_patch(&mut handle, &before, "2").await;
        assert!(status["ledger"].get("outbox").is_none());
        let published = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "EventsPublished")
            .unwrap()
            .clone();
        assert_eq!(published["status"], "True");
    });
    reconcile(Arc::new(w), ctx.clone())
        .await
        .expect("reconcile succeeds");
    finish(api_server).await;
    assert!(
        !ctx.metrics
            .encode(0.0)
            .contains("personalize_watch_events_total{reason=\"BatchInferenceJobFailed\"} 1"),
        "not counted as published by this instance"
    );
}

/// A refused Event stays in the outbox, EventsPublished says why, and the counts still move.
#[tokio::test]
async fn a_refused_event_stays_pending_and_counts_still_move() {
    let url = emulator_with(2, "CREATE FAILED").await;
    let (ctx, mut handle) = context(&url).await;
    let prefix = &SV[..SV.find("solution").unwrap()];
    let arns: Vec<String> = (1..=2)
        .map(|n| format!("{prefix}batch-inference-job/job-{n}"))
        .collect();
    let mut w = watch(false);
    w.status = Some(after_a_listing_of(&arns, &url));
    let before = json!(w.status);
    let api_server = tokio::spawn(async move {
        expect_event_answered(&mut handle, 403).await;
        let (_, status) = expect_status_patch(&mut handle, &before, "2").await;
        assert_eq!(
            status["ledger"]["outbox"].as_array().unwrap().len(),
            2,
            "both wait"
        );
        assert_eq!(status["counts"]["failed"], 2);
        let published = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "EventsPublished")
            .unwrap()
            .clone();
        assert_eq!(
            (published["status"].as_str(), published["reason"].as_str()),
            (Some("False"), Some("EventsPending"))
        );
        assert!(
            published["message"]
                .as_str()
                .unwrap()
                .contains("denied by policy")
        );
    });
    let requeue = reconcile_watch(&cached(w.clone()), &ctx, &slot(&ctx).await)
        .await
        .expect("the write succeeds");
    finish(api_server).await;
    assert!(
        matches!(requeue, Requeue::After(d) if d > schedule::DEFERRED_RETRY),
        "no fast loop while refused: {requeue:?}"
    );
    assert!(
        ctx.metrics
            .encode(0.0)
            .contains("personalize_watch_event_publish_failures_total{reason=\"Forbidden\"} 1")
    );
}

/// A write conflict: the watch is read again and the decision made again from the listing in
/// hand, with no second listing.
#[tokio::test]
async fn a_write_conflict_reads_again_and_decides_again_without_listing_again() {
    let mut state = EmulatorState::default();
    state.store.generate(SV, 2, "ACTIVE", "job").unwrap();
    let (url, emulator) = serve(state).await;
    let (ctx, mut handle) = context(&url).await;
    let api_server = tokio::spawn(async move {
        expect_event(&mut handle).await;
        let (request, send) = handle.next_request().await.expect("a status patch");
        assert_eq!(request.method(), Method::PATCH);
        reply(
            send,
            409,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
        );
        // Read again: another writer already recorded a first listing.
        let (request, send) = handle.next_request().await.expect("a read");
        assert_eq!(request.method(), Method::GET);
        let mut fresh = serde_json::to_value(watch(false)).unwrap();
        fresh["metadata"]["resourceVersion"] = json!("7");
        fresh["metadata"]["labels"] = json!({"changed": "by-another-writer"});
        reply(send, 200, &fresh);
        // The decision again, against the fresh copy: the summary is the same Event, which this
        // process published a moment ago, so it is not posted again; then the write with the
        // fresh resourceVersion.
        let (patch, _) = expect_status_patch(&mut handle, &Value::Null, "8").await;
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
    });
    reconcile_watch(&cached(watch(false)), &ctx, &slot(&ctx).await)
        .await
        .expect("reconcile succeeds");
    finish(api_server).await;
    let listings = emulator_requests(&emulator);
    assert_eq!(listings, 1, "one listing for the whole reconcile");
}

fn emulator_requests(emulator: &server::Shared) -> usize {
    emulator.with(|state| {
        state
            .requests
            .iter()
            .filter(|r| r.operation == "ListBatchInferenceJobs")
            .count()
    })
}

/// An instance that lost its Lease while a reconcile waited for its turn lists, writes and
/// publishes nothing more.
#[tokio::test]
async fn a_former_leader_lists_writes_and_publishes_nothing() {
    let mut state = EmulatorState::default();
    state.store.generate(SV, 3, "CREATE FAILED", "job").unwrap();
    let (url, emulator) = serve(state).await;
    let (ctx, mut handle) = context(&url).await;
    ctx.set_leading(false);
    reconcile(Arc::new(watch(false)), ctx.clone())
        .await
        .expect("reconcile ends quietly");
    let nothing = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    assert!(nothing.is_err(), "no request to the API server");
    assert_eq!(emulator_requests(&emulator), 0, "no listing of Personalize");
}

#[tokio::test]
async fn suspended_watch_writes_a_condition_and_does_not_poll() {
    let (ctx, mut handle) = context("http://127.0.0.1:9").await;
    let api_server = tokio::spawn(async move {
        let (_, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        let ready = &status["conditions"][0];
        assert_eq!(ready["reason"], "Suspended");
        assert_eq!(ready["status"], "True");
        assert!(status.get("counts").is_none());
    });
    let requeue = reconcile_watch(&cached(watch(true)), &ctx, &slot(&ctx).await)
        .await
        .unwrap();
    assert_eq!(requeue, Requeue::OnChange);
    finish(api_server).await;
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
        let event = expect_event(&mut handle).await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "EndpointUnreachable");
        let (_, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        let conditions = status["conditions"].as_array().unwrap().clone();
        let find = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(find("Ready")["reason"], "EndpointUnreachable");
        assert_eq!(find("Ready")["status"], "False");
        assert_eq!(find("Stalled")["status"], "False");
        assert_eq!(
            find("Reconciling")["status"],
            "True",
            "generation 1 never listed"
        );
    });
    let w = Arc::new(watch(false));
    let err = reconcile(w.clone(), ctx.clone())
        .await
        .expect_err("the poll fails");
    assert_eq!(err.reason(), Reason::EndpointUnreachable);
    finish(api_server).await;
    // The error policy counts failures per watch and backs off: 5s, 10s, 20s.
    for (n, base) in [(1, 5), (2, 10), (3, 20)] {
        error_policy(w.clone(), &err, ctx.clone());
        assert_eq!(ctx.failures().get("uid-1").map(|f| f.count), Some(n));
        let delay = retry_delay(n, &ctx.settings, 0.0);
        assert_eq!(delay, Duration::from_secs(base), "failure {n}");
    }
    ctx.forget("uid-1");
    assert!(ctx.failures().is_empty(), "a deleted watch's backoff goes");
    // Deleted while its reconcile failed: the failure is counted after the deletion was seen,
    // and the controller's next sweep of namespace "default" finds no such watch in its cache.
    error_policy(w.clone(), &err, ctx.clone());
    ctx.retain_failures(|namespace, _| namespace != "default");
    assert!(
        ctx.failures().is_empty(),
        "the sweep drops the backoff of a watch not cached"
    );
}

#[test]
fn the_region_is_the_arns_and_spec_region_may_only_repeat_it() {
    let mut w = watch(false);
    assert_eq!(spec::arn_of(&w).unwrap().region, "us-east-1");
    w.spec.region = Some("us-east-1".into());
    assert_eq!(spec::arn_of(&w).unwrap().region, "us-east-1");
    w.spec.region = Some("eu-west-1".into());
    assert!(spec::arn_of(&w).unwrap_err().contains("spec.region"));
    w.spec.region = None;
    w.spec.solution_version_arn = Some("arn:aws:personalize::123:solution/x/y".into());
    assert!(
        spec::arn_of(&w)
            .unwrap_err()
            .contains("spec.solutionVersionArn")
    );
}

/// A watch outside its namespace's policy: Stalled NotPermitted, one Warning Event naming the
/// policy, no Personalize call (the endpoint is unreachable: a call would say so), and no retry
/// until the policy changes.
#[tokio::test]
async fn a_watch_outside_the_policy_is_refused_without_a_call() {
    let (ctx, mut handle) = context("http://127.0.0.1:9").await;
    let mut w = watch(false);
    w.spec.solution_version_arn =
        Some("arn:aws:personalize:us-east-1:222222222222:solution/s/v".into());
    let api_server = tokio::spawn(async move {
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "NotPermitted");
        assert_eq!(event["type"], "Warning");
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("--default-allowed-accounts")
        );
        let (_, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        let conditions = status["conditions"].as_array().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(get("Ready")["status"], "False");
        assert_eq!(get("Ready")["reason"], "NotPermitted");
        assert_eq!(get("Stalled")["status"], "True");
    });
    let action = reconcile(Arc::new(w), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    finish(api_server).await;
    let scrape = ctx.metrics.encode(0.0);
    assert!(
        !scrape.contains("personalize_watch_personalize_requests_total{"),
        "a call was made:\n{scrape}"
    );
}

/// An invalid spec is a Stalled condition and waits for a change of spec, without backoff.
#[tokio::test]
async fn an_invalid_spec_waits_for_a_change() {
    let (ctx, mut handle) = context("http://127.0.0.1:9").await;
    let mut w = watch(false);
    w.spec.solution_version_arn = Some("arn:aws:personalize::123:solution/x/y".into());
    let api_server = tokio::spawn(async move {
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "InvalidSpec");
        let (_, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        assert_eq!(status["conditions"][0]["reason"], "InvalidSpec");
    });
    let action = reconcile(Arc::new(w), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    finish(api_server).await;
    assert!(ctx.failures().is_empty(), "no backoff entry");
}

/// A listing that changes nothing but the time writes nothing until the heartbeat is due; the
/// last sync time still reaches the metrics.
#[tokio::test]
async fn a_quiet_listing_writes_nothing() {
    let url = emulator_with(3, "ACTIVE").await;
    let (ctx, mut handle) = context(&url).await;
    let api_server = tokio::spawn(async move {
        expect_event(&mut handle).await;
        let (_, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        (status, handle)
    });
    reconcile_watch(&cached(watch(false)), &ctx, &slot(&ctx).await)
        .await
        .unwrap();
    let (status, mut handle) = finish(api_server).await;
    // The cache's copy of what was written: no job list.
    let mut w = watch(false);
    w.metadata.resource_version = Some("2".into());
    w.status = Some(serde_json::from_value(status).unwrap());
    crate::controller::cache::slim(&mut w);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    reconcile_watch(&cached(w.clone()), &ctx, &slot(&ctx).await)
        .await
        .unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    assert!(nothing.is_err(), "no write for a quiet listing");
    let synced = ctx.metrics.encode(0.0);
    assert!(
        synced.contains("personalize_watch_last_sync_timestamp_seconds{"),
        "{synced}"
    );
}

/// The policy allows `self` and STS cannot be reached: not a refusal but a transient failure
/// (retried with backoff), the STS error in the message, still no Personalize call.
#[tokio::test]
async fn an_unknown_own_account_is_retried_not_refused() {
    let (ctx, mut handle) = context_with(
        "http://127.0.0.1:9",
        crate::access::policy::Defaults::default(),
    )
    .await;
    let api_server = tokio::spawn(async move {
        let event = expect_event(&mut handle).await;
        assert_eq!(event["reason"], "AccessUnknown");
        let (_, status) = expect_status_patch(&mut handle, &Value::Null, "2").await;
        let conditions = status["conditions"].as_array().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(get("Ready")["reason"], "AccessUnknown");
        assert!(get("Ready")["message"].as_str().unwrap().contains("STS"));
        assert_eq!(get("Stalled")["status"], "False");
    });
    let result = reconcile(Arc::new(watch(false)), ctx.clone()).await;
    assert!(matches!(result, Err(Error::AccessUnknown(_))), "{result:?}");
    finish(api_server).await;
}

/// Issue 25, item 5: an admin withdraws the namespace's access while a listing is under way; the
/// listing stops before its next page and nothing it found is used.
#[tokio::test]
async fn a_listing_stops_before_its_next_page_once_access_is_withdrawn() {
    let mut state = EmulatorState::default();
    state.store.generate(SV, 250, "ACTIVE", "job").unwrap();
    let (url, emulator) = serve(state).await;
    let (ctx, _handle) = context(&url).await;
    let arn = spec::arn_of(&watch(false)).unwrap();
    let withdrawn = || false;
    let request = ListRequest {
        arn: &arn,
        watch: "default/w",
        every: std::time::Duration::from_secs(60),
        namespace: "default",
        role: None,
        allowed: &withdrawn,
        slot: None,
    };
    let err = ctx
        .personalize
        .list_jobs(&request)
        .await
        .expect_err("the listing stops");
    assert_eq!(err.kind, crate::personalize::ListErrorKind::AccessWithdrawn);
    assert_eq!(err.kind.reason(), Reason::NotPermitted);
    assert_eq!(
        emulator_requests(&emulator),
        1,
        "the first of three pages, and no more"
    );
}

/// Shared listings learn the account's size and never guess it: watches list on their own
/// first; the account-wide listing they then try stops at the calls their own listings take
/// (the account holds 500 jobs nobody watches) and is not tried again.
#[tokio::test]
async fn an_account_wide_listing_stops_at_the_calls_it_was_to_save() {
    const A: &str = "arn:aws:personalize:us-east-1:123456789012:solution/shared/a";
    const B: &str = "arn:aws:personalize:us-east-1:123456789012:solution/shared/b";
    let mut state = EmulatorState::default();
    state.store.generate(A, 1, "ACTIVE", "a").unwrap();
    state.store.generate(B, 1, "ACTIVE", "b").unwrap();
    state
        .store
        .generate(
            "arn:aws:personalize:us-east-1:123456789012:solution/other/v",
            500,
            "ACTIVE",
            "o",
        )
        .unwrap();
    let (url, emulator) = serve(state).await;
    let (ctx, _handle) = context(&url).await;
    let (a, b) = (
        crate::access::arn::WatchedArn::parse_version(A).unwrap(),
        crate::access::arn::WatchedArn::parse_version(B).unwrap(),
    );
    let allowed = || true;
    let request = |arn, watch| ListRequest {
        arn,
        watch,
        every: Duration::from_secs(60),
        namespace: "default",
        role: None,
        allowed: &allowed,
        slot: None,
    };
    for round in 0..3 {
        let listed_a = ctx
            .personalize
            .list_jobs(&request(&a, "default/a"))
            .await
            .unwrap();
        let listed_b = ctx
            .personalize
            .list_jobs(&request(&b, "default/b"))
            .await
            .unwrap();
        assert_eq!(
            (listed_a.jobs.len(), listed_b.jobs.len()),
            (1, 1),
            "round {round}"
        );
        assert_eq!(
            account_wide_requests(&emulator),
            usize::from(round > 0),
            "round {round}"
        );
    }
    // Two own listings a round, and the one page of the stopped account-wide listing.
    assert_eq!(emulator_requests(&emulator), 7);
}

/// Calls of account-wide listings (ListBatchInferenceJobs naming no solution version).
fn account_wide_requests(emulator: &server::Shared) -> usize {
    emulator.with(|state| {
        state
            .requests
            .iter()
            .filter(|r| r.operation == "ListBatchInferenceJobs")
            .filter(|r| r.solution_version_arn.is_none())
            .count()
    })
}

/// Three watches due together share an account-wide listing of up to 8 pages, but every page
/// takes at least 150 ms and their interval is 500 ms: the listing stops at its deadline, before
/// its pages run out, each watch gets its jobs from its own listing, and the group lists on its
/// own from then on (the watches waiting for a slow shared listing would miss their polls).
#[tokio::test]
async fn an_account_wide_listing_slower_than_the_interval_stops_at_its_deadline() {
    use personalize_emulator::api::Operation;
    use personalize_emulator::faults::{FaultKind, FaultRule};
    const EVERY: Duration = Duration::from_millis(500);
    let arns: Vec<String> = (0..3)
        .map(|i| format!("arn:aws:personalize:us-east-1:123456789012:solution/slow/v{i}"))
        .collect();
    let mut state = EmulatorState::default();
    for (i, arn) in arns.iter().enumerate() {
        state
            .store
            .generate(arn, 250, "ACTIVE", &format!("j{i}"))
            .unwrap();
    }
    // Every call after the watches' first listings (3 pages each).
    state.faults.add(
        FaultRule::new(FaultKind::Latency)
            .for_operation(Operation::ListBatchInferenceJobs)
            .after(9)
            .times(1_000)
            .latency_ms(150),
    );
    let (url, emulator) = serve(state).await;
    let (ctx, _handle) = context(&url).await;
    let watched: Vec<crate::access::arn::WatchedArn> = arns
        .iter()
        .map(|a| crate::access::arn::WatchedArn::parse_version(a).unwrap())
        .collect();
    let allowed = || true;
    for round in 0..3 {
        for (i, arn) in watched.iter().enumerate() {
            let watch = format!("default/v{i}");
            let request = ListRequest {
                arn,
                watch: &watch,
                every: EVERY,
                namespace: "default",
                role: None,
                allowed: &allowed,
                slot: None,
            };
            let listed = ctx.personalize.list_jobs(&request).await.unwrap();
            assert_eq!(listed.jobs.len(), 250, "round {round}, {watch}");
        }
        if round == 0 {
            assert_eq!(
                account_wide_requests(&emulator),
                0,
                "first listings are own"
            );
        }
    }
    let account_wide = account_wide_requests(&emulator);
    assert!(
        (1..8).contains(&account_wide),
        "one account-wide listing, stopped before its 8 pages: {account_wide} calls"
    );
}
