//! The snippets in README.md and docs/ are exercised: YAML and JSON parse (watches into the CRD
//! types), the emulator's documented commands run against a real emulator, and every block of
//! commands the README has a user type is named and run by a test (readme, packaging, gitops,
//! smoke). The GitOps files have tests of their own (gitops).

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
    for doc in [
        "README.md",
        "docs/security.md",
        "docs/reliability.md",
        "docs/gitops.md",
    ] {
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

/// Which test runs each block of commands the README has a user type.
const README_BLOCKS_RUN_BY: &[(&str, &[&str])] = &[
    (
        "setup",
        &[
            "readme::the_setup_block_is_what_ci_runs",
            "gitops::demo_shows_counts_and_the_simulated_service_moving",
        ],
    ),
    (
        "node-walkthrough",
        &[
            "readme::the_node_walkthrough_installs_the_chart_that_syncs_the_demo_watch",
            "smoke::make_cluster_up_and_down_as_documented",
        ],
    ),
    (
        "plugin",
        &["readme::the_plugin_block_installs_a_plugin_that_prints_the_watch_s_jobs"],
    ),
    (
        "helm-install-irsa",
        &["packaging::readme_install_commands_render_and_are_accepted"],
    ),
    (
        "helm-install-teams",
        &["packaging::readme_install_commands_render_and_are_accepted"],
    ),
    (
        "helm-install-accounts",
        &["packaging::readme_install_commands_render_and_are_accepted"],
    ),
    (
        "iam-irsa",
        &["readme::the_iam_commands_send_the_documented_policies"],
    ),
    (
        "iam-pod-identity",
        &["readme::the_iam_commands_send_the_documented_policies"],
    ),
    (
        "iam-reader",
        &["readme::the_iam_commands_send_the_documented_policies"],
    ),
    (
        "iam-check",
        &["readme::the_iam_commands_send_the_documented_policies"],
    ),
    (
        "upgrade-and-uninstall",
        &["readme::the_node_walkthrough_installs_the_chart_that_syncs_the_demo_watch"],
    ),
];

/// The source of the test module `module` (`readme` is tests/integration/readme/mod.rs).
fn test_module_source(module: &str) -> String {
    let dir = support::repo_root().join("tests/integration");
    let candidates = [
        dir.join(format!("{module}.rs")),
        dir.join(module).join("mod.rs"),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| panic!("no test module {module}"))
}

/// Every shell block of the README is named and run by a test: the test exists and reads the
/// block by its name (or, for the helm-install-* blocks, by that prefix).
#[test]
fn every_readme_command_block_is_run_by_a_test() {
    let readme = read("README.md");
    let shell: Vec<markdown::Block> = markdown::blocks(&readme)
        .into_iter()
        .filter(|b| b.lang == "bash" || b.lang == "sh")
        .collect();
    let mut names = Vec::new();
    for block in &shell {
        let name = block.name.as_deref().unwrap_or_else(|| {
            panic!(
                "a shell block has no `<!-- command-block: NAME -->` line above it:\n{}",
                block.body
            )
        });
        names.push(name);
    }
    let listed: Vec<&str> = README_BLOCKS_RUN_BY.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, listed,
        "README_BLOCKS_RUN_BY lists the README's blocks in order"
    );
    for (name, tests) in README_BLOCKS_RUN_BY {
        for test in *tests {
            let (module, function) = test.split_once("::").expect("module::test");
            let source = test_module_source(module);
            assert!(
                source.contains(&format!("fn {function}(")),
                "{test}, which runs {name}, is not a test"
            );
            let prefix = name
                .rsplit_once('-')
                .map(|(p, _)| format!("\"{p}-\""))
                .unwrap_or_default();
            assert!(
                source.contains(&format!("\"{name}\""))
                    || (!prefix.is_empty() && source.contains(&prefix)),
                "{test} does not read the block {name}"
            );
        }
    }
}
