//! personalize-watch: a Kubernetes operator that watches AWS Personalize batch inference jobs.
//!
//! How data flows, a watch event to status and Events: [`controller`] watches the
//! SolutionVersionWatches and calls [`reconcile`] for each change and each due poll; reconcile
//! waits for its namespace's turn ([`flow`]), validates the spec, authorizes it ([`access`]),
//! lists the jobs through [`personalize`], decides the next status in [`status`] (pure, with the
//! [`events`] to announce), publishes those Events and then writes the status, and schedules the
//! next poll. [`process`] starts it all. CONTRIBUTING.md has the same tour with the module of
//! each step, and a table of every module.

pub mod access;
/// The resource's types live in their own crate, which the kubectl plugin shares.
pub use personalize_watch_api::crd;
pub mod controller;
pub mod error;
pub mod events;
pub mod flow;
pub mod metrics;
pub mod personalize;
pub mod process;
pub mod reasons;
pub mod reconcile;
pub mod status;
pub mod text;

/// Installs aws-lc-rs as rustls' process-wide crypto provider. kube and the AWS SDK both use
/// rustls; with no provider chosen the first TLS client panics. Call before any client is made.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is what we want.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        tracing::trace!("a rustls crypto provider was installed already");
    }
}

#[cfg(test)]
mod layout {
    #[cfg(test)]
    mod tests {
        use std::path::Path;

        /// Every file under `src/`, relative to the crate (`src/a/b.rs`).
        fn sources(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, root, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let relative = path.strip_prefix(root).unwrap();
                    out.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }

        /// The layout table's rows, as (path cell, row).
        fn rows(contributing: &str) -> Vec<(String, String)> {
            contributing
                .lines()
                .filter(|l| l.starts_with("| `"))
                .map(|l| {
                    let cell = l.split('|').nth(1).unwrap_or_default().to_string();
                    (cell, l.to_string())
                })
                .collect()
        }

        #[test]
        fn contributing_names_every_module() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let contributing = std::fs::read_to_string(root.join("CONTRIBUTING.md")).unwrap();
            let rows = rows(&contributing);
            let mut files = Vec::new();
            sources(&root.join("src"), root, &mut files);
            let missing: Vec<&String> = files
                .iter()
                .filter(|file| {
                    let (dir, name) = file.rsplit_once('/').unwrap();
                    let named_alone = rows
                        .iter()
                        .any(|(cell, _)| cell.contains(&format!("`{file}`")));
                    // A folder's row names its files by their names.
                    let named_in_folder = rows.iter().any(|(cell, row)| {
                        cell.contains(&format!("`{dir}/`"))
                            && (name == "mod.rs" || row.contains(&format!("`{name}`")))
                    });
                    !named_alone && !named_in_folder
                })
                .collect();
            assert!(
                missing.is_empty(),
                "CONTRIBUTING.md's layout table does not name: {missing:?}"
            );
        }
    }
}
