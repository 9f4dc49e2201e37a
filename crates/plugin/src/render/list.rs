//! `list`: a row per watch (its counts, latest job, Ready and age), without I/O.

use jiff::Timestamp;
use kube::ResourceExt;
use personalize_watch_api::crd::SolutionVersionWatch;

use super::{Table, age};

/// Which columns: NAMESPACE first with -A; wide adds the last sync and what the watch names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    pub namespace: bool,
    pub wide: bool,
}

/// The table of `watches`, as `kubectl personalize-watch list` prints it.
pub fn render(
    watches: &[SolutionVersionWatch],
    now: Timestamp,
    table: Table,
    columns: Columns,
) -> String {
    if watches.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = watches.iter().map(|w| row(w, now, columns)).collect();
    table.columns(&header(columns), &rows)
}

/// What `list` says when there is nothing to show, as kubectl says it.
pub fn nothing_found(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".to_string(),
    }
}

fn header(columns: Columns) -> Vec<&'static str> {
    let mut header = Vec::new();
    if columns.namespace {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME", "READY", "TOTAL", "ACTIVE", "FAILED", "PENDING", "RUNNING", "STUCK", "LATEST",
        "AGE",
    ]);
    if columns.wide {
        header.extend(["LAST SYNC", "WATCHES"]);
    }
    header
}

fn row(watch: &SolutionVersionWatch, now: Timestamp, columns: Columns) -> Vec<String> {
    let mut row = Vec::new();
    if columns.namespace {
        row.push(watch.namespace().unwrap_or_default());
    }
    row.push(watch.name_any());
    let status = watch.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str());
    row.push(ready.to_string());
    let counts = status.and_then(|s| s.counts.as_ref());
    for count in [
        counts.map(|c| c.total),
        counts.map(|c| c.active),
        counts.map(|c| c.failed),
        counts.map(|c| c.pending),
        counts.map(|c| c.in_progress),
        counts.map(|c| c.stuck),
    ] {
        row.push(count.map_or("-".into(), |n| n.to_string()));
    }
    let latest = status.and_then(|s| s.latest_job.as_ref());
    row.push(latest.map_or("<none>".into(), |j| format!("{} ({})", j.name, j.status)));
    let created = watch.metadata.creation_timestamp.as_ref();
    row.push(created.map_or("<unknown>".into(), |t| age(now, t.0)));
    if columns.wide {
        let synced = status.and_then(|s| s.last_sync_time.as_ref());
        let stale = status.is_some_and(|s| s.stale);
        row.push(match synced {
            Some(t) if stale => format!("{} ago (stale)", age(now, t.0)),
            Some(t) => format!("{} ago", age(now, t.0)),
            None => "<never>".into(),
        });
        row.push(watch.spec.watched_arn().to_string());
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use personalize_watch_api::crd::{
        JobCounts, LatestJob, SolutionVersionWatchSpec, SolutionVersionWatchStatus,
    };

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn watch(ns: &str, name: &str, synced: bool) -> SolutionVersionWatch {
        let mut w = SolutionVersionWatch::new(
            name,
            SolutionVersionWatchSpec::watching(
                "arn:aws:personalize:us-east-1:123456789012:solution/s/v",
            ),
        );
        w.metadata.namespace = Some(ns.into());
        w.metadata.creation_timestamp = Some(Time(at(0)));
        if synced {
            w.status = Some(SolutionVersionWatchStatus {
                counts: Some(JobCounts {
                    total: 12,
                    active: 9,
                    failed: 2,
                    pending: 1,
                    ..Default::default()
                }),
                latest_job: Some(LatestJob {
                    name: "nightly-12".into(),
                    status: "ACTIVE".into(),
                    creation_time: None,
                }),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: "Synced".into(),
                    message: String::new(),
                    last_transition_time: Time(at(0)),
                    observed_generation: None,
                }],
                last_sync_time: Some(Time(at(3_000))),
                stale: true,
                ..Default::default()
            });
        }
        w
    }

    #[test]
    fn a_row_per_watch_with_counts_latest_ready_and_age() {
        let watches = [
            watch("team-a", "nightly", true),
            watch("team-b", "new", false),
        ];
        let text = render(
            &watches,
            at(3_600),
            Table::default(),
            Columns {
                namespace: true,
                wide: false,
            },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAMESPACE   NAME      READY     TOTAL   ACTIVE   FAILED   PENDING   RUNNING   STUCK   LATEST                AGE"
        );
        assert_eq!(
            lines[1],
            "team-a      nightly   True      12      9        2        1         0         0       nightly-12 (ACTIVE)   60m"
        );
        assert_eq!(
            lines[2],
            "team-b      new       Unknown   -       -        -        -         -         -       <none>                60m"
        );
    }

    #[test]
    fn wide_adds_the_last_sync_and_the_arn_and_no_headers_drops_the_header() {
        let watches = [watch("team-a", "nightly", true)];
        let table = Table {
            headers: false,
            ..Table::default()
        };
        let text = render(
            &watches,
            at(3_600),
            table,
            Columns {
                namespace: false,
                wide: true,
            },
        );
        assert!(text.starts_with("nightly"), "{text}");
        assert!(
            text.contains(
                "10m ago (stale)   arn:aws:personalize:us-east-1:123456789012:solution/s/v"
            ),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn nothing_found_reads_like_kubectl() {
        assert_eq!(
            nothing_found(Some("team-a")),
            "No resources found in team-a namespace."
        );
        assert_eq!(nothing_found(None), "No resources found");
        assert_eq!(render(&[], at(0), Table::default(), Columns::default()), "");
    }
}
