//! The outbox: announcements decided and not yet published, kept in status
//! (`status.ledger.outbox`). [`Outbox::push`] is the one way in and holds the cap for every kind;
//! [`Outbox::published`] the one way out.

use serde::{Deserialize, Serialize};

use crate::crd::PendingEvent;

/// Announcements waiting at most: past it a job's announcement waits in the ledger's `open`
/// list for room (see the operator's `events::ledger`); an episode's (overdue, poll failure) is not made.
pub const MAX_OUTBOX: usize = 100;

/// Announcements in the order they were decided, at most [`MAX_OUTBOX`].
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Outbox(Vec<PendingEvent>);

/// The outbox had no room: the announcement was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl Outbox {
    /// Queues `announcement` unless the outbox is full. One already waiting with the same kind,
    /// subject and reason is not queued twice (and counts as queued).
    pub fn push(&mut self, announcement: PendingEvent) -> Result<(), Full> {
        let waiting = self.0.iter().any(|e| {
            e.kind == announcement.kind
                && e.subject == announcement.subject
                && e.reason == announcement.reason
        });
        if waiting {
            return Ok(());
        }
        if !self.has_room() {
            return Err(Full);
        }
        self.0.push(announcement);
        Ok(())
    }

    pub fn has_room(&self) -> bool {
        self.0.len() < MAX_OUTBOX
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, PendingEvent> {
        self.0.iter()
    }

    /// The first `count` announcements went out: they leave.
    pub fn published(&mut self, count: usize) {
        self.published_except(count, &[]);
    }

    /// The first `count` announcements went out but for those at the indexes `kept`, which stay
    /// (first, in their order).
    pub fn published_except(&mut self, count: usize, kept: &[usize]) {
        let mut index = 0;
        self.0.retain(|_| {
            let stays = index >= count || kept.contains(&index);
            index += 1;
            stays
        });
    }

    /// Drops the notes (the cache's copy keeps no text it does not need; see
    /// `controller::CachedWatch`).
    pub fn blank_notes(&mut self) {
        for pending in &mut self.0 {
            pending.note = String::new();
        }
    }

    /// Whether an announcement waits whose note was dropped by [`Outbox::blank_notes`].
    pub fn lacks_notes(&self) -> bool {
        self.0.iter().any(|p| p.note.is_empty())
    }
}

impl<'a> IntoIterator for &'a Outbox {
    type Item = &'a PendingEvent;
    type IntoIter = std::slice::Iter<'a, PendingEvent>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AnnouncementKind;

    fn pending(kind: AnnouncementKind, subject: &str) -> PendingEvent {
        PendingEvent {
            kind,
            subject: subject.into(),
            job_name: String::new(),
            note: "n".into(),
            duration_seconds: None,
            reason: None,
        }
    }

    #[test]
    fn the_cap_holds_for_every_kind_and_a_repeat_is_queued_once() {
        use AnnouncementKind::*;
        let mut outbox = Outbox::default();
        for i in 0..MAX_OUTBOX {
            assert_eq!(outbox.push(pending(Failed, &format!("job-{i}"))), Ok(()));
        }
        for kind in [Failed, Completed, Discovered, Stuck, Overdue, PollFailed] {
            assert_eq!(outbox.push(pending(kind, "new")), Err(Full), "{kind:?}");
        }
        assert_eq!(
            outbox.push(pending(Failed, "job-3")),
            Ok(()),
            "already there"
        );
        assert_eq!(outbox.len(), MAX_OUTBOX);
        outbox.published(MAX_OUTBOX - 1);
        assert_eq!(outbox.push(pending(Overdue, "overdue:1")), Ok(()));
        assert_eq!(outbox.push(pending(Overdue, "overdue:1")), Ok(()));
        assert_eq!(outbox.len(), 2);
        outbox.published(10);
        assert!(outbox.is_empty());
    }

    /// Issue 25, item 7: an Event refused for its content stays and does not hold back the rest.
    #[test]
    fn entries_refused_for_their_content_stay_and_the_rest_go() {
        use AnnouncementKind::*;
        let mut outbox = Outbox::default();
        for subject in ["poison", "a", "b", "not-tried"] {
            outbox.push(pending(Failed, subject)).unwrap();
        }
        outbox.published_except(3, &[0]);
        let left: Vec<&str> = outbox.iter().map(|e| e.subject.as_str()).collect();
        assert_eq!(left, ["poison", "not-tried"]);
    }

    #[test]
    fn notes_blanked_are_seen_missing() {
        let mut outbox = Outbox::default();
        outbox.push(pending(AnnouncementKind::Stuck, "a")).unwrap();
        assert!(!outbox.lacks_notes());
        outbox.blank_notes();
        assert!(outbox.lacks_notes());
    }
}
