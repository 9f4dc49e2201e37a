//! The emulator's state: jobs in insertion order, indexed by ARN and by solution version.
//!
//! Listing order is insertion order (the order jobs were first loaded or created), and a job keeps
//! its place when it changes state. A page token records the position after the last job it
//! returned, so a paginated listing neither skips nor repeats a job that existed for the whole
//! listing, whatever is added or changed meanwhile; jobs added during a listing appear at its end.

use std::collections::HashMap;

use super::model::{EpochMillis, Job, SolutionVersion, StateFile, arn_prefix};

#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Jobs by position; the position is the job's place in every listing.
    jobs: Vec<Job>,
    by_arn: HashMap<String, usize>,
    /// Positions of each solution version's jobs, ascending.
    by_solution_version: HashMap<String, Vec<usize>>,
    solution_versions: Vec<SolutionVersion>,
    solution_version_by_arn: HashMap<String, usize>,
}

/// One page of a listing: the items and the position to go on from, if more remain.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_start: Option<u64>,
}

impl Store {
    pub fn from_state(state: StateFile) -> Result<Self, String> {
        let mut store = Store::default();
        for sv in state.solution_versions {
            store.upsert_solution_version(sv);
        }
        for job in state.batch_inference_jobs {
            store.upsert_job(job)?;
        }
        Ok(store)
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    pub fn job(&self, arn: &str) -> Option<&Job> {
        self.by_arn.get(arn).map(|&i| &self.jobs[i])
    }

    pub fn solution_version(&self, arn: &str) -> Option<&SolutionVersion> {
        self.solution_version_by_arn
            .get(arn)
            .map(|&i| &self.solution_versions[i])
    }

    pub fn upsert_solution_version(&mut self, sv: SolutionVersion) {
        match self.solution_version_by_arn.get(&sv.solution_version_arn) {
            Some(&i) => self.solution_versions[i] = sv,
            None => {
                self.solution_version_by_arn.insert(
                    sv.solution_version_arn.clone(),
                    self.solution_versions.len(),
                );
                self.solution_versions.push(sv);
            }
        }
    }

    /// Inserts a job or overlays the given members onto the job with the same ARN.
    /// A new job needs `batchInferenceJobArn`, or `jobName` and `solutionVersionArn` to derive it.
    pub fn upsert_job(&mut self, patch: Job) -> Result<&Job, String> {
        let now = EpochMillis::now();
        let arn = match (
            &patch.batch_inference_job_arn,
            &patch.job_name,
            &patch.solution_version_arn,
        ) {
            (Some(arn), _, _) => arn.clone(),
            (None, Some(name), Some(sv)) => {
                let prefix = arn_prefix(sv)
                    .ok_or_else(|| format!("solutionVersionArn {sv:?} is not an ARN"))?;
                format!("{prefix}batch-inference-job/{name}")
            }
            _ => {
                return Err(
                    "a job needs batchInferenceJobArn, or jobName and solutionVersionArn".into(),
                );
            }
        };
        if let Some(&i) = self.by_arn.get(&arn) {
            let job = &mut self.jobs[i];
            if let Some(sv) = &patch.solution_version_arn
                && job.solution_version_arn.as_ref() != Some(sv)
            {
                return Err(format!("job {arn} belongs to another solution version"));
            }
            let touched = patch.last_updated_date_time.is_none();
            job.merge(patch);
            if touched {
                job.last_updated_date_time = Some(now);
            }
            return Ok(&self.jobs[i]);
        }
        let mut job = patch;
        let Some(sv) = job.solution_version_arn.clone() else {
            return Err(format!("new job {arn} needs solutionVersionArn"));
        };
        job.batch_inference_job_arn = Some(arn.clone());
        if job.job_name.is_none() {
            job.job_name = arn.rsplit('/').next().map(str::to_string);
        }
        job.status.get_or_insert_with(|| "PENDING".into());
        let created = *job.creation_date_time.get_or_insert(now);
        job.last_updated_date_time.get_or_insert(created);
        job.batch_inference_job_mode
            .get_or_insert_with(|| "BATCH_INFERENCE".into());
        if !self.solution_version_by_arn.contains_key(&sv) {
            self.upsert_solution_version(SolutionVersion::implied(&sv, created));
        }
        let position = self.jobs.len();
        self.by_arn.insert(arn, position);
        self.by_solution_version
            .entry(sv)
            .or_default()
            .push(position);
        self.jobs.push(job);
        Ok(&self.jobs[position])
    }

    /// Adds `count` jobs named `PREFIX-N` (N counting on from the names already taken), created one
    /// second apart ending now, all in `status`.
    pub fn generate(
        &mut self,
        solution_version_arn: &str,
        count: usize,
        status: &str,
        name_prefix: &str,
    ) -> Result<Vec<String>, String> {
        let prefix = arn_prefix(solution_version_arn)
            .ok_or_else(|| format!("solutionVersionArn {solution_version_arn:?} is not an ARN"))?
            .to_string();
        let now = EpochMillis::now();
        let mut arns = Vec::with_capacity(count);
        let mut n = 0usize;
        for i in 0..count {
            let arn = loop {
                n += 1;
                let candidate = format!("{prefix}batch-inference-job/{name_prefix}-{n}");
                if !self.by_arn.contains_key(&candidate) {
                    break candidate;
                }
            };
            let created = EpochMillis(now.0 - ((count - i) as i64) * 1000);
            let failure_reason =
                (status == "CREATE FAILED").then(|| "Generated failure".to_string());
            self.upsert_job(Job {
                batch_inference_job_arn: Some(arn.clone()),
                job_name: Some(format!("{name_prefix}-{n}")),
                status: Some(status.to_string()),
                creation_date_time: Some(created),
                last_updated_date_time: Some(created),
                failure_reason,
                solution_version_arn: Some(solution_version_arn.to_string()),
                batch_inference_job_mode: Some("BATCH_INFERENCE".into()),
                ..Default::default()
            })?;
            arns.push(arn);
        }
        Ok(arns)
    }

    /// Up to `limit` jobs from position `start` on, of one solution version or of all.
    pub fn list_jobs(
        &self,
        solution_version_arn: Option<&str>,
        start: u64,
        limit: usize,
    ) -> Page<&Job> {
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let positions: Box<dyn Iterator<Item = usize>> = match solution_version_arn {
            Some(sv) => {
                let positions = self
                    .by_solution_version
                    .get(sv)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let from = positions.partition_point(|&p| p < start);
                Box::new(positions[from..].iter().copied())
            }
            None => Box::new(start.min(self.jobs.len())..self.jobs.len()),
        };
        paginate(positions, limit, |p| &self.jobs[p])
    }

    /// Up to `limit` solution versions from position `start` on, of one solution or of all.
    pub fn list_solution_versions(
        &self,
        solution_arn: Option<&str>,
        start: u64,
        limit: usize,
    ) -> Page<&SolutionVersion> {
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let positions = (start.min(self.solution_versions.len())..self.solution_versions.len())
            .filter(|&p| {
                solution_arn.is_none()
                    || self.solution_versions[p].solution_arn.as_deref() == solution_arn
            });
        paginate(positions, limit, |p| &self.solution_versions[p])
    }
}

fn paginate<'a, T>(
    mut positions: impl Iterator<Item = usize>,
    limit: usize,
    get: impl Fn(usize) -> &'a T,
) -> Page<&'a T> {
    let mut items = Vec::with_capacity(limit.min(100));
    let mut last = None;
    for p in positions.by_ref().take(limit) {
        items.push(get(p));
        last = Some(p);
    }
    let more = positions.next().is_some();
    Page {
        items,
        next_start: last.filter(|_| more).map(|p| p as u64 + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/sol/v1";

    #[test]
    fn pages_cover_every_job_once_while_jobs_change_and_arrive() {
        let mut store = Store::default();
        store.generate(SV, 250, "PENDING", "job").unwrap();
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let page = store.list_jobs(Some(SV), start, 100);
            let arns: Vec<String> = page
                .items
                .iter()
                .map(|j| j.batch_inference_job_arn.clone().unwrap())
                .collect();
            let resume = page.next_start;
            seen.extend(arns.clone());
            // Between pages: the first job of the page fails, and a new job arrives.
            store
                .upsert_job(Job {
                    batch_inference_job_arn: Some(arns[0].clone()),
                    status: Some("CREATE FAILED".into()),
                    ..Default::default()
                })
                .unwrap();
            store.generate(SV, 1, "PENDING", "late").unwrap();
            match resume {
                Some(r) => start = r,
                None => break,
            }
        }
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no job repeated");
        for i in 1..=250 {
            assert!(
                seen.iter().any(|a| a.ends_with(&format!("/job-{i}"))),
                "job-{i} listed"
            );
        }
    }

    #[test]
    fn upsert_merges_and_keeps_position() {
        let mut store = Store::default();
        store.generate(SV, 3, "IN PROGRESS", "job").unwrap();
        let arn =
            "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/job-2".to_string();
        store
            .upsert_job(Job {
                batch_inference_job_arn: Some(arn.clone()),
                status: Some("CREATE FAILED".into()),
                failure_reason: Some("boom".into()),
                ..Default::default()
            })
            .unwrap();
        let page = store.list_jobs(Some(SV), 0, 100);
        assert_eq!(page.items[1].status.as_deref(), Some("CREATE FAILED"));
        assert_eq!(page.items[1].job_name.as_deref(), Some("job-2"));
        assert_eq!(store.job_count(), 3);
    }

    #[test]
    fn new_job_needs_an_identity() {
        let mut store = Store::default();
        assert!(store.upsert_job(Job::default()).is_err());
        let job = store
            .upsert_job(Job {
                job_name: Some("x".into()),
                solution_version_arn: Some(SV.into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            job.batch_inference_job_arn.as_deref(),
            Some("arn:aws:personalize:us-east-1:123456789012:batch-inference-job/x")
        );
        assert_eq!(job.status.as_deref(), Some("PENDING"));
        assert!(store.solution_version(SV).is_some());
    }
}
