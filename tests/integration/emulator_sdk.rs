//! The emulator through the real aws-sdk-personalize client, over HTTP with SigV4 headers.

use std::collections::HashSet;

use aws_sdk_personalize::Client;
use aws_sdk_personalize::config::retry::RetryConfig;
use aws_sdk_personalize::config::{BehaviorVersion, Credentials, Region};
use personalize_emulator::api::Operation;
use personalize_emulator::faults::{FaultKind, FaultRule};

use crate::support::{self, Emulator, FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY};

fn sdk(endpoint: &str) -> Client {
    personalize_watch::install_crypto_provider();
    let config = aws_sdk_personalize::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            FAKE_ACCESS_KEY_ID,
            FAKE_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

#[tokio::test]
async fn lists_1234_jobs_in_13_pages_without_loss_or_repeat() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("big");
    emu.generate(&sv, 1234, "ACTIVE", "job").await;
    // Another solution version's jobs must not leak into the listing.
    emu.generate(
        &support::solution_version_arn("other"),
        50,
        "ACTIVE",
        "other",
    )
    .await;

    let client = sdk(&emu.url);
    let mut pages = client
        .list_batch_inference_jobs()
        .solution_version_arn(&sv)
        .into_paginator()
        .page_size(100)
        .send();
    let mut page_count = 0;
    let mut arns = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        page_count += 1;
        for job in page.batch_inference_jobs() {
            assert_eq!(job.solution_version_arn(), Some(sv.as_str()));
            assert!(job.creation_date_time().is_some());
            arns.push(job.batch_inference_job_arn().unwrap().to_string());
        }
    }
    assert_eq!(page_count, 13);
    assert_eq!(arns.len(), 1234);
    assert_eq!(
        arns.iter().collect::<HashSet<_>>().len(),
        1234,
        "no job repeated"
    );

    let log = emu.requests().await;
    let lists: Vec<_> = log
        .iter()
        .filter(|r| r.operation == "ListBatchInferenceJobs")
        .collect();
    assert_eq!(lists.len(), 13, "one request per page");
    assert!(lists.iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn foreign_token_gives_invalid_next_token() {
    let emu = Emulator::start();
    let a = support::solution_version_arn("a");
    let b = support::solution_version_arn("b");
    emu.generate(&a, 150, "ACTIVE", "a").await;
    emu.generate(&b, 150, "ACTIVE", "b").await;
    let client = sdk(&emu.url);
    let first = client
        .list_batch_inference_jobs()
        .solution_version_arn(&a)
        .send()
        .await
        .unwrap();
    let token = first.next_token().expect("a second page").to_string();
    let err = client
        .list_batch_inference_jobs()
        .solution_version_arn(&b)
        .next_token(&token)
        .send()
        .await
        .expect_err("a token of another query");
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_next_token_exception(),
        "{err:?}"
    );
    let garbled = client
        .list_batch_inference_jobs()
        .solution_version_arn(&a)
        .next_token(format!("{token}x"))
        .send()
        .await
        .expect_err("a garbled token");
    assert!(
        garbled
            .as_service_error()
            .unwrap()
            .is_invalid_next_token_exception()
    );
}

#[tokio::test]
async fn bad_arn_and_max_results_101_give_invalid_input() {
    let emu = Emulator::start();
    let client = sdk(&emu.url);
    let bad_arn = client
        .list_batch_inference_jobs()
        .solution_version_arn("arn:aws:s3:::not-personalize")
        .send()
        .await
        .expect_err("bad ARN");
    let service = bad_arn.as_service_error().unwrap();
    assert!(service.is_invalid_input_exception(), "{bad_arn:?}");
    let too_many = client
        .list_batch_inference_jobs()
        .max_results(101)
        .send()
        .await
        .expect_err("maxResults 101");
    let service = too_many.as_service_error().unwrap();
    assert!(service.is_invalid_input_exception());
    assert!(
        aws_sdk_personalize::error::ProvideErrorMetadata::message(service)
            .unwrap_or_default()
            .contains("maxResults")
    );
    let long_arn = format!(
        "arn:aws:personalize:us-east-1:1:solution/{}",
        "x".repeat(300)
    );
    let too_long = client
        .list_batch_inference_jobs()
        .solution_version_arn(long_arn)
        .send()
        .await
        .expect_err("ARN over 256");
    assert!(
        too_long
            .as_service_error()
            .unwrap()
            .is_invalid_input_exception()
    );
}

#[tokio::test]
async fn two_throttles_are_absorbed_by_the_sdk_retry() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("throttled");
    emu.generate(&sv, 5, "ACTIVE", "job").await;
    emu.fault(
        FaultRule::new(FaultKind::Throttle)
            .times(2)
            .for_operation(Operation::ListBatchInferenceJobs),
    )
    .await;
    let client = sdk(&emu.url);
    let out = client
        .list_batch_inference_jobs()
        .solution_version_arn(&sv)
        .send()
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(out.batch_inference_jobs().len(), 5);
    let statuses: Vec<_> = emu.requests().await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400, 200]);
}

#[tokio::test]
async fn job_changed_through_admin_api_shows_on_next_listing() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("changing");
    let arns = emu.generate(&sv, 3, "IN PROGRESS", "job").await;
    emu.set_status(&arns[1], "CREATE FAILED", Some("Input path not found"))
        .await;
    let client = sdk(&emu.url);
    let out = client
        .list_batch_inference_jobs()
        .solution_version_arn(&sv)
        .send()
        .await
        .unwrap();
    let changed = out
        .batch_inference_jobs()
        .iter()
        .find(|j| j.batch_inference_job_arn() == Some(arns[1].as_str()))
        .unwrap();
    assert_eq!(changed.status(), Some("CREATE FAILED"));
    assert_eq!(changed.failure_reason(), Some("Input path not found"));
    let described = client
        .describe_batch_inference_job()
        .batch_inference_job_arn(&arns[1])
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.batch_inference_job().unwrap().status(),
        Some("CREATE FAILED")
    );
}

#[tokio::test]
async fn describe_and_solution_versions_follow_the_model() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("described");
    emu.generate(&sv, 2, "ACTIVE", "job").await;
    let client = sdk(&emu.url);
    let versions = client
        .list_solution_versions()
        .solution_arn(sv.rsplit_once('/').unwrap().0)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.solution_versions().len(), 1);
    let described = client
        .describe_solution_version()
        .solution_version_arn(&sv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.solution_version().unwrap().status(),
        Some("ACTIVE")
    );
    let missing = client
        .describe_batch_inference_job()
        .batch_inference_job_arn(support::job_arn("nope"))
        .send()
        .await
        .expect_err("unknown job");
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let required = client
        .describe_solution_version()
        .send()
        .await
        .expect_err("required member");
    assert!(
        required
            .as_service_error()
            .unwrap()
            .is_invalid_input_exception()
    );
}

#[tokio::test]
async fn missing_authorization_is_refused_and_unknown_operation_named() {
    let emu = Emulator::start();
    let reply = support::http::request("POST", &emu.url, "/", Some("{}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["__type"],
        "MissingAuthenticationTokenException"
    );
}

#[tokio::test]
async fn concurrent_keep_alive_clients_and_clean_exit_on_sigterm() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("concurrent");
    emu.generate(&sv, 300, "ACTIVE", "job").await;
    // Eight clients, each on its own keep-alive connection, listing at the same time.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = sdk(&emu.url);
        let sv = sv.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..3 {
                let mut pages = client
                    .list_batch_inference_jobs()
                    .solution_version_arn(&sv)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    n += page.unwrap().batch_inference_jobs().len();
                }
            }
            n
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 900);
    }
    let mut emu = emu;
    let (code, took) = emu.stop_with("TERM");
    assert_eq!(code, Some(0));
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
