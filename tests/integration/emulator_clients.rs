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

fn two_accounts() -> (Emulator, String) {
    let emu = Emulator::start_with_state(&support::two_account_state(), &[]);
    let sv_b = support::solution_version_arn_in(support::ACCOUNT_B, "team-b-recs");
    (emu, sv_b)
}

fn run_ok(cmd: &mut Command) -> serde_json::Value {
    let output = cmd.output().expect("the client runs");
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// aws-cli: who am I, AssumeRole into account B with its external ID, then list B's jobs with
/// the temporary credentials; with the operator's own key the same listing is refused.
#[tokio::test]
async fn aws_cli_assumes_a_role_and_lists_the_other_accounts_jobs() {
    let (emu, sv_b) = two_accounts();
    emu.generate(&sv_b, 7, "ACTIVE", "b").await;
    let aws = || {
        let mut cmd = Command::new(support::tool("aws"));
        aws_env(&mut cmd);
        cmd.args(["--endpoint-url", &emu.url, "--output", "json"]);
        cmd
    };
    let me = run_ok(aws().args(["sts", "get-caller-identity"]));
    assert_eq!(me["Account"], support::ACCOUNT);
    let assumed = run_ok(aws().args([
        "sts",
        "assume-role",
        "--role-arn",
        support::ROLE_B,
        "--role-session-name",
        "cli",
        "--external-id",
        support::TEAM_B_EXTERNAL_ID,
    ]));
    let creds = &assumed["Credentials"];
    let key = creds["AccessKeyId"].as_str().expect("a key");
    let secret = creds["SecretAccessKey"].as_str().expect("a secret");
    let token = creds["SessionToken"].as_str().expect("a token");
    assert!(creds["Expiration"].as_str().is_some_and(|e| e.len() >= 20));
    let as_b = || {
        let mut cmd = aws();
        cmd.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token);
        cmd
    };
    let who = run_ok(as_b().args(["sts", "get-caller-identity"]));
    assert_eq!(who["Account"], support::ACCOUNT_B);
    assert!(
        who["Arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/personalize-watch-reader/cli")
    );
    let listed = run_ok(as_b().args([
        "personalize",
        "list-batch-inference-jobs",
        "--solution-version-arn",
        &sv_b,
    ]));
    assert_eq!(
        listed["batchInferenceJobs"].as_array().map(Vec::len),
        Some(7)
    );

    let refused = aws()
        .args([
            "personalize",
            "list-batch-inference-jobs",
            "--solution-version-arn",
            &sv_b,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("AccessDeniedException"),
        "{stderr}"
    );
    let wrong_id = aws()
        .args([
            "sts",
            "assume-role",
            "--role-arn",
            support::ROLE_B,
            "--role-session-name",
            "guesser",
        ])
        .args(["--external-id", "guess"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong_id.stderr);
    assert!(
        !wrong_id.status.success() && stderr.contains("AccessDenied"),
        "{stderr}"
    );
}

/// boto3: AssumeRole, list with the temporary credentials (a paginator over 250 jobs), and a
/// client signing for another region sees an empty listing.
#[tokio::test]
async fn boto3_assumes_a_role_and_lists_with_temporary_credentials() {
    let (emu, sv_b) = two_accounts();
    emu.generate(&sv_b, 250, "ACTIVE", "b").await;
    let script = r#"
import json, sys, boto3
url, sv, role, external_id = sys.argv[1:5]
sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1")
creds = sts.assume_role(RoleArn=role, RoleSessionName="boto", ExternalId=external_id)["Credentials"]
session = boto3.Session(
    aws_access_key_id=creds["AccessKeyId"],
    aws_secret_access_key=creds["SecretAccessKey"],
    aws_session_token=creds["SessionToken"],
)
def jobs(region):
    c = session.client("personalize", endpoint_url=url, region_name=region)
    pages = c.get_paginator("list_batch_inference_jobs").paginate(solutionVersionArn=sv)
    return [j for p in pages for j in p["batchInferenceJobs"]]
account = session.client("sts", endpoint_url=url, region_name="us-east-1").get_caller_identity()["Account"]
print(json.dumps({
    "account": account,
    "jobs": len(jobs("us-east-1")),
    "other_region": len(jobs("eu-west-1")),
    "expires": creds["Expiration"].tzinfo is not None,
}))
"#;
    let result = run_ok(aws_env(&mut Command::new(support::tool("python"))).args([
        "-c",
        script,
        &emu.url,
        &sv_b,
        support::ROLE_B,
        support::TEAM_B_EXTERNAL_ID,
    ]));
    assert_eq!(result["account"], support::ACCOUNT_B);
    assert_eq!(result["jobs"], 250);
    assert_eq!(
        result["other_region"], 0,
        "the signature's region must match the ARN's"
    );
    assert_eq!(result["expires"], true);
}

/// A state file whose solution retrains itself every second and whose schedule names the
/// solution: its jobs move to the newest version.
fn retraining_state(solution: &str) -> String {
    format!(
        "simulation:\n  solutions:\n  - solutionArn: {solution}\n    autoTraining: {{everySeconds: 1}}\n  \
         schedules:\n  - solutionArn: {solution}\n    everySeconds: 1\n    namePrefix: weekly\n"
    )
}

/// aws-cli and boto3 see automatic training: ListSolutionVersions lists the solution's
/// versions (AUTOMATIC, ACTIVE) over pages, and the account-wide ListBatchInferenceJobs (no
/// solutionVersionArn) lists the scheduled jobs against more than one of them.
#[tokio::test]
async fn aws_cli_and_boto3_see_a_solution_retrain_and_its_jobs_follow() {
    let solution = format!(
        "arn:aws:personalize:us-east-1:{}:solution/retrains",
        support::ACCOUNT
    );
    let emu = Emulator::start_with_state(&retraining_state(&solution), &[]);
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let versions = run_ok(aws_env(&mut Command::new(support::tool("aws"))).args([
        "personalize",
        "list-solution-versions",
        "--endpoint-url",
        &emu.url,
        "--solution-arn",
        &solution,
        "--page-size",
        "2",
        "--output",
        "json",
    ]));
    let versions = versions["solutionVersions"].as_array().expect("versions");
    assert!(versions.len() >= 3, "a version a second: {versions:?}");
    assert!(versions.iter().all(|v| {
        v["status"] == "ACTIVE"
            && v["trainingType"] == "AUTOMATIC"
            && v["solutionVersionArn"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("{solution}/")))
    }));
    let jobs = run_ok(aws_env(&mut Command::new(support::tool("aws"))).args([
        "personalize",
        "list-batch-inference-jobs",
        "--endpoint-url",
        &emu.url,
        "--output",
        "json",
    ]));
    let used: HashSet<&str> = jobs["batchInferenceJobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["solutionVersionArn"].as_str())
        .collect();
    assert!(
        used.len() >= 2,
        "the jobs follow the newest version: {used:?}"
    );
    let script = r#"
import json, sys, boto3
url, solution = sys.argv[1], sys.argv[2]
c = boto3.client("personalize", endpoint_url=url, region_name="us-east-1")
pages = list(c.get_paginator("list_solution_versions").paginate(solutionArn=solution, PaginationConfig={"PageSize": 1}))
versions = [v["solutionVersionArn"] for p in pages for v in p["solutionVersions"]]
print(json.dumps({"pages": len(pages), "versions": len(versions), "unique": len(set(versions))}))
"#;
    let result = run_ok(
        aws_env(&mut Command::new(support::tool("python")))
            .args(["-c", script, &emu.url, &solution]),
    );
    assert!(
        result["versions"].as_u64().is_some_and(|n| n >= 3),
        "{result}"
    );
    assert_eq!(result["versions"], result["unique"]);
    assert_eq!(result["pages"], result["versions"], "one version a page");
}
