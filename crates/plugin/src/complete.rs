//! Shell completion through kubectl: kubectl (1.26 and later) runs the
//! `kubectl_complete-personalize_watch` script with the words after the plugin's name, which runs
//! `kubectl-personalize_watch __complete WORDS`; the answer is Cobra's protocol, kubectl's own:
//! a candidate a line, then `:DIRECTIVE`.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::config::Kubeconfig;
use kube::{Api, Resource};
use personalize_watch_api::crd::SolutionVersionWatch;
use serde::de::DeserializeOwned;

use crate::cli::Target;
use crate::client::connect;

/// Cobra's directives: no file names (4), or the shell's default, file names (0).
const NO_FILES: u8 = 4;
const FILES: u8 = 0;

/// What the word being completed can be.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Words(&'static [&'static str]),
    Watches(Target),
    Namespaces(Target),
    Contexts,
    Files,
    Nothing,
}

const COMMANDS: &[&str] = &["jobs", "list"];
const FORMATS: &[&str] = &["json", "wide", "yaml"];
const COMMON_FLAGS: &[&str] = &[
    "--context",
    "--kubeconfig",
    "--namespace",
    "--no-headers",
    "--output",
    "--help",
];
const LIST_FLAGS: &[&str] = &[
    "--all-namespaces",
    "--selector",
    "--context",
    "--kubeconfig",
    "--namespace",
    "--no-headers",
    "--output",
    "--help",
];
const TOP_FLAGS: &[&str] = &["--help", "--version"];
/// Flags followed by a value.
const VALUED: &[&str] = &[
    "-n",
    "--namespace",
    "--context",
    "--kubeconfig",
    "-o",
    "--output",
    "-l",
    "--selector",
];

/// Decides from the words alone (the last one is being completed).
pub fn wanted(words: &[String]) -> Wanted {
    let Some((partial, done)) = words.split_last() else {
        return Wanted::Words(COMMANDS);
    };
    let target = target(done);
    match done.last().map(String::as_str) {
        Some("-o" | "--output") => return Wanted::Words(FORMATS),
        Some("-n" | "--namespace") => return Wanted::Namespaces(target),
        Some("--context") => return Wanted::Contexts,
        Some("--kubeconfig") => return Wanted::Files,
        Some("-l" | "--selector") => return Wanted::Nothing,
        _ => {}
    }
    let positionals = positionals(done);
    let command = positionals.first().map(String::as_str);
    if partial.starts_with('-') {
        return Wanted::Words(match command {
            None => TOP_FLAGS,
            Some("list") => LIST_FLAGS,
            Some(_) => COMMON_FLAGS,
        });
    }
    match (command, positionals.len()) {
        (None, _) => Wanted::Words(COMMANDS),
        (Some("jobs"), 1) => Wanted::Watches(target),
        _ => Wanted::Nothing,
    }
}

/// The words that are neither flags nor their values.
fn positionals(done: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for word in done {
        if std::mem::take(&mut skip) {
            continue;
        }
        if VALUED.contains(&word.as_str()) {
            skip = true;
        } else if !word.starts_with('-') {
            out.push(word.clone());
        }
    }
    out
}

/// The cluster flags given so far (`-n NS`, `--namespace=NS`, `--context`, `--kubeconfig`).
fn target(done: &[String]) -> Target {
    let mut target = Target::default();
    let mut words = done.iter().peekable();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (word.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| words.peek().map(|v| v.to_string()))
        };
        match flag {
            "-n" | "--namespace" => target.namespace = value(),
            "--context" => target.context = value(),
            "--kubeconfig" => target.kubeconfig = value().map(Into::into),
            _ => {}
        }
    }
    target
}

/// The answer kubectl prints: the candidates starting with the partial word, and the directive.
pub async fn answer(words: &[String]) -> String {
    let partial = words.last().map_or("", String::as_str);
    let (candidates, directive) = match wanted(words) {
        Wanted::Words(words) => (words.iter().map(|w| w.to_string()).collect(), NO_FILES),
        Wanted::Watches(target) => (watch_names(&target).await, NO_FILES),
        Wanted::Namespaces(target) => (namespace_names(&target).await, NO_FILES),
        Wanted::Contexts => (context_names(), NO_FILES),
        Wanted::Files => (Vec::new(), FILES),
        Wanted::Nothing => (Vec::new(), NO_FILES),
    };
    let mut out = String::new();
    for candidate in candidates.iter().filter(|c| c.starts_with(partial)) {
        out.push_str(candidate);
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

// Completion offers what it can read; an error (no cluster, no permission) offers nothing.
async fn watch_names(target: &Target) -> Vec<String> {
    match connect(target).await {
        Ok((client, namespace)) => {
            names(Api::<SolutionVersionWatch>::namespaced(client, &namespace)).await
        }
        Err(_) => Vec::new(),
    }
}

async fn namespace_names(target: &Target) -> Vec<String> {
    match connect(target).await {
        Ok((client, _)) => names(Api::<Namespace>::all(client)).await,
        Err(_) => Vec::new(),
    }
}

async fn names<K>(api: Api<K>) -> Vec<String>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let list = api.list_metadata(&ListParams::default()).await;
    list.map(|l| {
        l.items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()
    })
    .unwrap_or_default()
}

fn context_names() -> Vec<String> {
    Kubeconfig::read()
        .map(|k| k.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(String::from).collect();
        if line.is_empty() {
            words = vec![String::new()];
        }
        words
    }

    #[test]
    fn commands_first_then_their_flags_and_values() {
        assert_eq!(wanted(&words("")), Wanted::Words(COMMANDS));
        assert_eq!(wanted(&words("j")), Wanted::Words(COMMANDS));
        assert_eq!(wanted(&words("--")), Wanted::Words(TOP_FLAGS));
        assert_eq!(wanted(&words("list --")), Wanted::Words(LIST_FLAGS));
        assert_eq!(wanted(&words("jobs --n")), Wanted::Words(COMMON_FLAGS));
        assert_eq!(wanted(&words("list -o ")), Wanted::Words(FORMATS));
        assert_eq!(wanted(&words("list --context ")), Wanted::Contexts);
        assert_eq!(wanted(&words("jobs --kubeconfig ")), Wanted::Files);
        assert_eq!(wanted(&words("list -l ")), Wanted::Nothing);
    }

    #[test]
    fn a_watch_name_once_in_the_namespace_the_words_name() {
        let want = Target {
            namespace: Some("team-a".into()),
            ..Target::default()
        };
        assert_eq!(
            wanted(&words("jobs -n team-a ")),
            Wanted::Watches(want.clone())
        );
        assert_eq!(
            wanted(&words("-n team-a jobs ni")),
            Wanted::Watches(want.clone())
        );
        assert_eq!(
            wanted(&words("jobs --namespace=team-a ")),
            Wanted::Watches(want)
        );
        assert_eq!(wanted(&words("jobs nightly ")), Wanted::Nothing);
        assert_eq!(wanted(&words("list ")), Wanted::Nothing);
    }

    #[tokio::test]
    async fn the_answer_filters_by_the_partial_word_and_ends_with_the_directive() {
        assert_eq!(answer(&words("l")).await, "list\n:4\n");
        assert_eq!(answer(&words("jobs -o y")).await, "yaml\n:4\n");
        assert_eq!(answer(&words("jobs --kubeconfig ")).await, ":0\n");
    }
}
