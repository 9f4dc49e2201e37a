//! The five conditions (Ready, Stalled, Reconciling, EventsPublished, Overdue), written through
//! a helper that knows the generation and the time.
//! One condition per type; lastTransitionTime moves only when the status flips.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::SolutionVersionWatchStatus;
use crate::reasons::{ConditionStatus, ConditionType, Reason};
use crate::text::truncate_utf8;

use super::whole_seconds;

/// Condition messages are cut to this many bytes (they stay in the operator's cache).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

/// Sets conditions for one generation at one time.
pub struct Conditions<'a> {
    list: &'a mut Vec<Condition>,
    generation: i64,
    now: Timestamp,
}

impl<'a> Conditions<'a> {
    pub fn new(list: &'a mut Vec<Condition>, generation: i64, now: Timestamp) -> Self {
        Conditions {
            list,
            generation,
            now,
        }
    }

    pub fn set(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: &str,
    ) {
        let type_ = type_.as_str();
        let status = status.as_str();
        let message = truncate_utf8(message, MAX_MESSAGE_BYTES).to_string();
        // Exactly one per type: drop duplicates a hand edit may have left.
        let mut seen = false;
        self.list.retain(|c| {
            let keep = c.type_ != type_ || !seen;
            seen |= c.type_ == type_;
            keep
        });
        let now = Time(whole_seconds(self.now));
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status.to_string();
                c.reason = reason.as_str().to_string();
                c.message = message;
                c.observed_generation = Some(self.generation);
            }
            None => self.list.push(Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.as_str().to_string(),
                message,
                observed_generation: Some(self.generation),
                last_transition_time: now,
            }),
        }
        self.list.sort_by_key(|c| rank(&c.type_));
    }
}

/// Ready, Stalled, Reconciling, then any other type by name.
fn rank(type_: &str) -> (usize, String) {
    let known = ConditionType::ALL.iter().position(|t| t.as_str() == type_);
    (known.unwrap_or(ConditionType::ALL.len()), type_.to_string())
}

/// The condition of a type, if the status has one.
pub fn condition(status: &SolutionVersionWatchStatus, type_: ConditionType) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == type_.as_str())
}
