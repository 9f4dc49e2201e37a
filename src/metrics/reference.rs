//! docs/metrics.md, generated from the registry: every series with its type, labels and help,
//! read back from the text exposition of a registry in which every series has a sample. The
//! test fails when the file differs; `PW_WRITE_DOCS=1` rewrites it.

use std::collections::BTreeSet;

use super::{Metrics, WatchLabels, WatchView};
use crate::crd::JobCounts;
use crate::reasons::Reason;

/// One metric family as the exposition shows it.
#[derive(Debug, PartialEq)]
struct Family {
    /// The name a query uses (counters end in `_total`).
    name: String,
    kind: String,
    labels: BTreeSet<String>,
    help: String,
}

/// A registry in which every series has at least one sample.
fn every_series_sampled() -> Metrics {
    let metrics = Metrics::new();
    metrics.reconcile_started();
    metrics.reconcile_finished(0.2, Some(Reason::Throttled));
    metrics.personalize_request("ListBatchInferenceJobs", Reason::Throttled.as_str());
    metrics.status_written();
    metrics.status_conflict();
    metrics.event_published("BatchInferenceJobFailed");
    metrics.event_refused("Forbidden");
    metrics.job_finished("failed", 600.0);
    metrics.listing_omitted(1);
    metrics.listed("shared");
    metrics.set_leader(true);
    metrics.set_watches(1);
    let counts = JobCounts {
        total: 1,
        failed: 1,
        stuck: 1,
        ..Default::default()
    };
    let watch = WatchLabels {
        namespace: "team-a".into(),
        name: "movie-recs".into(),
    };
    metrics.record_watch(
        &watch,
        &WatchView {
            uid: "uid-1",
            counts: Some(&counts),
            last_sync: Some(100.0),
            suspended: false,
            pending_events: 1,
            newest_job: Some(50.0),
            expect_new_job_within: Some(86_400.0),
        },
    );
    metrics
}

/// The families of a text exposition, in its order.
fn families(exposition: &str) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    let mut help = String::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest
                .split_once(' ')
                .map(|(_, h)| h)
                .unwrap_or_default()
                .into();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            };
            out.push(Family {
                name,
                kind: kind.into(),
                labels: BTreeSet::new(),
                help: std::mem::take(&mut help),
            });
        } else if let (Some(family), Some((_, labels))) = (out.last_mut(), line.split_once('{')) {
            let labels = labels.split_once('}').map_or("", |(l, _)| l);
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let label = pair.split_once('=').map_or(pair, |(k, _)| k);
                if label != "le" {
                    family.labels.insert(label.to_string());
                }
            }
        }
    }
    out
}

fn render(families: &[Family]) -> String {
    let mut doc = String::from(
        "# Metrics\n\n\
         Served on the admin port at `/metrics` (`--admin-addr`, 8080 by default) in the Prometheus\n\
         text format. Generated from the code: `metrics::reference::tests::docs_metrics_md_is_current`\n\
         fails when this file is behind it, and `PW_WRITE_DOCS=1 cargo test -p personalize-watch --lib\n\
         -- metrics::reference` writes it again.\n\n\
         Per-watch series carry the watch's `namespace` and `name`. Scraped through a ServiceMonitor\n\
         or PodMonitor, keep those labels with `honorLabels: true` (the chart's ServiceMonitor sets\n\
         it): otherwise Prometheus renames `namespace` to `exported_namespace` and puts the\n\
         operator's own namespace in its place. Per-watch series change only after a successful\n\
         status write, go with their watch, and are exported by the leader only.\n\n\
         | metric | type | labels | help |\n|---|---|---|---|\n",
    );
    for f in families {
        let labels = if f.labels.is_empty() {
            String::from("none")
        } else {
            f.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        doc.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.name, f.kind, labels, f.help
        ));
    }
    doc
}

/// docs/metrics.md as the code says it should read.
pub fn document() -> String {
    render(&families(&every_series_sampled().encode(200.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_metrics_md_is_current() {
        personalize_watch_testkit::assert_generated(
            "docs/metrics.md",
            &document(),
            "cargo test -p personalize-watch --lib -- metrics::reference",
        );
    }

    #[test]
    fn every_registered_series_is_in_the_reference_with_its_labels() {
        let found = families(&every_series_sampled().encode(200.0));
        assert_eq!(found.len(), 21, "{found:#?}");
        let listings = found
            .iter()
            .find(|f| f.name == "personalize_watch_listings_total")
            .unwrap();
        assert_eq!(listings.labels, BTreeSet::from(["plan".to_string()]));
        let jobs = found
            .iter()
            .find(|f| f.name == "personalize_watch_jobs")
            .unwrap();
        assert_eq!(jobs.kind, "gauge");
        assert_eq!(
            jobs.labels,
            BTreeSet::from(["name".into(), "namespace".into(), "state".into()])
        );
        let durations = found
            .iter()
            .find(|f| f.name == "personalize_watch_job_duration_seconds")
            .unwrap();
        assert_eq!(durations.labels, BTreeSet::from(["outcome".to_string()]));
        assert!(found.iter().all(|f| !f.help.is_empty()), "{found:#?}");
    }
}
