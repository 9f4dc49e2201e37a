//! The emulator's state: jobs in insertion order, indexed by ARN and by solution version.
//!
//! Jobs are listed in one of three orders ([`ListingOrder`]). In insertion order (the default) a
//! job keeps its place when it changes state and a page token records the position after the
//! last job it returned, so a paginated listing neither skips nor repeats a job that existed for
//! the whole listing; jobs added during a listing appear at its end. The other orders sort at
//! every request and their tokens are offsets, as a real service might do: a job created or
//! updated during a listing shifts the pages, so the listing can skip or repeat jobs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Index;

use serde::{Deserialize, Serialize};

use super::model::{EpochMillis, Job, SolutionVersion, StateFile, arn_prefix};

#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Jobs by position; the position is the job's place in every listing.
    jobs: Slots,
    by_arn: HashMap<String, usize>,
    /// Positions of each solution version's jobs, ascending.
    by_solution_version: HashMap<String, Vec<usize>>,
    solution_versions: Vec<SolutionVersion>,
    solution_version_by_arn: HashMap<String, usize>,
    /// The last N generated per `ARN-PREFIX/NAME-PREFIX`, so the next batch starts after it
    /// instead of probing every name taken (quadratic over a 10,000-watch fleet).
    last_generated: HashMap<String, usize>,
}

/// Jobs by position. A removed job leaves a hole until every older one is gone too, so a
/// position (and a page token holding one) never moves, and memory follows the jobs kept when
/// the oldest go first, as a simulation's do.
#[derive(Clone, Debug, Default)]
struct Slots {
    /// The position of `slots[0]`.
    first: usize,
    slots: VecDeque<Option<Job>>,
}

impl Slots {
    fn push(&mut self, job: Job) -> usize {
        self.slots.push_back(Some(job));
        self.first + self.slots.len() - 1
    }

    fn get(&self, position: usize) -> Option<&Job> {
        self.slots.get(position.checked_sub(self.first)?)?.as_ref()
    }

    fn get_mut(&mut self, position: usize) -> Option<&mut Job> {
        self.slots
            .get_mut(position.checked_sub(self.first)?)?
            .as_mut()
    }

    fn remove(&mut self, position: usize) -> Option<Job> {
        let job = self
            .slots
            .get_mut(position.checked_sub(self.first)?)?
            .take();
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.first += 1;
        }
        job
    }

    /// The positions of every job kept, ascending.
    fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.is_some())
            .map(|(i, _)| self.first + i)
    }
}

/// Only positions the store's indexes hold are looked up this way; they always hold a job.
impl Index<usize> for Slots {
    type Output = Job;

    fn index(&self, position: usize) -> &Job {
        match self.get(position) {
            Some(job) => job,
            None => unreachable!("position {position} is in an index but holds no job"),
        }
    }
}

/// One page of a listing: the items and the position to go on from, if more remain.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_start: Option<u64>,
}

/// Generated jobs (`POST /_emulator/generate`): `count` jobs named `PREFIX-N`, created one
/// second apart, the newest `ageSeconds` ago (0: now), all in `status` (default ACTIVE).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Batch {
    pub solution_version_arn: String,
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub age_seconds: u64,
    /// For CREATE FAILED jobs (default "Generated failure").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How ListBatchInferenceJobs orders jobs (`--listing-order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ListingOrder {
    /// The order jobs were first loaded or created; tokens are positions (stable).
    #[default]
    Insertion,
    /// Newest creationDateTime first; tokens are offsets.
    NewestFirst,
    /// Most recently updated first; tokens are offsets, so a job that changes moves.
    LastUpdated,
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
        self.by_arn.len()
    }

    /// Positions held, holes included: what the jobs cost beyond the jobs kept.
    #[cfg(test)]
    pub fn positions_held(&self) -> usize {
        self.jobs.slots.len()
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
        if let Some(&i) = self.by_arn.get(&arn)
            && let Some(job) = self.jobs.get_mut(i)
        {
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
        let position = self.jobs.push(job);
        self.by_arn.insert(arn, position);
        self.by_solution_version
            .entry(sv)
            .or_default()
            .push(position);
        Ok(&self.jobs[position])
    }

    /// Deletes a job (AWS never does; a simulation does, to stay flat when left running).
    pub fn remove_job(&mut self, arn: &str) -> Option<Job> {
        let position = self.by_arn.remove(arn)?;
        let job = self.jobs.remove(position)?;
        if let Some(sv) = &job.solution_version_arn
            && let Some(positions) = self.by_solution_version.get_mut(sv)
            && let Ok(i) = positions.binary_search(&position)
        {
            positions.remove(i);
        }
        Some(job)
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
        self.generate_batch(&Batch {
            solution_version_arn: solution_version_arn.to_string(),
            count,
            status: Some(status.to_string()),
            name_prefix: Some(name_prefix.to_string()),
            ..Default::default()
        })
    }

    /// Adds a batch of generated jobs; see [`Batch`].
    pub fn generate_batch(&mut self, batch: &Batch) -> Result<Vec<String>, String> {
        let sv = &batch.solution_version_arn;
        let prefix = arn_prefix(sv)
            .ok_or_else(|| format!("solutionVersionArn {sv:?} is not an ARN"))?
            .to_string();
        let status = batch.status.as_deref().unwrap_or("ACTIVE");
        let name_prefix = batch.name_prefix.as_deref().unwrap_or("job");
        let newest = EpochMillis::now().0 - (batch.age_seconds as i64) * 1000;
        let failure_reason = (status == "CREATE FAILED").then(|| {
            batch
                .failure_reason
                .clone()
                .unwrap_or_else(|| "Generated failure".into())
        });
        let mut arns = Vec::with_capacity(batch.count);
        let series = format!("{prefix}batch-inference-job/{name_prefix}");
        let mut n = self.last_generated.get(&series).copied().unwrap_or(0);
        for i in 0..batch.count {
            let arn = loop {
                n += 1;
                let candidate = format!("{prefix}batch-inference-job/{name_prefix}-{n}");
                if !self.by_arn.contains_key(&candidate) {
                    break candidate;
                }
            };
            let created = EpochMillis(newest - ((batch.count - i) as i64) * 1000);
            self.upsert_job(Job {
                batch_inference_job_arn: Some(arn.clone()),
                job_name: Some(format!("{name_prefix}-{n}")),
                status: Some(status.to_string()),
                creation_date_time: Some(created),
                last_updated_date_time: Some(created),
                failure_reason: failure_reason.clone(),
                solution_version_arn: Some(sv.clone()),
                batch_inference_job_mode: Some("BATCH_INFERENCE".into()),
                ..Default::default()
            })?;
            arns.push(arn);
        }
        self.last_generated.insert(series, n);
        Ok(arns)
    }

    /// Positions of one solution version's jobs (or of all), in insertion order.
    fn positions<'a>(
        &'a self,
        solution_version_arn: Option<&str>,
    ) -> Box<dyn Iterator<Item = usize> + 'a> {
        match solution_version_arn {
            Some(sv) => Box::new(
                self.by_solution_version
                    .get(sv)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .copied(),
            ),
            None => Box::new(self.jobs.positions()),
        }
    }

    /// Up to `limit` jobs from cursor `start` on, of one solution version or of all, of those
    /// `visible` accepts.
    pub fn list_jobs(
        &self,
        solution_version_arn: Option<&str>,
        order: ListingOrder,
        start: u64,
        limit: usize,
        visible: &dyn Fn(&Job) -> bool,
    ) -> Page<&Job> {
        let visible = |&p: &usize| visible(&self.jobs[p]);
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let positions = self.positions(solution_version_arn).filter(visible);
        if order == ListingOrder::Insertion {
            return paginate(positions.filter(|&p| p >= start), limit, |p| &self.jobs[p]);
        }
        let mut ordered: Vec<usize> = positions.collect();
        let key = |p: &usize| {
            let job = &self.jobs[*p];
            match order {
                ListingOrder::NewestFirst => job.creation_date_time,
                _ => job.last_updated_date_time,
            }
        };
        ordered.sort_by(|a, b| key(b).cmp(&key(a)).then(a.cmp(b)));
        let page: Vec<&Job> = ordered
            .iter()
            .skip(start)
            .take(limit)
            .map(|&p| &self.jobs[p])
            .collect();
        let end = start.saturating_add(page.len());
        Page {
            next_start: (end < ordered.len()).then_some(end as u64),
            items: page,
        }
    }

    /// The ARNs of the `count` most recently updated jobs of a solution version (or of all).
    pub fn most_recently_updated(
        &self,
        solution_version_arn: Option<&str>,
        count: usize,
    ) -> HashSet<String> {
        let mut positions: Vec<usize> = self.positions(solution_version_arn).collect();
        positions.sort_by(|a, b| {
            let updated = |p: &usize| self.jobs[*p].last_updated_date_time;
            updated(b).cmp(&updated(a)).then(b.cmp(a))
        });
        positions
            .into_iter()
            .take(count)
            .filter_map(|p| self.jobs[p].batch_inference_job_arn.clone())
            .collect()
    }

    /// Up to `limit` solution versions from position `start` on, of one solution or of all.
    /// The newest version of `solution_arn` created at or before `at`.
    pub fn newest_version(&self, solution_arn: &str, at: EpochMillis) -> Option<String> {
        self.solution_versions
            .iter()
            .filter(|v| v.solution_arn.as_deref() == Some(solution_arn))
            .filter(|v| v.creation_date_time.is_none_or(|c| c <= at))
            .max_by_key(|v| v.creation_date_time)
            .map(|v| v.solution_version_arn.clone())
    }

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
            let page = store.list_jobs(Some(SV), ListingOrder::Insertion, start, 100, &|_| true);
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
    fn offset_orders_shift_when_jobs_arrive_and_omissions_hide_jobs() {
        let mut store = Store::default();
        store.generate(SV, 5, "ACTIVE", "job").unwrap();
        let none = |_: &Job| true;
        let first = store.list_jobs(Some(SV), ListingOrder::NewestFirst, 0, 2, &none);
        let names: Vec<_> = first
            .items
            .iter()
            .map(|j| j.job_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["job-5", "job-4"]);
        assert_eq!(first.next_start, Some(2));
        // A job created between pages pushes job-4 onto the next page: it is listed twice.
        store.generate(SV, 1, "PENDING", "late").unwrap();
        let second = store.list_jobs(Some(SV), ListingOrder::NewestFirst, 2, 2, &none);
        let names: Vec<_> = second
            .items
            .iter()
            .map(|j| j.job_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["job-4", "job-3"]);
        // The most recently updated jobs, hidden from a listing.
        let hidden = store.most_recently_updated(Some(SV), 2);
        assert!(hidden.iter().any(|a| a.ends_with("/late-1")), "{hidden:?}");
        let shown =
            |j: &Job| !hidden.contains(j.batch_inference_job_arn.as_deref().unwrap_or_default());
        let all = store.list_jobs(Some(SV), ListingOrder::Insertion, 0, 100, &shown);
        assert_eq!(all.items.len(), 4);
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
        let page = store.list_jobs(Some(SV), ListingOrder::Insertion, 0, 100, &|_| true);
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
