//! A living service: with a `simulation` block in the state file, new jobs are created on each
//! schedule and move PENDING -> IN PROGRESS -> ACTIVE or CREATE FAILED after the configured
//! durations (jobs from the state file or the admin API stay as they are told). Which jobs fail is a hash of the seed
//! and the job's name, so the same state file gives the same run.
//!
//! Each schedule keeps its newest `keep` jobs (1,000 by default) and deletes older ones, which
//! AWS never does: a demo left running for days lists the same number of jobs and holds the
//! same memory. `GET /_emulator/healthz` reports each schedule's jobs made and kept.
//!
//! A solution with `autoTraining` gets a new ACTIVE version on schedule, as Personalize's
//! automatic training makes one (every 7 days by default); schedules naming that solution, or
//! one of its versions, create their jobs against its newest version from then on.
//!
//! Time is the emulator's clock: [`Simulation::advance`] applies every step due by `now`, with
//! the times the steps were due (a late tick does not shift them).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::model::{EpochMillis, Job, SolutionVersion, solution_arn_of};
use super::store::Store;

/// The `simulation` block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulationSpec {
    /// Seeds which jobs fail.
    #[serde(default)]
    pub seed: u64,
    /// Seconds a job stays PENDING.
    #[serde(default = "default_pending")]
    pub pending_seconds: f64,
    /// Seconds a job stays IN PROGRESS.
    #[serde(default = "default_running")]
    pub running_seconds: f64,
    /// The share of jobs that end CREATE FAILED, 0 to 1.
    #[serde(default)]
    pub failure_rate: f64,
    /// The failed jobs' failureReason.
    #[serde(default = "default_reason")]
    pub failure_reason: String,
    /// New jobs per solution version.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    /// Solutions that retrain themselves.
    #[serde(default)]
    pub solutions: Vec<Solution>,
}

/// A solution and its automatic training.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Solution {
    /// `arn:aws:personalize:REGION:ACCOUNT:solution/NAME`.
    pub solution_arn: String,
    pub auto_training: AutoTraining,
}

/// A new version every `everySeconds` (Personalize's `schedulingExpression`, `rate(7 days)`
/// by default), the first after `firstAfterSeconds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoTraining {
    pub every_seconds: f64,
    #[serde(default)]
    pub first_after_seconds: f64,
}

/// New jobs for one solution version (or a solution's newest version): `PREFIX-1`,
/// `PREFIX-2`, ... every `everySeconds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// The version the jobs run against; of an auto-trained solution, its newest instead.
    #[serde(default)]
    pub solution_version_arn: String,
    /// Or a solution: its newest version at each job's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution_arn: Option<String>,
    pub every_seconds: f64,
    /// When the first job comes, after the emulator starts.
    #[serde(default)]
    pub first_after_seconds: f64,
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    /// At most this many jobs (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The newest jobs of this schedule kept; older ones are deleted.
    #[serde(default = "default_keep")]
    pub keep: u64,
}

/// What a schedule has done, as the admin API reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleReport {
    pub name_prefix: String,
    pub made: u64,
    pub kept: usize,
    pub keep: u64,
}

fn default_pending() -> f64 {
    5.0
}
fn default_running() -> f64 {
    10.0
}
fn default_reason() -> String {
    "Simulated failure: the input data could not be read".into()
}
fn default_keep() -> u64 {
    1_000
}
fn default_prefix() -> String {
    "scheduled".into()
}

impl SimulationSpec {
    pub fn check(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "simulation.{name} must be a number of seconds, at least 0"
                ))
            }
        };
        positive("pendingSeconds", self.pending_seconds)?;
        positive("runningSeconds", self.running_seconds)?;
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err("simulation.failureRate must be between 0 and 1".into());
        }
        for s in &self.schedules {
            if !(s.every_seconds.is_finite() && s.every_seconds >= 1.0) {
                return Err("simulation.schedules[].everySeconds must be at least 1".into());
            }
            positive("schedules[].firstAfterSeconds", s.first_after_seconds)?;
            if s.keep == 0 {
                return Err("simulation.schedules[].keep must be at least 1".into());
            }
            if s.solution_version_arn.is_empty() == s.solution_arn.is_none() {
                return Err("simulation.schedules[]: name exactly one of solutionVersionArn and solutionArn".into());
            }
        }
        for solution in &self.solutions {
            let training = &solution.auto_training;
            if !(training.every_seconds.is_finite() && training.every_seconds >= 1.0) {
                return Err(
                    "simulation.solutions[].autoTraining.everySeconds must be at least 1".into(),
                );
            }
            positive(
                "solutions[].autoTraining.firstAfterSeconds",
                training.first_after_seconds,
            )?;
            if solution_arn_of(&format!("{}/v", solution.solution_arn)).as_deref()
                != Some(solution.solution_arn.as_str())
            {
                return Err("simulation.solutions[].solutionArn must be a solution ARN".into());
            }
        }
        Ok(())
    }
}

/// A running simulation: its spec, when it started, and how many jobs each schedule made.
#[derive(Clone, Debug)]
pub struct Simulation {
    spec: SimulationSpec,
    started: EpochMillis,
    /// Versions each auto-trained solution has made.
    trained: Vec<u64>,
    made: Vec<u64>,
    /// Per schedule, the ARNs of the jobs it made that are kept, oldest first.
    kept: Vec<VecDeque<String>>,
    /// ARNs of the jobs it created that have not finished, oldest first: the ones it moves.
    /// A finished job leaves, so each request costs the moving jobs, not every job made.
    own: Vec<String>,
}

fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

impl Simulation {
    pub fn new(spec: SimulationSpec, started: EpochMillis) -> Self {
        Simulation {
            trained: vec![0; spec.solutions.len()],
            made: vec![0; spec.schedules.len()],
            kept: vec![VecDeque::new(); spec.schedules.len()],
            spec,
            started,
            own: Vec::new(),
        }
    }

    /// Applies every step due by `now`: scheduled jobs first, then state changes.
    pub fn advance(&mut self, store: &mut Store, now: EpochMillis) {
        self.train_due_versions(store, now);
        self.create_due_jobs(store, now);
        let moving: Vec<Job> = self
            .own
            .iter()
            .filter_map(|arn| store.job(arn))
            .filter(|j| matches!(j.status.as_deref(), Some("PENDING" | "IN PROGRESS")))
            .cloned()
            .collect();
        for job in moving {
            if let Some(next) = self.next_state(&job, now)
                && let Err(e) = store.upsert_job(next)
            {
                tracing::warn!(error = %e, "simulation step refused");
            }
        }
        self.own.retain(|arn| {
            store
                .job(arn)
                .is_some_and(|j| matches!(j.status.as_deref(), Some("PENDING" | "IN PROGRESS")))
        });
    }

    /// What each schedule has made and kept.
    pub fn report(&self) -> Vec<ScheduleReport> {
        self.spec
            .schedules
            .iter()
            .zip(&self.made)
            .zip(&self.kept)
            .map(|((schedule, made), kept)| ScheduleReport {
                name_prefix: schedule.name_prefix.clone(),
                made: *made,
                kept: kept.len(),
                keep: schedule.keep,
            })
            .collect()
    }

    /// Each auto-trained solution's versions due by `now`, ACTIVE from their due time, with
    /// ids from the seed, the solution and the count (so a run repeats).
    fn train_due_versions(&mut self, store: &mut Store, now: EpochMillis) {
        for (i, solution) in self.spec.solutions.iter().enumerate() {
            let training = &solution.auto_training;
            loop {
                let n = self.trained[i];
                let due = self.started.0
                    + millis(training.first_after_seconds)
                    + millis(training.every_seconds) * n as i64;
                if due > now.0 {
                    break;
                }
                self.trained[i] += 1;
                let id = format!(
                    "{:016x}",
                    fnv(self.spec.seed, &format!("{n}#{}", solution.solution_arn))
                );
                let arn = format!("{}/{}", solution.solution_arn, &id[8..]);
                store.upsert_solution_version(SolutionVersion {
                    training_type: Some("AUTOMATIC".into()),
                    ..SolutionVersion::implied(&arn, EpochMillis(due))
                });
            }
        }
    }

    /// The version a schedule's job due at `at` runs against: the newest of the solution it
    /// names, or of its version's solution when that one retrains itself.
    fn version_for(&self, schedule: &Schedule, store: &Store, at: EpochMillis) -> Option<String> {
        let solution = schedule
            .solution_arn
            .clone()
            .or_else(|| solution_arn_of(&schedule.solution_version_arn))
            .filter(|s| {
                schedule.solution_arn.is_some()
                    || self.spec.solutions.iter().any(|t| t.solution_arn == *s)
            });
        match solution {
            Some(solution) => store.newest_version(&solution, at),
            None => Some(schedule.solution_version_arn.clone()),
        }
    }

    fn create_due_jobs(&mut self, store: &mut Store, now: EpochMillis) {
        for (i, schedule) in self.spec.schedules.iter().enumerate() {
            // After a long quiet time only the newest `keep` due jobs are made at all.
            let due = self.due(schedule, now);
            self.made[i] = self.made[i].max(due.saturating_sub(schedule.keep));
            loop {
                let n = self.made[i];
                if schedule.count.is_some_and(|max| n >= max) {
                    break;
                }
                let due = self.started.0
                    + millis(schedule.first_after_seconds)
                    + millis(schedule.every_seconds) * n as i64;
                if due > now.0 {
                    break;
                }
                self.made[i] += 1;
                let Some(version) = self.version_for(schedule, store, EpochMillis(due)) else {
                    tracing::warn!(
                        solution_arn = schedule.solution_arn.as_deref(),
                        "a scheduled job's solution has no version yet: not made"
                    );
                    continue;
                };
                let job = Job {
                    job_name: Some(format!("{}-{}", schedule.name_prefix, n + 1)),
                    solution_version_arn: Some(version),
                    status: Some("PENDING".into()),
                    creation_date_time: Some(EpochMillis(due)),
                    last_updated_date_time: Some(EpochMillis(due)),
                    ..Default::default()
                };
                match store.upsert_job(job) {
                    Ok(job) => {
                        self.own.extend(job.batch_inference_job_arn.clone());
                        self.kept[i].extend(job.batch_inference_job_arn.clone());
                    }
                    Err(e) => tracing::warn!(error = %e, "simulated job refused"),
                }
            }
            while self.kept[i].len() as u64 > schedule.keep {
                if let Some(arn) = self.kept[i].pop_front() {
                    store.remove_job(&arn);
                }
            }
        }
    }

    /// How many jobs `schedule` has had due by `now`, at most its count.
    fn due(&self, schedule: &Schedule, now: EpochMillis) -> u64 {
        let since_first = now.0 - self.started.0 - millis(schedule.first_after_seconds);
        let due = match u64::try_from(since_first) {
            Ok(ms) => ms / millis(schedule.every_seconds).max(1) as u64 + 1,
            Err(_) => 0,
        };
        schedule.count.map_or(due, |max| due.min(max))
    }

    /// The job after every step due by `now` (PENDING may go straight to its end when the
    /// emulator was not asked for a while), or None when nothing is due.
    fn next_state(&self, job: &Job, now: EpochMillis) -> Option<Job> {
        let mut status = job.status.clone()?;
        let mut at = job.last_updated_date_time.or(job.creation_date_time)?.0;
        let mut failure_reason = None;
        loop {
            let (wait, next) = match status.as_str() {
                "PENDING" => (self.spec.pending_seconds, "IN PROGRESS"),
                "IN PROGRESS" if self.fails(job) => (self.spec.running_seconds, "CREATE FAILED"),
                "IN PROGRESS" => (self.spec.running_seconds, "ACTIVE"),
                _ => break,
            };
            if at + millis(wait) > now.0 {
                break;
            }
            at += millis(wait);
            status = next.to_string();
            if next == "CREATE FAILED" {
                failure_reason = Some(self.spec.failure_reason.clone());
            }
        }
        (Some(&status) != job.status.as_ref()).then(|| Job {
            batch_inference_job_arn: job.batch_inference_job_arn.clone(),
            status: Some(status),
            last_updated_date_time: Some(EpochMillis(at)),
            failure_reason,
            ..Default::default()
        })
    }

    /// Whether a job ends CREATE FAILED: a hash of the seed and its name, against the rate.
    fn fails(&self, job: &Job) -> bool {
        let name = job.job_name.as_deref().unwrap_or_default();
        (fnv(self.spec.seed, name) % 10_000) as f64 / 10_000.0 < self.spec.failure_rate
    }
}

/// FNV-1a of the seed and `text`.
fn fnv(seed: u64, text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/sim/v1";

    fn spec(rate: f64) -> SimulationSpec {
        SimulationSpec {
            seed: 7,
            pending_seconds: 2.0,
            running_seconds: 3.0,
            failure_rate: rate,
            failure_reason: "boom".into(),
            solutions: Vec::new(),
            schedules: vec![Schedule {
                solution_version_arn: SV.into(),
                solution_arn: None,
                every_seconds: 10.0,
                first_after_seconds: 1.0,
                name_prefix: "sim".into(),
                count: Some(3),
                keep: 1_000,
            }],
        }
    }

    fn status_of(store: &Store, name: &str) -> Option<String> {
        let arn = format!("arn:aws:personalize:us-east-1:123456789012:batch-inference-job/{name}");
        store.job(&arn).and_then(|j| j.status.clone())
    }

    #[test]
    fn jobs_are_created_on_schedule_and_move_through_their_states() {
        let mut store = Store::default();
        let mut sim = Simulation::new(spec(0.0), EpochMillis(0));
        let mut at = |store: &mut Store, s: i64| sim.advance(store, EpochMillis(s * 1000));
        at(&mut store, 0);
        assert_eq!(status_of(&store, "sim-1"), None);
        at(&mut store, 1);
        assert_eq!(status_of(&store, "sim-1").as_deref(), Some("PENDING"));
        at(&mut store, 3);
        assert_eq!(status_of(&store, "sim-1").as_deref(), Some("IN PROGRESS"));
        at(&mut store, 6);
        assert_eq!(status_of(&store, "sim-1").as_deref(), Some("ACTIVE"));
        // A late tick applies every step at the time it was due.
        at(&mut store, 100);
        assert_eq!(status_of(&store, "sim-3").as_deref(), Some("ACTIVE"));
        assert_eq!(status_of(&store, "sim-4"), None, "count: 3");
        let arn = "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/sim-3";
        let job = store.job(arn).unwrap();
        assert_eq!(job.creation_date_time, Some(EpochMillis(21_000)));
        assert_eq!(job.last_updated_date_time, Some(EpochMillis(26_000)));
    }

    #[test]
    fn the_seed_decides_which_jobs_fail_and_runs_repeat() {
        let run = || {
            let mut store = Store::default();
            let mut sim = Simulation::new(spec(0.5), EpochMillis(0));
            sim.advance(&mut store, EpochMillis(100_000));
            (1..=3)
                .map(|n| status_of(&store, &format!("sim-{n}")).unwrap())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.iter().all(|s| s == "ACTIVE" || s == "CREATE FAILED"));
        let mut all_fail = Store::default();
        Simulation::new(spec(1.0), EpochMillis(0)).advance(&mut all_fail, EpochMillis(100_000));
        assert_eq!(
            status_of(&all_fail, "sim-2").as_deref(),
            Some("CREATE FAILED")
        );
    }

    #[test]
    fn auto_training_makes_versions_and_scheduled_jobs_follow_the_newest() {
        let solution = "arn:aws:personalize:us-east-1:123456789012:solution/sim";
        let mut s = spec(0.0);
        s.schedules[0].count = None;
        s.solutions = vec![Solution {
            solution_arn: solution.into(),
            auto_training: AutoTraining {
                every_seconds: 25.0,
                first_after_seconds: 0.0,
            },
        }];
        let mut store = Store::default();
        let mut sim = Simulation::new(s, EpochMillis(0));
        sim.advance(&mut store, EpochMillis(60_000));
        let versions = store.list_solution_versions(Some(solution), 0, 100).items;
        assert_eq!(versions.len(), 3, "at 0 s, 25 s and 50 s");
        assert!(
            versions
                .iter()
                .all(|v| v.status.as_deref() == Some("ACTIVE"))
        );
        let version_of = |name: &str| {
            let arn =
                format!("arn:aws:personalize:us-east-1:123456789012:batch-inference-job/{name}");
            store.job(&arn).and_then(|j| j.solution_version_arn.clone())
        };
        // sim-1 at 1 s and sim-3 at 21 s ran against the first version, sim-4 at 31 s
        // against the second, sim-6 at 51 s against the third.
        assert_eq!(version_of("sim-1"), version_of("sim-3"));
        assert_eq!(
            version_of("sim-4").as_deref(),
            Some(versions[1].solution_version_arn.as_str())
        );
        assert_eq!(
            version_of("sim-6").as_deref(),
            Some(versions[2].solution_version_arn.as_str())
        );
        assert_ne!(version_of("sim-1"), version_of("sim-4"));
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert!(spec(1.5).check().is_err());
        let mut s = spec(0.1);
        s.schedules[0].every_seconds = 0.0;
        assert!(s.check().is_err());
        assert!(spec(0.1).check().is_ok());
    }

    #[test]
    fn a_schedule_keeps_its_newest_jobs_and_memory_stays_flat() {
        let mut store = Store::default();
        let mut s = spec(0.0);
        s.schedules[0].count = None;
        s.schedules[0].keep = 5;
        let mut sim = Simulation::new(s, EpochMillis(0));
        // A job every 10 s for a day, asked every 10 s.
        for tick in 0..8_640 {
            sim.advance(&mut store, EpochMillis(tick * 10_000));
        }
        assert_eq!(store.job_count(), 5);
        assert_eq!(status_of(&store, "sim-8639").as_deref(), Some("ACTIVE"));
        assert_eq!(status_of(&store, "sim-8635").as_deref(), Some("ACTIVE"));
        assert_eq!(
            status_of(&store, "sim-8634"),
            None,
            "older jobs are deleted"
        );
        assert_eq!(store.positions_held(), 5, "holes are reclaimed");
        let report = &sim.report()[0];
        assert_eq!((report.made, report.kept, report.keep), (8_639, 5, 5));
        // Nobody asked for a year: only the newest five due jobs are made.
        sim.advance(&mut store, EpochMillis(365 * 86_400_000));
        assert_eq!(store.job_count(), 5);
        assert_eq!(sim.report()[0].made, 365 * 8_640);
    }
}
