//! The status vocabulary, in one place: condition types and statuses, the reason of every
//! condition (also the reason of poll-failure Events and the `reason` label of error metrics),
//! and the reasons of job Events. The README's troubleshooting table lists every condition
//! reason; a test checks it.

/// The condition types: the three that `kubectl wait`, kstatus and Argo CD read, and whether
/// every decided Event went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// True when the last listing succeeded (or polling is suspended).
    Ready,
    /// True when only a change of spec or permissions can help.
    Stalled,
    /// True only until the current generation has been listed.
    Reconciling,
    /// False while decided Events wait in the outbox because publishing them failed.
    EventsPublished,
    /// True while no new job came within spec.expectNewJobWithin (only with that field).
    Overdue,
}

impl ConditionType {
    pub const ALL: [ConditionType; 5] = [
        ConditionType::Ready,
        ConditionType::Stalled,
        ConditionType::Reconciling,
        ConditionType::EventsPublished,
        ConditionType::Overdue,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Stalled => "Stalled",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::EventsPublished => "EventsPublished",
            ConditionType::Overdue => "Overdue",
        }
    }
}

/// metav1.Condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// Why a condition is what it is. Stable: users, alerts and GitOps health checks key on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The last listing succeeded.
    Synced,
    /// spec.suspend is true.
    Suspended,
    /// Stalled=False after a failed poll that may clear by itself.
    Retrying,
    /// Personalize throttled the account even after the SDK's retries.
    Throttled,
    /// IAM refused the call.
    AccessDenied,
    /// The access key or token is not valid.
    InvalidCredentials,
    /// Temporary credentials expired; the credential provider refreshes them.
    ExpiredCredentials,
    /// Personalize refused the ARN or region.
    InvalidInput,
    /// Personalize does not know the resource.
    NotFound,
    /// Personalize refused a page token twice in one listing.
    InvalidNextToken,
    /// Personalize returned a page token it had returned before.
    RepeatedToken,
    /// The listing did not end within the page limit.
    TooManyPages,
    /// The listing held more jobs or bytes than the operator's bounds allow.
    ListingTooLarge,
    /// No connection to the endpoint.
    EndpointUnreachable,
    /// The endpoint did not answer in time.
    Timeout,
    /// Personalize answered something that could not be read.
    MalformedResponse,
    /// Personalize failed.
    ServiceError,
    /// The request could not be built.
    ClientError,
    /// The spec could not be used (checked by the operator, not only the schema).
    InvalidSpec,
    /// The namespace's access policy does not allow the watch's account or ARN.
    NotPermitted,
    /// The namespace's policy or the operator's own account is not known yet.
    AccessUnknown,
    /// Writing status or Events failed.
    KubernetesApiError,
    /// EventsPublished: every decided Event is published.
    Published,
    /// EventsPublished: Events wait in the outbox; the message says why.
    EventsPending,
    /// Overdue True: the newest job is older than spec.expectNewJobWithin.
    NoRecentJob,
    /// Overdue False: a job came within spec.expectNewJobWithin.
    RecentJob,
}

impl Reason {
    pub const ALL: [Reason; 26] = [
        Reason::Synced,
        Reason::Suspended,
        Reason::Retrying,
        Reason::Throttled,
        Reason::AccessDenied,
        Reason::InvalidCredentials,
        Reason::ExpiredCredentials,
        Reason::InvalidInput,
        Reason::NotFound,
        Reason::InvalidNextToken,
        Reason::RepeatedToken,
        Reason::TooManyPages,
        Reason::ListingTooLarge,
        Reason::EndpointUnreachable,
        Reason::Timeout,
        Reason::MalformedResponse,
        Reason::ServiceError,
        Reason::ClientError,
        Reason::InvalidSpec,
        Reason::NotPermitted,
        Reason::AccessUnknown,
        Reason::KubernetesApiError,
        Reason::Published,
        Reason::EventsPending,
        Reason::NoRecentJob,
        Reason::RecentJob,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Synced => "Synced",
            Reason::Suspended => "Suspended",
            Reason::Retrying => "Retrying",
            Reason::Throttled => "Throttled",
            Reason::AccessDenied => "AccessDenied",
            Reason::InvalidCredentials => "InvalidCredentials",
            Reason::ExpiredCredentials => "ExpiredCredentials",
            Reason::InvalidInput => "InvalidInput",
            Reason::NotFound => "NotFound",
            Reason::InvalidNextToken => "InvalidNextToken",
            Reason::RepeatedToken => "RepeatedToken",
            Reason::TooManyPages => "TooManyPages",
            Reason::ListingTooLarge => "ListingTooLarge",
            Reason::EndpointUnreachable => "EndpointUnreachable",
            Reason::Timeout => "Timeout",
            Reason::MalformedResponse => "MalformedResponse",
            Reason::ServiceError => "ServiceError",
            Reason::ClientError => "ClientError",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::NotPermitted => "NotPermitted",
            Reason::AccessUnknown => "AccessUnknown",
            Reason::KubernetesApiError => "KubernetesApiError",
            Reason::Published => "Published",
            Reason::EventsPending => "EventsPending",
            Reason::NoRecentJob => "NoRecentJob",
            Reason::RecentJob => "RecentJob",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reasons of the job Events.
pub mod event {
    /// Warning: a job reached CREATE FAILED.
    pub const JOB_FAILED: &str = "BatchInferenceJobFailed";
    /// Normal: a job reached ACTIVE.
    pub const JOB_COMPLETED: &str = "BatchInferenceJobCompleted";
    /// Normal: the first listing's summary of jobs that had already finished.
    pub const JOBS_DISCOVERED: &str = "JobsDiscovered";
    /// Warning: a job PENDING or IN PROGRESS for longer than spec.stuckAfter.
    pub const JOB_STUCK: &str = "BatchInferenceJobStuck";
    /// Warning: no new job within spec.expectNewJobWithin, once per episode.
    pub const NO_RECENT_JOB: &str = "NoRecentBatchInferenceJob";
    /// Warning: a poll failed for a reason not among the condition reasons (only from a
    /// hand-edited status; a poll failure's Event otherwise takes the failure's reason).
    pub const POLL_FAILED: &str = "PollFailed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_and_camel_case() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
    }

    #[test]
    fn the_readme_troubleshooting_table_lists_every_reason() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Troubleshooting by condition reason")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a troubleshooting section in README.md");
        for reason in Reason::ALL {
            assert!(
                table.contains(&format!("`{}`", reason.as_str())),
                "README.md's troubleshooting table does not list `{reason}`"
            );
        }
    }
}
