//! The emulator checked with independent clients: the real aws-cli and boto3 (from PyPI,
//! installed by hack/tools.sh).

use std::collections::HashSet;
use std::process::Command;

use crate::support::{self, Emulator, FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY};

fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

#[tokio::test]
async fn aws_cli_lists_1234_jobs_across_13_pages() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("cli");
    emu.generate(&sv, 1234, "PENDING", "job").await;
    let output = aws_env(&mut Command::new(support::tool("aws")))
        .args([
            "personalize",
            "list-batch-inference-jobs",
            "--endpoint-url",
            &emu.url,
            "--solution-version-arn",
            &sv,
            "--page-size",
            "100",
            "--output",
            "json",
        ])
        .output()
        .expect("aws runs");
    assert!(
        output.status.success(),
        "aws failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    let jobs = body["batchInferenceJobs"].as_array().expect("jobs");
    let arns: HashSet<&str> = jobs
        .iter()
        .filter_map(|j| j["batchInferenceJobArn"].as_str())
        .collect();
    assert_eq!(jobs.len(), 1234);
    assert_eq!(arns.len(), 1234);
    let pages = emu
        .requests()
        .await
        .iter()
        .filter(|r| r.operation == "ListBatchInferenceJobs" && r.status == 200)
        .count();
    assert_eq!(pages, 13);

    // An error comes back the way the CLI reports AWS errors.
    let bad = aws_env(&mut Command::new(support::tool("aws")))
        .args([
            "personalize",
            "list-batch-inference-jobs",
            "--endpoint-url",
            &emu.url,
            "--max-results",
            "500",
        ])
        .output()
        .expect("aws runs");
    assert_eq!(bad.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("InvalidInputException"), "{stderr}");
}

#[tokio::test]
async fn boto3_paginator_lists_1234_jobs() {
    let emu = Emulator::start();
    let sv = support::solution_version_arn("boto");
    emu.generate(&sv, 1234, "ACTIVE", "job").await;
    let script = r#"
import json, sys, boto3
url, sv = sys.argv[1], sys.argv[2]
c = boto3.client("personalize", endpoint_url=url, region_name="us-east-1")
pages = list(c.get_paginator("list_batch_inference_jobs").paginate(solutionVersionArn=sv, PaginationConfig={"PageSize": 100}))
jobs = [j for p in pages for j in p["batchInferenceJobs"]]
try:
    c.list_batch_inference_jobs(solutionVersionArn=sv, nextToken="garbage")
    err = None
except c.exceptions.InvalidNextTokenException as e:
    err = e.response["Error"]["Code"]
print(json.dumps({
    "pages": len(pages),
    "jobs": len(jobs),
    "unique": len({j["batchInferenceJobArn"] for j in jobs}),
    "tz": jobs[0]["creationDateTime"].tzinfo is not None,
    "error": err,
}))
"#;
    let output = aws_env(&mut Command::new(support::tool("python")))
        .args(["-c", script, &emu.url, &sv])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(result["pages"], 13);
    assert_eq!(result["jobs"], 1234);
    assert_eq!(result["unique"], 1234);
    assert_eq!(result["tz"], true, "timestamps parse as datetimes");
    assert_eq!(result["error"], "InvalidNextTokenException");
}
