//! The names of the Events this process published, or found already there: remembered so that
//! an announcement whose status write keeps failing is not created again each time its Event
//! expires (the API server's `--event-ttl`, 1 h by default). Published announcements leave the
//! outbox only when a status write records it; until then every reconcile decides them again,
//! and without this memory each expiry would bring a duplicate. Bounded: past [`MAX_REMEMBERED`]
//! names the oldest go (such an announcement may be created once more after its Event expired).
//! A restart forgets; docs/reliability.md states the bound.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Names remembered; one is about 100 bytes, so about 2 MiB at most with its index.
pub const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug, Default)]
pub struct PublishedNames {
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    order: VecDeque<String>,
    names: HashSet<String>,
}

impl PublishedNames {
    /// Whether this process published the Event `name` (or found it there) already.
    pub fn contains(&self, name: &str) -> bool {
        self.lock().names.contains(name)
    }

    /// Remembers `name`; the oldest name goes past the bound.
    pub fn remember(&self, name: &str) {
        let mut remembered = self.lock();
        if !remembered.names.insert(name.to_string()) {
            return;
        }
        remembered.order.push_back(name.to_string());
        if remembered.order.len() > MAX_REMEMBERED
            && let Some(oldest) = remembered.order.pop_front()
        {
            remembered.names.remove(&oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_name_once_and_forgets_the_oldest_past_the_bound() {
        let names = PublishedNames::default();
        names.remember("a");
        names.remember("a");
        assert_eq!(names.len(), 1);
        for n in 0..MAX_REMEMBERED {
            names.remember(&format!("n{n}"));
        }
        assert_eq!(names.len(), MAX_REMEMBERED);
        assert!(!names.contains("a"), "the oldest went");
        assert!(names.contains("n0") && names.contains(&format!("n{}", MAX_REMEMBERED - 1)));
    }
}
