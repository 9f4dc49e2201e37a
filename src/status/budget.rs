//! The object's size. etcd refuses objects over 1.5 MiB; the status stays under a budget well
//! below that, whatever the listing holds, by showing fewer job summaries.

use crate::crd::SolutionVersionWatchStatus;

/// The status's budget in bytes of JSON: about half of etcd's limit, leaving room for metadata,
/// spec and managed fields.
pub const STATUS_BUDGET_BYTES: usize = 768 * 1024;

/// The status's size as JSON.
pub fn size(status: &SolutionVersionWatchStatus) -> usize {
    serde_json::to_vec(status).map_or(usize::MAX, |v| v.len())
}

/// Drops the oldest job summaries until the status fits the budget; returns how many went.
/// Counts, conditions and the ledger are never cut: they are bounded on their own.
pub fn fit(status: &mut SolutionVersionWatchStatus) -> usize {
    let mut over = size(status).saturating_sub(STATUS_BUDGET_BYTES);
    let mut dropped = 0;
    // Drop by estimate first (one serialization per summary), then check exactly.
    while over > 0 {
        let Some(job) = status.jobs.pop() else { break };
        over = over.saturating_sub(serde_json::to_vec(&job).map_or(0, |v| v.len() + 1));
        status.jobs_truncated = true;
        dropped += 1;
    }
    while size(status) > STATUS_BUDGET_BYTES && status.jobs.pop().is_some() {
        status.jobs_truncated = true;
        dropped += 1;
    }
    dropped
}
