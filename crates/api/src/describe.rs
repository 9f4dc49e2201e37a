//! Short descriptions of a watch's figures, the same in the operator's Events and conditions
//! and in the kubectl plugin.

use jiff::SignedDuration;

use crate::crd::JobCounts;

/// "12 jobs: 8 active, 2 failed, 2 pending, 0 in progress".
pub fn describe_counts(c: &JobCounts) -> String {
    let mut text = format!(
        "{} jobs: {} active, {} failed, {} pending, {} in progress",
        c.total, c.active, c.failed, c.pending, c.in_progress
    );
    if c.other > 0 {
        text.push_str(&format!(", {} in other states", c.other));
    }
    text
}

/// "2h5m10s", "45s": whole seconds, largest units first.
pub fn human_duration(d: SignedDuration) -> String {
    let total = d.as_secs().max(0);
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}
