//! The snippets in README.md and docs/ are exercised: YAML and JSON parse (watches into the CRD
//! types), the emulator's documented commands run against a real emulator. The Helm commands,
//! `make demo` and the GitOps files have tests of their own (packaging, gitops).

use std::process::Command;

use personalize_watch::crd::SolutionVersionWatch;

use crate::support::{self, Emulator, markdown};

/// (language, body) of every fenced block.
fn blocks(markdown: &str) -> Vec<(String, String)> {
    markdown::blocks(markdown)
        .into_iter()
        .map(|b| (b.lang, b.body))
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(support::repo_root().join(path)).unwrap()
}

#[test]
fn yaml_and_json_snippets_parse_and_watches_fit_the_crd() {
    let mut watches = 0;
    for doc in [
        "README.md",
        "docs/emulator.md",
        "docs/gitops.md",
        "CONTRIBUTING.md",
    ] {
        for (lang, body) in blocks(&read(doc)) {
            match lang.as_str() {
                "yaml" => {
                    let value: serde_yaml::Value =
                        serde_yaml::from_str(&body).unwrap_or_else(|e| {
                            panic!("{doc}: YAML block does not parse ({e}):\n{body}")
                        });
                    if value["kind"] == "SolutionVersionWatch" {
                        let _: SolutionVersionWatch =
                            serde_yaml::from_value(value).unwrap_or_else(|e| {
                                panic!("{doc}: the sample does not fit the CRD types: {e}")
                            });
                        watches += 1;
                    }
                }
                "json" => {
                    let _: serde_json::Value = serde_json::from_str(&body)
                        .unwrap_or_else(|e| panic!("{doc}: JSON block does not parse ({e})"));
                }
                _ => {}
            }
        }
    }
    assert!(watches >= 1, "the README shows a SolutionVersionWatch");
    // The IAM policies are files (docs/iam), checked by
    // packaging::the_iam_policies_parse_and_name_the_charts_service_account.
    assert!(read("README.md").contains("docs/iam/"));
}

#[test]
fn examples_are_valid_watches() {
    let dir = support::repo_root().join("examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "emulator-state.yaml" {
            let text = std::fs::read_to_string(&path).unwrap();
            let state = personalize_emulator::model::StateFile::parse(&text).unwrap();
            assert_eq!(state.batch_inference_jobs.len(), 12);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let _: SolutionVersionWatch =
                serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// The emulator's documented curl and aws commands, run against a real emulator.
#[tokio::test]
async fn emulator_doc_commands_run() {
    let emu = Emulator::start_with(&[
        "--state",
        support::repo_root()
            .join("examples/emulator-state.yaml")
            .to_str()
            .unwrap(),
    ]);
    let doc = read("docs/emulator.md");
    let venv_bin = support::tool("aws").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for (lang, body) in blocks(&doc) {
        if lang != "bash" {
            continue;
        }
        // Starting the emulator is done above; the rest runs as written, against it.
        let script: String = body
            .lines()
            .filter(|l| !l.starts_with("cargo run"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("http://127.0.0.1:9574", &emu.url)
            .replace("localhost:9574", emu.url.trim_start_matches("http://"));
        let out = Command::new("bash")
            .args(["-c", &format!("set -euo pipefail\n{script}")])
            .env("PATH", &path)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docs/emulator.md block failed:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 2);
    let log = emu.requests().await;
    assert!(
        log.iter()
            .any(|r| r.operation == "ListBatchInferenceJobs" && r.status == 200)
    );
    let faults = support::http::get(&emu.url, "/_emulator/faults")
        .await
        .json();
    assert_eq!(
        faults["faults"][0]["kind"], "throttle",
        "the documented fault was added"
    );
}

/// Whether a span between backquotes is a test's path (`module::test`, `module::*`).
fn is_test_path(span: &str) -> bool {
    let path: Vec<&str> = span.split("::").collect();
    path.len() >= 2
        && path.iter().all(|p| {
            *p == "*"
                || p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Every promise in the threat model and the reliability tables names its test: each row's last
/// cell cites one, or says `same` (the row above's). A promise without a test goes.
#[test]
fn every_promise_in_the_tables_names_its_test() {
    let mut rows = 0;
    for doc in ["docs/security.md", "docs/reliability.md"] {
        let text = read(doc);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let header = lines
                .get(i + 1)
                .is_some_and(|next| next.starts_with("|---"));
            if !line.starts_with("| ") || header {
                continue;
            }
            let cells: Vec<&str> = line.trim_end_matches('|').split(" | ").collect();
            let last = cells.last().copied().unwrap_or_default().trim();
            let cites = last.split('`').skip(1).step_by(2).any(is_test_path);
            assert!(
                cites || last.starts_with("same"),
                "{doc}:{}: a promise with no test: {line:.120}",
                i + 1
            );
            rows += 1;
        }
    }
    assert!(rows >= 75, "only {rows} rows read");
}

/// Every test the README, the threat model and the reliability tables cite exists (a renamed
/// test must not leave a promise without proof).
#[test]
fn the_tests_docs_cite_exist() {
    let mut sources = String::new();
    let root = support::repo_root();
    let mut dirs = vec![root.join("src"), root.join("tests"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut cited = 0;
    for doc in ["README.md", "docs/security.md", "docs/reliability.md"] {
        for span in read(doc).split('`').skip(1).step_by(2) {
            if !is_test_path(span) {
                continue;
            }
            let Some(name) = span.rsplit("::").next().filter(|n| *n != "*") else {
                continue;
            };
            cited += 1;
            assert!(
                sources.contains(&format!("fn {name}(")),
                "{doc} cites `{span}`, which is not a test"
            );
        }
    }
    assert!(cited >= 20, "only {cited} tests cited");
}
