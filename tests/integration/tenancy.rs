//! Tenancy end to end. The emulator holds jobs in two accounts: A (123456789012, the operator's
//! own) and B (222222222222), with a role in B that trusts A when the external ID is given, and
//! one in a third account that trusts nobody. Cluster admins decide who may watch what with
//! namespace annotations and the account-roles ConfigMap; the tests check that a watch's author
//! cannot go past them, that no AWS call is made for a refused watch, and that edits take effect
//! without a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use personalize_emulator::LoggedRequest;
use personalize_emulator::faults::{FaultKind, FaultRule};
use personalize_watch::access::policy::ALLOWED_ACCOUNTS;
use personalize_watch::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};

use crate::support::processes::{Operator, OperatorOptions};
use crate::support::{
    self, ACCOUNT, ACCOUNT_B, Emulator, ROLE_B, ROLE_B_TEAM_C, TEAM_B_EXTERNAL_ID,
    TEAM_C_EXTERNAL_ID, UNTRUSTING_ROLE, condition, total, wait_for,
};

const ROLES: &str = "account-roles";

/// The namespaces of one test, the emulator and an operator handling them.
struct World {
    client: Client,
    emu: Emulator,
    op: Operator,
    /// Holds the account-roles ConfigMap.
    admin_ns: String,
}

impl World {
    /// Namespaces with these policy annotations (None: no annotation); an operator handling
    /// them with the account-roles ConfigMap holding `roles`.
    async fn start(
        prefix: &str,
        namespaces: &[Option<&str>],
        roles: &[(&str, &str)],
    ) -> (Self, Vec<String>) {
        let client = support::client().await;
        support::install_crds(&client).await;
        let admin_ns = support::namespace(&client, &format!("{prefix}-admin")).await;
        let mut names = Vec::new();
        for (i, accounts) in namespaces.iter().enumerate() {
            let ns = support::namespace(&client, &format!("{prefix}-{i}")).await;
            if let Some(accounts) = accounts {
                annotate(&client, &ns, Some(accounts)).await;
            }
            names.push(ns);
        }
        set_roles(&client, &admin_ns, roles).await;
        let emu = Emulator::start_with_state(&support::two_account_state(), &[]);
        let op = Operator::start(OperatorOptions {
            kubeconfig: support::control_plane().kubeconfig.clone(),
            endpoint: &emu.url,
            args: vec![
                "--watch-namespace".into(),
                names.join(","),
                "--account-roles".into(),
                format!("{admin_ns}/{ROLES}"),
            ],
            env: vec![],
        });
        op.wait_ready().await;
        let world = World {
            client,
            emu,
            op,
            admin_ns,
        };
        (world, names)
    }

    async fn apply_watch(&self, ns: &str, name: &str, sv: &str) {
        self.apply_spec(ns, name, SolutionVersionWatchSpec::watching(sv))
            .await;
    }

    async fn apply_solution_watch(&self, ns: &str, name: &str, solution: &str) {
        self.apply_spec(
            ns,
            name,
            SolutionVersionWatchSpec::watching_solution(solution),
        )
        .await;
    }

    /// Applies a watch of `spec`, polling every 5 s.
    async fn apply_spec(&self, ns: &str, name: &str, spec: SolutionVersionWatchSpec) {
        let mut watch = SolutionVersionWatch::new(
            name,
            SolutionVersionWatchSpec {
                poll_interval: Some("5s".into()),
                active_poll_interval: Some("5s".into()),
                ..spec
            },
        );
        watch.metadata.namespace = Some(ns.to_string());
        Api::<SolutionVersionWatch>::namespaced(self.client.clone(), ns)
            .patch(
                name,
                &PatchParams::apply("tenancy-tests"),
                &Patch::Apply(&watch),
            )
            .await
            .expect("apply the watch");
    }

    async fn wait_watch(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&SolutionVersionWatch) -> bool,
    ) -> SolutionVersionWatch {
        let api = Api::<SolutionVersionWatch>::namespaced(self.client.clone(), ns);
        let check = &check;
        wait_for(Duration::from_secs(45), what, || {
            let api = api.clone();
            async move {
                let w = api.get(name).await.ok()?;
                check(&w).then_some(w)
            }
        })
        .await
    }

    /// The requests that named `subject` (a solution version or a role).
    async fn calls_naming(&self, subject: &str) -> Vec<LoggedRequest> {
        let log = self.emu.requests().await;
        log.into_iter()
            .filter(|r| r.solution_version_arn.as_deref() == Some(subject))
            .collect()
    }

    async fn warning_events(&self, ns: &str, reason: &str) -> usize {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        let events = api.list(&Default::default()).await.expect("list events");
        events
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning")
            })
            .count()
    }
}

/// Sets the namespace's allowed-accounts annotation (None removes it).
async fn annotate(client: &Client, ns: &str, accounts: Option<&str>) {
    annotate_with(client, ns, serde_json::json!({ALLOWED_ACCOUNTS: accounts})).await;
}

/// Merges `annotations` into the namespace's (a null value removes one).
async fn annotate_with(client: &Client, ns: &str, annotations: serde_json::Value) {
    let patch = serde_json::json!({"metadata": {"annotations": annotations}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the namespace");
}

async fn set_roles(client: &Client, ns: &str, roles: &[(&str, &str)]) {
    let data: BTreeMap<String, String> = roles
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(ROLES.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    if api
        .get_opt(ROLES)
        .await
        .expect("read the ConfigMap")
        .is_some()
    {
        api.replace(ROLES, &PostParams::default(), &cm)
            .await
            .expect("replace the ConfigMap");
    } else {
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create the ConfigMap");
    }
}

fn ready(w: &SolutionVersionWatch) -> Option<(String, String)> {
    condition(w, "Ready")
}

fn ready_message(w: &SolutionVersionWatch) -> String {
    w.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn refused_as(w: &SolutionVersionWatch, reason: &str) -> bool {
    ready(w) == Some(("False".into(), reason.into()))
        && condition(w, "Stalled").map(|c| c.0) == Some("True".into())
}

/// Only A allowed, a watch naming B: NotPermitted, Stalled, one Warning Event naming the
/// annotation, no call. No annotation: A works, B is refused by the defaults; the annotation
/// edited to allow B (mapped to its role): the watch recovers without a restart, after one
/// AssumeRole, and every call for B's solution version is made as B.
#[tokio::test]
async fn a_namespace_watches_only_what_its_policy_allows() {
    let roles = [
        (ACCOUNT_B, ROLE_B),
        ("222222222222.externalId", TEAM_B_EXTERNAL_ID),
    ];
    let (world, ns) = World::start("tenancy", &[Some(ACCOUNT), None], &roles).await;
    let (only_a, plain) = (&ns[0], &ns[1]);
    let refused_sv = support::solution_version_arn_in(ACCOUNT_B, "refused");
    let own_sv = support::solution_version_arn_in(ACCOUNT, "own");
    let b_sv = support::solution_version_arn_in(ACCOUNT_B, "recovers");
    world.emu.generate(&refused_sv, 2, "ACTIVE", "secret").await;
    world.emu.generate(&own_sv, 3, "ACTIVE", "own").await;
    world.emu.generate(&b_sv, 4, "ACTIVE", "b").await;

    world.apply_watch(only_a, "b-from-a", &refused_sv).await;
    let w = world
        .wait_watch(only_a, "b-from-a", "NotPermitted", |w| {
            refused_as(w, "NotPermitted")
        })
        .await;
    let message = ready_message(&w);
    assert!(
        message.contains(ALLOWED_ACCOUNTS) && message.contains(only_a.as_str()),
        "the message names the policy that refused it: {message}"
    );
    assert_eq!(
        w.status.as_ref().and_then(|s| s.counts.as_ref()),
        None,
        "nothing listed"
    );

    world.apply_watch(plain, "own", &own_sv).await;
    world.apply_watch(plain, "b-from-plain", &b_sv).await;
    world
        .wait_watch(plain, "own", "the own account's jobs", |w| {
            total(w) == Some(3)
        })
        .await;
    let w = world
        .wait_watch(plain, "b-from-plain", "refused by the defaults", |w| {
            refused_as(w, "NotPermitted")
        })
        .await;
    assert!(
        ready_message(&w).contains("--default-allowed-accounts"),
        "{}",
        ready_message(&w)
    );
    assert!(
        !ready_message(&w).contains(ACCOUNT),
        "the operator's account stays unnamed"
    );
    assert!(
        world.calls_naming(&b_sv).await.is_empty(),
        "no call before the policy allows it"
    );

    annotate(&world.client, plain, Some(&format!("self, {ACCOUNT_B}"))).await;
    world
        .wait_watch(plain, "b-from-plain", "recovered without a restart", |w| {
            total(w) == Some(4) && ready(w) == Some(("True".into(), "Synced".into()))
        })
        .await;
    // A few more polls of both B watches' neighbours.
    tokio::time::sleep(Duration::from_secs(12)).await;

    assert!(
        world.calls_naming(&refused_sv).await.is_empty(),
        "the refused watch's ARN never reached Personalize"
    );
    assert_eq!(
        world.warning_events(only_a, "NotPermitted").await,
        1,
        "one Warning Event"
    );
    let assumed: Vec<LoggedRequest> = world
        .calls_naming(ROLE_B)
        .await
        .into_iter()
        .filter(|r| r.operation == "AssumeRole")
        .collect();
    assert_eq!(assumed.len(), 1, "credentials cached: {assumed:?}");
    assert_eq!(assumed[0].status, 200);
    let b_calls = world.calls_naming(&b_sv).await;
    assert!(b_calls.len() >= 2, "polled again: {b_calls:?}");
    assert!(
        b_calls
            .iter()
            .all(|r| r.account == ACCOUNT_B && r.status == 200 && r.seq > assumed[0].seq),
        "B's jobs are listed only as B, after the AssumeRole: {b_calls:?}"
    );
    assert!(
        world
            .calls_naming(&own_sv)
            .await
            .iter()
            .all(|r| r.account == ACCOUNT),
        "the own account with the operator's own credentials"
    );
    let logs = world.op.logs();
    assert!(
        !logs.contains(support::FAKE_SECRET_ACCESS_KEY),
        "no secret in the logs"
    );

    // Access withdrawn again (issue 25, item 5): what B told leaves the status and the metrics.
    annotate(&world.client, plain, Some("self")).await;
    let w = world
        .wait_watch(plain, "b-from-plain", "access withdrawn", |w| {
            refused_as(w, "NotPermitted")
        })
        .await;
    let status = w.status.clone().unwrap_or_default();
    assert_eq!(status.counts, None, "no counts from B");
    assert!(
        status.jobs.is_empty()
            && status.latest_job.is_none()
            && status.ledger.as_ref().is_none_or(|l| l.open.is_empty())
    );
    let yaml = serde_json::to_string(&w).unwrap();
    assert!(
        !yaml.contains("batch-inference-job/b-"),
        "no job of B's is named: {yaml}"
    );
    let scrape = world.op.metrics().await;
    let series: Vec<&str> = scrape
        .text()
        .lines()
        .filter(|l| l.contains("\"b-from-plain\"") && l.contains("state="))
        .collect();
    assert!(series.is_empty(), "no job series of B's: {series:?}");
}

/// The account-roles ConfigMap is watched: a role that cannot be assumed (the external ID
/// missing) is Stalled AccessDenied naming the role, and the edited ConfigMap fixes it without
/// a restart. A role that trusts nobody is refused the same way; an allowed account without a
/// role is listed with the operator's own credentials and AWS's AccessDenied reaches the status
/// without the operator's principal or account.
/// Two namespaces allowed account B: one lists it through the account-roles ConfigMap's role,
/// the other through the role its own annotations choose (with its external ID); an annotation
/// naming a role in another account is refused, naming the annotation, before any call.
#[tokio::test]
async fn a_namespace_annotation_chooses_the_role_for_an_account() {
    let roles = [
        (ACCOUNT_B, ROLE_B),
        ("222222222222.externalId", TEAM_B_EXTERNAL_ID),
    ];
    let namespaces = [Some(ACCOUNT_B), Some(ACCOUNT_B), Some(ACCOUNT_B)];
    let (world, ns) = World::start("nsrole", &namespaces, &roles).await;
    let (shared, own, wrong) = (&ns[0], &ns[1], &ns[2]);
    for (ns, role, external_id) in [
        (own, ROLE_B_TEAM_C, TEAM_C_EXTERNAL_ID),
        (wrong, UNTRUSTING_ROLE, "x"),
    ] {
        let annotations = serde_json::json!({
            "personalize-watch.dev/role.222222222222": role,
            "personalize-watch.dev/external-id.222222222222": external_id,
        });
        annotate_with(&world.client, ns, annotations).await;
    }
    let sv = |name: &str| support::solution_version_arn_in(ACCOUNT_B, name);
    for (ns, name) in [(shared, "shared"), (own, "own"), (wrong, "wrong")] {
        world.emu.generate(&sv(name), 3, "ACTIVE", name).await;
        world.apply_watch(ns, name, &sv(name)).await;
    }
    for (ns, name) in [(shared, "shared"), (own, "own")] {
        world
            .wait_watch(ns, name, "listed through its role", |w| total(w) == Some(3))
            .await;
    }
    let w = world
        .wait_watch(wrong, "wrong", "NotPermitted", |w| {
            refused_as(w, "NotPermitted")
        })
        .await;
    assert!(
        ready_message(&w).contains("personalize-watch.dev/role.222222222222"),
        "{}",
        ready_message(&w)
    );
    assert!(world.calls_naming(&sv("wrong")).await.is_empty(), "no call");
    let mut assumed = Vec::new();
    for role in [ROLE_B, ROLE_B_TEAM_C, UNTRUSTING_ROLE] {
        assumed.push(world.calls_naming(role).await.len());
    }
    assert!(
        assumed[0] >= 1,
        "the ConfigMap's role for {shared}: {assumed:?}"
    );
    assert!(
        assumed[1] >= 1,
        "the annotation's role for {own}: {assumed:?}"
    );
    assert_eq!(assumed[2], 0, "{assumed:?}");
}

#[tokio::test]
async fn account_roles_are_assumed_and_their_failures_named() {
    let roles = [(ACCOUNT_B, ROLE_B), ("444444444444", UNTRUSTING_ROLE)];
    let allowed = format!("{ACCOUNT_B},333333333333,444444444444");
    let (world, ns) = World::start("roles", &[Some(&allowed)], &roles).await;
    let team = &ns[0];
    let b_sv = support::solution_version_arn_in(ACCOUNT_B, "team-b");
    let unmapped_sv = support::solution_version_arn_in("333333333333", "unmapped");
    let untrusting_sv = support::solution_version_arn_in("444444444444", "untrusting");
    world.emu.generate(&b_sv, 5, "IN PROGRESS", "b").await;

    world.apply_watch(team, "b", &b_sv).await;
    world.apply_watch(team, "unmapped", &unmapped_sv).await;
    world.apply_watch(team, "untrusting", &untrusting_sv).await;
    let w = world
        .wait_watch(team, "b", "AssumeRole refused", |w| {
            refused_as(w, "AccessDenied")
        })
        .await;
    assert!(
        ready_message(&w).contains(ROLE_B),
        "the role is named: {}",
        ready_message(&w)
    );
    let w = world
        .wait_watch(team, "untrusting", "AssumeRole refused", |w| {
            refused_as(w, "AccessDenied")
        })
        .await;
    assert!(
        ready_message(&w).contains(UNTRUSTING_ROLE),
        "{}",
        ready_message(&w)
    );
    let w = world
        .wait_watch(team, "unmapped", "Personalize refused", |w| {
            refused_as(w, "AccessDenied")
        })
        .await;
    let message = ready_message(&w);
    for leak in [ACCOUNT, ":iam::", ":sts::", support::FAKE_ACCESS_KEY_ID] {
        assert!(
            !message.contains(leak),
            "{leak} shown to the namespace: {message}"
        );
    }
    assert!(
        message.contains(&unmapped_sv),
        "the watch's own ARN stays: {message}"
    );

    set_roles(
        &world.client,
        &world.admin_ns,
        &[
            (ACCOUNT_B, ROLE_B),
            ("222222222222.externalId", TEAM_B_EXTERNAL_ID),
            ("444444444444", UNTRUSTING_ROLE),
        ],
    )
    .await;
    world
        .wait_watch(
            team,
            "b",
            "listed with the role after the ConfigMap edit",
            |w| total(w) == Some(5) && ready(w).is_some_and(|r| r.0 == "True"),
        )
        .await;
    // A watch of B's solution: its first poll lists the solution's versions, through the role.
    let b_solution = b_sv
        .rsplit_once('/')
        .map_or(b_sv.as_str(), |(solution, _)| solution);
    world
        .apply_solution_watch(team, "b-solution", b_solution)
        .await;
    world
        .wait_watch(
            team,
            "b-solution",
            "the solution listed with the role",
            |w| total(w) == Some(5),
        )
        .await;
    let granted = world
        .calls_naming(ROLE_B)
        .await
        .into_iter()
        .filter(|r| r.operation == "AssumeRole" && r.status == 200)
        .count();
    assert_eq!(granted, 1);
    let b_calls = world.calls_naming(&b_sv).await;
    assert!(
        b_calls
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.account == ACCOUNT_B),
        "{b_calls:?}"
    );
    assert!(world.warning_events(team, "AccessDenied").await >= 3);

    // docs/iam/operator-policy.json allows exactly the actions behind the calls made here, own
    // identity and assumed roles alike (GetCallerIdentity needs no permission).
    let called: std::collections::BTreeSet<String> = world
        .emu
        .requests()
        .await
        .iter()
        .filter_map(|r| match r.operation.as_str() {
            "GetCallerIdentity" => None,
            "AssumeRole" => Some("sts:AssumeRole".to_string()),
            "ListBatchInferenceJobs" => Some("personalize:ListBatchInferenceJobs".to_string()),
            "ListSolutionVersions" => Some("personalize:ListSolutionVersions".to_string()),
            other => Some(format!("an operation docs/iam does not cover: {other}")),
        })
        .collect();
    assert_eq!(
        called,
        crate::packaging::iam_actions("operator-policy.json")
    );
}

/// 400 watches at a 5 s interval in one namespace, 24 more listing 10 pages each and 8 whose
/// listings never answer (each attempt runs into the 30 s time limit), and 1 watch in another
/// namespace, at the default rate limit (5 calls per second: the crowd alone asks for 130) and
/// concurrency (16): for 90 s in `make test`, 5 minutes in `make soak`, the lone watch is
/// listed within twice its interval every time, while the crowd waits behind itself.
#[tokio::test]
async fn a_crowded_namespace_slows_only_itself() {
    let (world, ns) = World::start("fair", &[None, None], &[]).await;
    let (crowd, lone) = (&ns[0], &ns[1]);
    let mut yaml = String::new();
    let mut crowd_watch = |name: &str| {
        let sv = support::solution_version_arn(name);
        let spec = format!("solutionVersionArn: {sv}\npollInterval: 5s\nactivePollInterval: 5s");
        yaml.push_str("---\n");
        yaml.push_str(&support::watch_yaml(crowd, name, &spec));
        sv
    };
    for i in 0..400 {
        crowd_watch(&format!("crowd-{i}"));
    }
    for i in 0..24 {
        let sv = crowd_watch(&format!("crowd-long-{i}"));
        world
            .emu
            .generate(&sv, 1_000, "ACTIVE", &format!("long{i}"))
            .await;
    }
    for i in 0..8 {
        let sv = crowd_watch(&format!("crowd-silent-{i}"));
        world
            .emu
            .fault(FaultRule {
                count: 1_000,
                solution_version_arn: Some(sv),
                latency_ms: Some(600_000),
                ..FaultRule::new(FaultKind::Latency)
            })
            .await;
    }
    let applied = support::kubectl_with_input(&["apply", "-f", "-"], Some(&yaml));
    assert!(applied.success, "{}", applied.stderr);
    // Let the crowd fill the queue before the lone watch arrives.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let lone_sv = support::solution_version_arn("lone");
    world.emu.generate(&lone_sv, 3, "IN PROGRESS", "lone").await;
    let started_ms = now_ms();
    world.apply_watch(lone, "lone", &lone_sv).await;
    let window = support::soak(Duration::from_secs(90), Duration::from_secs(300));
    tokio::time::sleep(window).await;
    let ended_ms = now_ms();
    // Polls of one watch every 5 s over the window.
    let polls = (window.as_secs() / 5) as usize;

    let log = world.emu.requests().await;
    let lone_calls: Vec<i64> = log
        .iter()
        .filter(|r| r.solution_version_arn.as_deref() == Some(lone_sv.as_str()))
        .map(|r| r.time_ms)
        .collect();
    let mut gaps = Vec::new();
    let mut last = started_ms;
    for t in lone_calls.iter().copied().chain([ended_ms]) {
        gaps.push(t - last);
        last = t;
    }
    let worst = gaps.iter().copied().max().unwrap_or(i64::MAX);
    let crowd_calls = log
        .iter()
        .filter(|r| {
            r.solution_version_arn
                .as_deref()
                .is_some_and(|s| s.contains(":solution/crowd-"))
                && r.time_ms >= started_ms
        })
        .count();
    eprintln!(
        "lone watch: {} listings in {} s, longest wait {} ms; crowd: {crowd_calls} listings",
        lone_calls.len(),
        (ended_ms - started_ms) / 1000,
        worst
    );
    assert!(
        worst <= 10_000,
        "the lone watch waited {worst} ms (gaps {gaps:?})"
    );
    assert!(
        lone_calls.len() >= polls * 2 / 3,
        "about every 5 s: {} in {polls} intervals",
        lone_calls.len()
    );
    assert!(
        crowd_calls < 400 * polls / 3,
        "the crowd was held to the rate limit ({crowd_calls} listings), so the test measured contention"
    );
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
