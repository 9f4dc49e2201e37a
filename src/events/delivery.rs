//! What publishing achieved, recorded in status (pure): published entries leave the outbox, and
//! the EventsPublished condition says whether any wait and why.

use jiff::Timestamp;

use crate::crd::SolutionVersionWatchStatus;
use crate::reasons::{ConditionStatus, ConditionType, Reason};
use crate::status::Conditions;

/// What publishing the outbox achieved: its first `published` entries are out (or were out
/// already) but for those in `kept`, which the API server refused for their content (they stay,
/// and do not hold back the rest); the first other failure, if any, stopped the rest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivery {
    pub published: usize,
    /// Indexes below `published` of entries refused for their content.
    pub kept: Vec<usize>,
    pub error: Option<String>,
}

/// The status after publishing: published entries leave the outbox, and EventsPublished says
/// whether any wait and why.
pub fn after_publishing(
    status: &mut SolutionVersionWatchStatus,
    delivery: &Delivery,
    generation: i64,
    now: Timestamp,
) {
    let waiting = match status.ledger.as_mut() {
        Some(ledger) => {
            ledger
                .outbox
                .published_except(delivery.published, &delivery.kept);
            ledger.outbox.len()
        }
        None => 0,
    };
    let mut c = Conditions::new(&mut status.conditions, generation, now);
    if waiting == 0 {
        c.set(
            ConditionType::EventsPublished,
            ConditionStatus::True,
            Reason::Published,
            "Every decided Event is published",
        );
    } else {
        let why = delivery.error.as_deref().unwrap_or("not tried yet");
        let message = format!("{waiting} Events wait to be published: {why}");
        c.set(
            ConditionType::EventsPublished,
            ConditionStatus::False,
            Reason::EventsPending,
            &message,
        );
    }
}
