//! Every series' name (after the `personalize_watch_` prefix) and help text.

/// A metric's name and help text.
pub type Series = (&'static str, &'static str);

pub const RECONCILES: Series = ("reconciles", "Reconciles run");
pub const RECONCILE_ERRORS: Series = (
    "reconcile_errors",
    "Reconciles that failed, by static reason",
);
pub const RECONCILE_DURATION: Series = (
    "reconcile_duration_seconds",
    "Time a reconcile takes, listing included",
);
pub const PERSONALIZE_REQUESTS: Series = (
    "personalize_requests",
    "Personalize calls by operation and outcome (Success or an error reason)",
);
pub const PERSONALIZE_THROTTLED: Series = (
    "personalize_throttled_requests",
    "Personalize calls that failed throttled after the SDK's retries",
);
pub const JOBS: Series = ("jobs", "Batch inference jobs by state, per watch");
pub const WATCH_COUNT: Series = ("watches", "SolutionVersionWatches known to this instance");
pub const LEADER: Series = (
    "leader",
    "1 when this instance leads (or runs without leader election)",
);
pub const SECONDS_SINCE_SYNC: Series = (
    "seconds_since_last_sync",
    "Seconds since each watch's last complete listing (suspended watches have none)",
);
pub const LAST_SYNC: Series = (
    "last_sync_timestamp_seconds",
    "When each watch's last complete listing finished, in seconds since the epoch",
);
pub const PENDING_EVENTS: Series = (
    "pending_events",
    "Decided Events that wait to be published, per watch",
);
pub const JOBS_STUCK: Series = (
    "jobs_stuck",
    "Jobs PENDING or IN PROGRESS for longer than spec.stuckAfter, per watch",
);
pub const SECONDS_SINCE_NEWEST_JOB: Series = (
    "seconds_since_newest_job",
    "Seconds since the newest job of each watch was created",
);
pub const EXPECT_NEW_JOB_WITHIN: Series = (
    "expect_new_job_within_seconds",
    "spec.expectNewJobWithin of each watch that sets it, in seconds",
);
pub const JOB_DURATION: Series = (
    "job_duration_seconds",
    "Durations of finished jobs (last update less creation), by outcome; each job once, when its Event is published",
);
pub const STATUS_WRITES: Series = ("status_writes", "Status writes to the API server");
pub const STATUS_CONFLICTS: Series = (
    "status_conflicts",
    "Status writes refused with 409 Conflict (the object changed since it was read)",
);
pub const EVENTS: Series = ("events", "Kubernetes Events published, by reason");
pub const EVENT_FAILURES: Series = (
    "event_publish_failures",
    "Event creations the API server refused, by its reason (the Event stays pending)",
);
pub const LISTINGS: Series = (
    "listings",
    "Polls that got their jobs, by plan: own (the watch's own calls) or shared (one account-wide listing for the watches of an account due together)",
);
pub const OMISSIONS: Series = (
    "listing_omissions",
    "Jobs seen before that a complete listing left out",
);
