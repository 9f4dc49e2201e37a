//! The property test of exactly-once: imperfect listings (omitted, repeated, reordered jobs), crashes
//! between any two steps, refused Events, and Event expiry.

use super::*;
use crate::events::ledger::legacy_job_hash;

// ---- property test: imperfect listings, crashes, refused Events, Event expiry ----

/// How long the API server keeps an Event (its --event-ttl default).
const EVENT_TTL: i64 = 3600;

#[derive(Clone, Debug)]
enum Step {
    Create {
        status: &'static str,
    },
    Advance {
        index: usize,
        to_failed: bool,
    },
    Tick {
        secs: u16,
    },
    Poll(PollShape),
    FailedPoll,
    /// The stored ledger as a version before SHA-256 ids wrote it (FNV-1a ids): an upgrade.
    WrittenByEarlierVersion,
}

/// One listing: which jobs it leaves out or shows twice (one view from before the last change),
/// in what order, and how the reconcile ends.
#[derive(Clone, Debug)]
struct PollShape {
    omit: u64,
    repeat: u64,
    order: u64,
    ending: Ending,
    /// Listed through a second endpoint setting (a trailing slash, another replica's).
    other_endpoint: bool,
}

/// How a reconcile ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// A crash before publishing.
    CrashBeforePublishing,
    /// Published, then a crash before the status write.
    CrashBeforeWriting,
    /// Published and written.
    Written,
    /// The API server refuses Events; the status write goes through.
    EventsRefused,
}

fn ending() -> impl Strategy<Value = Ending> {
    prop::sample::select(vec![
        Ending::CrashBeforePublishing,
        Ending::CrashBeforeWriting,
        Ending::Written,
        Ending::EventsRefused,
    ])
}

/// Steps whose listings come through one endpoint setting, or (`endpoints`) through either of two.
fn step(endpoints: bool) -> impl Strategy<Value = Step> {
    let other = if endpoints {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    prop_oneof![
        3 => prop::sample::select(vec!["PENDING", "IN PROGRESS", "ACTIVE", "CREATE FAILED"])
            .prop_map(|status| Step::Create { status }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(index, to_failed)| Step::Advance { index, to_failed }),
        2 => (0u16..2400).prop_map(|secs| Step::Tick { secs }),
        4 => (any::<u64>(), any::<u64>(), any::<u64>(), ending(), other)
            .prop_map(|(omit, repeat, order, ending, other_endpoint)| {
                Step::Poll(PollShape { omit, repeat, order, ending, other_endpoint })
            }),
        1 => Just(Step::FailedPoll),
        1 => Just(Step::WrittenByEarlierVersion),
    ]
}

/// A job as it is now, and as it was before its last change.
#[derive(Clone, Debug)]
struct WorldJob {
    now: ListedJob,
    before: Option<ListedJob>,
}

impl World {
    /// Rewrites the stored ledger's ids the way a version before SHA-256 ids made them.
    fn written_by_earlier_version(&mut self) {
        let legacy: HashMap<String, String> = self
            .jobs
            .iter()
            .filter_map(|j| {
                let current = crate::events::ledger::job_hash(&j.now)?;
                Some((current.to_string(), legacy_job_hash(&j.now)?))
            })
            .collect();
        let Some(ledger) = self.stored.as_mut().and_then(|s| s.ledger.as_mut()) else {
            return;
        };
        let old = |id: &String| legacy.get(id).unwrap_or(id).clone();
        ledger.open = ledger.open.iter().map(old).collect();
        ledger.stuck = ledger.stuck.iter().map(old).collect();
        ledger.finished = ledger
            .finished
            .iter()
            .map(|(id, at)| (old(id), *at))
            .collect();
    }
}

/// The world: jobs, a clock, the stored status, and the Events the API server holds.
struct World {
    jobs: Vec<WorldJob>,
    clock: i64,
    stored: Option<SolutionVersionWatchStatus>,
    /// (reason, id) -> when created; creations per job name.
    events: HashMap<(String, String), i64>,
    created: HashMap<String, Vec<(AnnouncementKind, i64)>>,
    /// When the first listing was written (the watch's baseline).
    baseline: Option<i64>,
    /// Per job: the clock of the first poll that listed it finished and could publish.
    first_publishable: HashMap<String, i64>,
    /// Jobs whose Event was published in an attempt that crashed before its status write, and
    /// that no status write has recorded since: when each was published.
    unrecorded: HashMap<String, i64>,
    /// Jobs a written listing showed unfinished (maybe an old view): the ledger awaits them.
    seen_unfinished: HashSet<String>,
    /// Stuck Events created per job (apart from `created`: a stuck job also finishes).
    stuck_created: HashMap<String, usize>,
    /// Jobs a written listing showed finished before any showed them unfinished.
    first_seen_finished: HashSet<String>,
}

impl World {
    /// Whether eventual consistency may still hide or show an old view of a job: only for a
    /// while after its last change (well within the ledger's retention).
    fn may_lag(&self, j: &WorldJob) -> bool {
        let changed = j.now.updated.unwrap().as_second() - 1_700_000_000;
        self.clock - changed < RETENTION.as_secs() / 2
    }

    fn listing(&self, shape: &PollShape) -> Vec<ListedJob> {
        let mut out = Vec::new();
        for (i, j) in self.jobs.iter().enumerate() {
            let bit = 1u64 << (i % 64);
            let lags = self.may_lag(j);
            if shape.repeat & bit != 0
                && lags
                && let Some(before) = &j.before
            {
                out.push(before.clone());
            }
            if shape.omit & bit == 0 || !lags {
                out.push(j.now.clone());
            }
        }
        // Any order: rotate and maybe reverse.
        if !out.is_empty() {
            let k = (shape.order as usize) % out.len();
            out.rotate_left(k);
            if shape.order & 1 == 1 {
                out.reverse();
            }
        }
        out
    }

    /// Time passes; after a crash between publishing and writing, a status write records the
    /// published Events within their TTL (the documented bound: an Event whose record waits
    /// longer, because writes fail or listings leave its job out, can be published again once
    /// the first expired).
    fn tick(&mut self, secs: i64) {
        let mut to = self.clock + secs;
        if let Some(since) = self.unrecorded.values().min() {
            to = to.min(since + EVENT_TTL / 2);
        }
        self.clock = to.max(self.clock);
    }

    fn publish(&mut self, outbox: &[PendingEvent]) {
        for e in outbox {
            let key = (format!("{:?}", e.kind), e.subject.clone());
            let exists = self
                .events
                .get(&key)
                .is_some_and(|at| self.clock - at < EVENT_TTL);
            if !exists {
                self.events.insert(key, self.clock);
                if e.kind == AnnouncementKind::Stuck {
                    *self.stuck_created.entry(e.job_name.clone()).or_default() += 1;
                } else if !matches!(
                    e.kind,
                    AnnouncementKind::Discovered | AnnouncementKind::Overdue
                ) {
                    self.created
                        .entry(e.job_name.clone())
                        .or_default()
                        .push((e.kind, self.clock));
                }
            }
        }
    }

    fn poll(&mut self, shape: &PollShape) {
        self.clock += 1;
        let listed = self.listing(shape);
        let endpoint = if shape.other_endpoint {
            "http://127.0.0.1:4566/"
        } else {
            "default"
        };
        let listing = Listing {
            jobs: listed.clone(),
            source: ListingSource {
                region: "us-east-1".into(),
                endpoint: endpoint.into(),
            },
            started: std::time::Instant::now(),
        };
        let obs = Observation {
            expectations: expecting(),
            watch_created: Some(t(0)),
            ..observe(PollOutcome::Listed(&listing), self.clock, 50)
        };
        let decision = next_status(self.stored.as_ref(), &obs);
        let counts = decision.status.counts.clone().unwrap();
        let unique: HashSet<&str> = listed.iter().map(|j| j.arn.as_str()).collect();
        assert_eq!(counts.total as usize, unique.len());
        if matches!(shape.ending, Ending::CrashBeforeWriting | Ending::Written) {
            for j in listed.iter().filter(|j| JobState::of(&j.status).finished()) {
                self.first_publishable
                    .entry(j.name.clone())
                    .or_insert(self.clock);
            }
        }
        let mut status = decision.status;
        let outbox = outbox(&status);
        let delivery = match shape.ending {
            Ending::CrashBeforePublishing => return,
            Ending::CrashBeforeWriting | Ending::Written => {
                self.publish(&outbox);
                Delivery {
                    published: outbox.len(),
                    error: None,
                    ..Default::default()
                }
            }
            Ending::EventsRefused => Delivery {
                published: 0,
                error: Some("refused".into()),
                ..Default::default()
            },
        };
        if shape.ending == Ending::CrashBeforeWriting {
            for e in outbox.iter().filter(|e| !e.job_name.is_empty()) {
                self.unrecorded
                    .entry(unrecorded_key(e))
                    .or_insert(self.clock);
            }
            return;
        }
        after_publishing(&mut status, &delivery, 1, t(self.clock));
        self.baseline.get_or_insert(self.clock);
        // A listing may show a job twice (an old view too): finished in it, and not seen
        // unfinished before it, is first seen finished.
        let (finished, unfinished): (Vec<&ListedJob>, Vec<&ListedJob>) = listed
            .iter()
            .partition(|j| JobState::of(&j.status).finished());
        for j in finished {
            if !self.seen_unfinished.contains(&j.name) {
                self.first_seen_finished.insert(j.name.clone());
            }
        }
        self.seen_unfinished
            .extend(unfinished.into_iter().map(|j| j.name.clone()));
        // Recorded as published: accounted for in `finished`, and not waiting in the outbox.
        let ledger = status.ledger.clone().unwrap_or_default();
        let jobs = &self.jobs;
        self.unrecorded.retain(|key, _| {
            let pending = ledger.outbox.iter().any(|e| unrecorded_key(e) == *key);
            let (stuck, name) = match key.strip_prefix("stuck:") {
                Some(name) => (true, name),
                None => (false, key.as_str()),
            };
            let id = jobs
                .iter()
                .find(|j| j.now.name == name)
                .and_then(|j| ledger::job_hash(&j.now))
                .map(|id| id.to_string());
            let accounted = id.is_some_and(|id| match stuck {
                true => ledger.stuck.contains(&id) || ledger.finished.contains_key(&id),
                false => ledger.finished.contains_key(&id),
            });
            pending || !accounted
        });
        self.stored = Some(status);
    }
}

/// What `World::unrecorded` calls an Event: the job's name, prefixed for a stuck Event.
fn unrecorded_key(e: &PendingEvent) -> String {
    match e.kind {
        AnnouncementKind::Stuck => format!("stuck:{}", e.job_name),
        _ => e.job_name.clone(),
    }
}

/// Runs the steps, then complete listings until settled, and checks every job. With listings
/// through two endpoint settings (`endpoints`), a job first seen finished in a listing from a
/// new source is summed up rather than announced, so only the jobs awaited before they finished
/// must be announced; at most once holds for all.
fn check_announcements(steps: Vec<Step>, endpoints: bool) -> Result<(), TestCaseError> {
    let mut w = World {
        jobs: Vec::new(),
        clock: 0,
        stored: None,
        events: HashMap::new(),
        created: HashMap::new(),
        baseline: None,
        first_publishable: HashMap::new(),
        unrecorded: HashMap::new(),
        seen_unfinished: HashSet::new(),
        stuck_created: HashMap::new(),
        first_seen_finished: HashSet::new(),
    };
    for s in steps {
        match s {
            Step::Create { status: st } => {
                w.clock += 1;
                let n = w.jobs.len();
                w.jobs.push(WorldJob {
                    now: job(n, st, w.clock),
                    before: None,
                });
            }
            Step::Advance { index, to_failed } => {
                if w.jobs.is_empty() {
                    continue;
                }
                let n = w.jobs.len();
                let clock = w.clock;
                let j = &mut w.jobs[index % n];
                let next = match (JobState::of(&j.now.status), to_failed) {
                    (JobState::Pending, _) => "IN PROGRESS",
                    (JobState::InProgress, true) => "CREATE FAILED",
                    (JobState::InProgress, false) => "ACTIVE",
                    _ => continue,
                };
                j.before = Some(j.now.clone());
                j.now.status = next.into();
                j.now.updated = Some(t(clock));
                j.now.failure_reason = (next == "CREATE FAILED").then(|| "boom".into());
            }
            Step::Tick { secs } => w.tick(i64::from(secs)),
            Step::Poll(shape) => w.poll(&shape),
            Step::WrittenByEarlierVersion => w.written_by_earlier_version(),
            Step::FailedPoll => {
                w.clock += 1;
                let f = PollFailure {
                    reason: Reason::Throttled,
                    message: "x".into(),
                    stalled: false,
                };
                if let Some(prev) = w.stored.as_ref() {
                    let next =
                        next_status(Some(prev), &observe(PollOutcome::Failed(&f), w.clock, 50));
                    prop_assert_eq!(&next.status.counts, &prev.counts);
                    w.stored = Some(next.status);
                }
            }
        }
    }
    // Settle: complete listings in order, published and written.
    for _ in 0..3 {
        w.poll(&PollShape {
            omit: 0,
            repeat: 0,
            order: 0,
            ending: Ending::Written,
            other_endpoint: false,
        });
    }
    let baseline = w.baseline.unwrap();
    for j in &w.jobs {
        let stuck = w.stuck_created.get(&j.now.name).copied().unwrap_or(0);
        prop_assert!(stuck <= 1, "{} announced stuck {} times", j.now.name, stuck);
        let created = w.created.get(&j.now.name).cloned().unwrap_or_default();
        prop_assert!(created.len() <= 1, "{} announced {:?}", j.now.name, created);
        let state = JobState::of(&j.now.status);
        let finished_at = j.now.updated.unwrap().as_second() - 1_700_000_000;
        if endpoints {
            let awaited = w.seen_unfinished.contains(&j.now.name)
                && !w.first_seen_finished.contains(&j.now.name);
            if state.finished() && awaited {
                prop_assert_eq!(
                    created.len(),
                    1,
                    "{} was awaited, finished and not announced",
                    &j.now.name
                );
            }
            continue;
        }
        if state.finished() && finished_at > baseline {
            let kind = if state == JobState::Failed {
                AnnouncementKind::Failed
            } else {
                AnnouncementKind::Completed
            };
            prop_assert_eq!(
                created.first().map(|c| c.0),
                Some(kind),
                "{} finished at {} after the baseline {} but was not announced",
                &j.now.name,
                finished_at,
                baseline
            );
            // No later than the first poll that listed it finished and could publish (earlier
            // when an Event refused before went out from the outbox).
            let first = w.first_publishable.get(&j.now.name).copied();
            prop_assert!(
                first.is_some_and(|f| created[0].1 <= f),
                "{} announced at {} but first publishable at {:?}",
                &j.now.name,
                created[0].1,
                first
            );
        } else if !state.finished()
            || (finished_at <= baseline - CLOCK_ALLOWANCE.as_secs()
                && !w.seen_unfinished.contains(&j.now.name))
        {
            prop_assert!(
                created.is_empty(),
                "{} announced: {:?}",
                j.now.name,
                created
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Whatever listings leave out, repeat or reorder, and however reconciles end: every job
    /// that finishes after the watch's first listing is announced exactly once (even counting
    /// Events that expired and came back), no later than the first poll that lists it finished
    /// and can publish; no job that had finished well before it is announced; counts equal the
    /// jobs.
    #[test]
    fn each_job_is_announced_exactly_once(steps in proptest::collection::vec(step(false), 1..60)) {
        check_announcements(steps, false)?;
    }

    /// Listings through two endpoint settings in any order (an operator restarted with a
    /// trailing slash, two replicas set differently): no job is announced twice, and every job
    /// a written listing showed unfinished is announced once when it finishes.
    #[test]
    fn a_change_of_endpoint_neither_repeats_nor_loses_an_awaited_job(
        steps in proptest::collection::vec(step(true), 1..60)
    ) {
        check_announcements(steps, true)?;
    }
}
