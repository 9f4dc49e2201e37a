//! `jobs NAME`: the job table, the summary under it and the conditions, without I/O.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use personalize_watch_api::crd::{JobSummary, SolutionVersionWatch};
use personalize_watch_api::describe::{describe_counts, human_duration};

use super::{Table, age};

/// The table, the counts and the conditions, as `kubectl personalize-watch jobs` prints them.
/// `table.width`: cut the last column (failure reason, message) to fit it.
pub fn render(watch: &SolutionVersionWatch, now: Timestamp, table: Table, wide: bool) -> String {
    let Some(status) = watch.status.as_ref() else {
        return format!(
            "{} has no status yet: is the operator running, and does its policy allow this namespace?\n",
            watch.name_any()
        );
    };
    let mut out = String::new();
    if status.jobs.is_empty() {
        out.push_str("No jobs in status.jobs");
        if watch.spec.max_jobs_in_status == 0 {
            out.push_str(" (spec.maxJobsInStatus is 0)");
        }
        out.push_str(".\n");
    } else {
        let versions = watch.spec.solution_arn.is_some();
        let rows: Vec<Vec<String>> = status
            .jobs
            .iter()
            .map(|j| job_row(j, now, wide, versions))
            .collect();
        out.push_str(&table.columns(&job_header(wide, versions), &rows));
    }
    out.push('\n');
    out.push_str(&summary(watch, now));
    out.push('\n');
    let rows: Vec<Vec<String>> = status
        .conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect();
    out.push_str(&table.columns(&["CONDITION", "STATUS", "REASON", "MESSAGE"], &rows));
    out
}

/// `versions`: a solution watch's jobs say which version they ran against.
fn job_header(wide: bool, versions: bool) -> Vec<&'static str> {
    let mut header = vec!["NAME"];
    if versions {
        header.push("VERSION");
    }
    header.extend(["STATUS", "MODE", "CREATED", "DURATION"]);
    if wide {
        header.extend(["UPDATED", "ARN"]);
    }
    header.push("FAILURE REASON");
    header
}

fn job_row(job: &JobSummary, now: Timestamp, wide: bool, versions: bool) -> Vec<String> {
    let age = |t: &Option<Time>| t.as_ref().map_or("<unknown>".into(), |t| age(now, t.0));
    let mut row = vec![job.name.clone()];
    if versions {
        // The version's id: the last part of its ARN.
        let version = job
            .solution_version_arn
            .as_deref()
            .and_then(|a| a.rsplit('/').next());
        row.push(version.unwrap_or("<none>").to_string());
    }
    row.extend([
        job.status.clone(),
        job.mode.clone().unwrap_or_else(|| "<none>".into()),
        age(&job.creation_time),
        job.duration_seconds
            .map_or("-".into(), |s| human_duration(SignedDuration::from_secs(s))),
    ]);
    if wide {
        row.push(age(&job.last_updated_time));
        row.push(job.arn.clone());
    }
    let reason = job.failure_reason.as_deref().unwrap_or("");
    // One line per job: a reason's own line breaks would break the table.
    row.push(reason.split_whitespace().collect::<Vec<_>>().join(" "));
    row
}

/// Counts, truncation, the latest job and when it was listed.
fn summary(watch: &SolutionVersionWatch, now: Timestamp) -> String {
    let Some(status) = watch.status.as_ref() else {
        return String::new();
    };
    let mut out = String::new();
    if let Some(counts) = &status.counts {
        out.push_str(&format!("Counts:    {}", describe_counts(counts)));
        if counts.stuck > 0 {
            out.push_str(&format!("; {} stuck", counts.stuck));
        }
        out.push('\n');
        let shown = status.jobs.len() as i64;
        if status.jobs_truncated && counts.total > shown {
            out.push_str(&format!(
                "Shown:     the newest {shown} of {} (spec.maxJobsInStatus)\n",
                counts.total
            ));
        }
    }
    if let (Some(total), Some(newest)) = (status.versions_total, status.versions.first()) {
        let id = newest
            .solution_version_arn
            .rsplit('/')
            .next()
            .unwrap_or_default();
        out.push_str(&format!(
            "Versions:  {total} with jobs; the newest, {id}: {}\n",
            describe_counts(&newest.counts)
        ));
    }
    if let Some(latest) = &status.latest_job {
        let created = latest.creation_time.as_ref().map_or(String::new(), |t| {
            format!(", created {} ago", age(now, t.0))
        });
        out.push_str(&format!(
            "Latest:    {} ({}{created})\n",
            latest.name, latest.status
        ));
    }
    if let Some(synced) = &status.last_sync_time {
        let stale = if status.stale {
            " (stale: the last poll failed)"
        } else {
            ""
        };
        out.push_str(&format!("Last sync: {} ago{stale}\n", age(now, synced.0)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use personalize_watch_api::crd::{
        JobCounts, SolutionVersionWatchSpec, SolutionVersionWatchStatus, VersionCounts,
    };

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn watch(jobs: usize) -> SolutionVersionWatch {
        let mut w = SolutionVersionWatch::new(
            "nightly",
            SolutionVersionWatchSpec {
                max_jobs_in_status: 2,
                ..SolutionVersionWatchSpec::watching(
                    "arn:aws:personalize:us-east-1:123456789012:solution/s/v",
                )
            },
        );
        let summaries = (0..jobs)
            .map(|i| JobSummary {
                name: format!("job-{i}"),
                arn: format!("arn:job-{i}"),
                status: if i == 0 { "CREATE FAILED" } else { "ACTIVE" }.into(),
                mode: Some("BATCH_INFERENCE".into()),
                creation_time: Some(Time(at(1_000 - 100 * i as i64))),
                last_updated_time: Some(Time(at(1_050))),
                failure_reason: (i == 0)
                    .then(|| "AccessDenied:\nthe role cannot read the bucket".repeat(3)),
                duration_seconds: Some(3_725),
                ..Default::default()
            })
            .collect();
        w.status = Some(SolutionVersionWatchStatus {
            counts: Some(JobCounts {
                total: 5,
                active: 4,
                failed: 1,
                ..Default::default()
            }),
            jobs: summaries,
            jobs_truncated: true,
            ..Default::default()
        });
        w
    }

    #[test]
    fn the_table_has_a_row_per_job_and_cuts_the_reason_to_the_width() {
        let text = render(&watch(2), at(1_100), Table::fit(80), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[0].ends_with("FAILURE REASON"), "{text}");
        assert!(
            lines[1].starts_with(
                "job-0   CREATE FAILED   BATCH_INFERENCE   100s      1h2m5s     AccessDenied:"
            ),
            "{text}"
        );
        assert!(lines[1].ends_with("..."), "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
        assert!(
            text.contains("Counts:    5 jobs: 4 active, 1 failed"),
            "{text}"
        );
        assert!(
            text.contains("the newest 2 of 5 (spec.maxJobsInStatus)"),
            "{text}"
        );
    }

    #[test]
    fn a_solution_watch_shows_each_job_s_version_and_the_newest_version() {
        let solution = "arn:aws:personalize:us-east-1:123456789012:solution/s";
        let mut w = watch(2);
        w.spec = SolutionVersionWatchSpec::watching_solution(solution);
        let status = w.status.as_mut().unwrap();
        for (job, id) in status.jobs.iter_mut().zip(["week52", "week51"]) {
            job.solution_version_arn = Some(format!("{solution}/{id}"));
        }
        status.versions_total = Some(2);
        status.versions = vec![VersionCounts {
            solution_version_arn: format!("{solution}/week52"),
            counts: JobCounts {
                total: 1,
                failed: 1,
                ..Default::default()
            },
        }];
        let text = render(&w, at(1_100), Table::default(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME    VERSION   STATUS"), "{text}");
        assert!(
            lines[1].starts_with("job-0   week52    CREATE FAILED"),
            "{text}"
        );
        assert!(lines[2].starts_with("job-1   week51    ACTIVE"), "{text}");
        assert!(
            text.contains("Versions:  2 with jobs; the newest, week52: 1 jobs: 0 active, 1 failed"),
            "{text}"
        );
        let version_watch = render(&watch(2), at(1_100), Table::default(), false);
        assert!(!version_watch.contains("VERSION"), "{version_watch}");
    }

    #[test]
    fn wide_adds_the_arn_and_no_width_cuts_nothing() {
        let text = render(&watch(2), at(1_100), Table::default(), true);
        assert!(
            text.lines().next().unwrap().contains("UPDATED   ARN"),
            "{text}"
        );
        assert!(text.contains("arn:job-1"), "{text}");
        assert!(!text.contains("..."), "{text}");
    }

    #[test]
    fn no_headers_leaves_out_the_header_lines() {
        let table = Table {
            headers: false,
            ..Table::default()
        };
        let text = render(&watch(2), at(1_100), table, false);
        assert!(text.starts_with("job-0"), "{text}");
        assert!(
            !text.contains("NAME") && !text.contains("CONDITION"),
            "{text}"
        );
    }
}
