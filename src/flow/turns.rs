//! Fair turns between keys (namespaces): waiters queue per key and keys are served round-robin,
//! so a key with many waiters waits behind itself, never in front of the others. The rate
//! limiter hands out tokens this way ([`crate::flow::rate`]), and [`Admission`] its slots for
//! reconciles. A reconcile gives its slot up while it waits for a rate token ([`Slot::away`]),
//! and one key holds at most [`Admission::per_key`] slots, so neither a namespace's long
//! listings nor its calls that never answer keep the other namespaces out.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Where a waiter queues among its key's waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Behind them: first come, first served.
    Last,
    /// Ahead of them, not of the other keys: for work that serves several of the key's
    /// waiters at once, which would otherwise queue behind the very work it saves.
    First,
}

/// Waiters by key, first come first served within a key, keys in turn.
pub struct Turns<T> {
    queues: HashMap<String, VecDeque<oneshot::Sender<T>>>,
    /// Keys with waiters, in the order they get their next turn.
    order: VecDeque<String>,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns {
            queues: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T> Turns<T> {
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Queues a waiter for `key` behind the key's others; it gets what [`Turns::grant`] hands
    /// it.
    pub fn wait(&mut self, key: &str) -> oneshot::Receiver<T> {
        self.queue(key, Place::Last)
    }

    /// Queues a waiter for `key` at `place` among the key's waiters; the key keeps its turn
    /// among the others.
    pub fn queue(&mut self, key: &str, place: Place) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let queue = self.queues.entry(key.to_string()).or_default();
        if queue.is_empty() {
            self.order.push_back(key.to_string());
        }
        match place {
            Place::Last => queue.push_back(tx),
            Place::First => queue.push_front(tx),
        }
        rx
    }

    /// Gives `value` to the first live waiter of the key whose turn it is; back when no one
    /// waits (waiters that gave up pass their turn on).
    pub fn grant(&mut self, mut value: T) -> Result<(), T> {
        while let Some((_, waiter)) = self.next_waiter(|_| true) {
            match waiter.send(value) {
                Ok(()) => return Ok(()),
                Err(back) => value = back,
            }
        }
        Err(value)
    }

    /// The first waiter of the first key in turn that `eligible` accepts, with its key; the
    /// keys passed over keep their place.
    pub fn next_waiter(
        &mut self,
        eligible: impl Fn(&str) -> bool,
    ) -> Option<(String, oneshot::Sender<T>)> {
        loop {
            let position = self.order.iter().position(|k| eligible(k))?;
            let key = self.order.remove(position)?;
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                self.queues.remove(&key);
            } else {
                self.order.push_back(key.clone());
            }
            if let Some(waiter) = waiter {
                return Some((key, waiter));
            }
        }
    }
}

/// At most `slots` reconciles work at once, at most [`Admission::per_key`] of one key; the
/// others wait at the door, in their namespace's turn. Waiting costs a small future: the work
/// is allocated once admitted.
pub struct Admission {
    state: Mutex<AdmissionState>,
    per_key: usize,
}

struct AdmissionState {
    free: usize,
    held: HashMap<String, usize>,
    waiting: Turns<Permit>,
}

impl AdmissionState {
    fn held(&self, key: &str) -> usize {
        self.held.get(key).copied().unwrap_or(0)
    }

    fn take(&mut self, key: &str) {
        self.free -= 1;
        *self.held.entry(key.to_string()).or_default() += 1;
    }

    fn give_back(&mut self, key: &str) {
        self.free += 1;
        if let Some(n) = self.held.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(key);
            }
        }
    }
}

/// A slot of `key`; dropping it hands the slot to the next waiter in turn.
pub struct Permit {
    admission: Option<Arc<Admission>>,
    key: String,
}

impl Admission {
    /// `slots` at once; one key holds at most three quarters of them, leaving at least one
    /// for the others (all of one or two).
    pub fn new(slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        let per_key = if slots > 2 {
            slots - (slots / 4).max(1)
        } else {
            slots
        };
        Arc::new(Admission {
            state: Mutex::new(AdmissionState {
                free: slots,
                held: HashMap::new(),
                waiting: Turns::default(),
            }),
            per_key,
        })
    }

    fn state(&self) -> MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most slots one key holds at once: the rest stay for the other keys, so calls of
    /// one namespace that hang until their timeout cannot keep every other namespace out.
    pub fn per_key(&self) -> usize {
        self.per_key
    }

    /// Waits for a slot in `key`'s turn.
    pub async fn enter(self: &Arc<Self>, key: &str) -> Permit {
        let admitted = {
            let mut state = self.state();
            // A free slot means every waiter's key is at its bound (slots go to waiters first).
            if state.free > 0 && state.held(key) < self.per_key {
                state.take(key);
                return self.permit(key);
            }
            state.waiting.wait(key)
        };
        match admitted.await {
            Ok(permit) => permit,
            // The sender is only dropped with the Admission, which this Arc keeps alive.
            Err(_) => Permit {
                admission: None,
                key: key.to_string(),
            },
        }
    }

    /// Slots neither held nor handed out.
    pub fn free(&self) -> usize {
        self.state().free
    }

    fn permit(self: &Arc<Self>, key: &str) -> Permit {
        Permit {
            admission: Some(self.clone()),
            key: key.to_string(),
        }
    }

    /// `key` gives a slot back: it goes to the first waiter in turn whose key is under its
    /// bound, or stays free.
    fn release(self: &Arc<Self>, key: &str) {
        let mut guard = self.state();
        let state = &mut *guard;
        state.give_back(key);
        while state.free > 0 {
            let held = &state.held;
            let under_bound = |k: &str| held.get(k).copied().unwrap_or(0) < self.per_key;
            let Some((key, waiter)) = state.waiting.next_waiter(under_bound) else {
                return;
            };
            state.take(&key);
            if let Err(mut unused) = waiter.send(self.permit(&key)) {
                // It gave up: disarmed, so dropping it does not release again under this lock.
                unused.admission = None;
                state.give_back(&key);
            }
        }
    }
}

impl Permit {
    /// Gives the slot up while `wait` runs, then waits for one again in the key's turn.
    pub async fn released_during<F: Future>(&mut self, wait: F) -> F::Output {
        let Some(admission) = self.admission.take() else {
            return wait.await;
        };
        admission.release(&self.key);
        let out = wait.await;
        *self = admission.enter(&self.key).await;
        out
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            admission.release(&self.key);
        }
    }
}

/// A reconcile's slot, shared with the listing it runs, which gives it up while it waits for
/// its namespace's rate ([`Slot::away`]): a reconcile waiting for a token keeps nobody out.
pub struct Slot(tokio::sync::Mutex<Permit>);

impl Slot {
    pub fn new(permit: Permit) -> Self {
        Slot(tokio::sync::Mutex::new(permit))
    }

    /// Runs `wait` without the slot, and takes one again after it.
    pub async fn away<F: Future>(&self, wait: F) -> F::Output {
        self.0.lock().await.released_during(wait).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_waiter_placed_first_goes_ahead_of_its_key_not_of_the_others() {
        let mut turns: Turns<()> = Turns::default();
        let queued = [
            ("a1", Place::Last),
            ("a2", Place::Last),
            ("b3", Place::Last),
            ("a4", Place::First),
            ("b5", Place::Last),
        ];
        let mut waiters: Vec<(&str, oneshot::Receiver<()>)> = queued
            .iter()
            .map(|(name, place)| (*name, turns.queue(&name[..1], *place)))
            .collect();
        let mut order = Vec::new();
        while turns.grant(()).is_ok() {
            let granted = waiters
                .iter_mut()
                .position(|(_, rx)| rx.try_recv().is_ok())
                .unwrap();
            order.push(waiters.remove(granted).0);
        }
        assert_eq!(order, ["a4", "b3", "a1", "b5", "a2"]);
    }

    #[tokio::test]
    async fn slots_go_round_robin_between_namespaces() {
        let admission = Admission::new(1);
        let held = admission.enter("a").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, key) in ["a", "a", "a", "a", "b", "a", "b"].iter().enumerate() {
            let (admission, order) = (admission.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = admission.enter(key).await;
                order.lock().unwrap().push(format!("{key}{i}"));
            }));
            // Queue in this order.
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, ["a0", "b4", "a1", "b6", "a2", "a3", "a5"]);
        assert_eq!(admission.free(), 1, "every slot came back");
    }

    /// One namespace holds at most three quarters of the slots: another finds one free at once.
    #[tokio::test]
    async fn one_namespace_leaves_a_quarter_of_the_slots_to_the_others() {
        let bounds = [1, 2, 3, 4, 16].map(|slots| Admission::new(slots).per_key());
        assert_eq!(bounds, [1, 2, 2, 3, 12]);
        let admission = Admission::new(8);
        assert_eq!(admission.per_key(), 6);
        let mut crowd = Vec::new();
        for _ in 0..6 {
            crowd.push(admission.enter("crowd").await);
        }
        let seventh = tokio::spawn({
            let admission = admission.clone();
            async move { admission.enter("crowd").await }
        });
        tokio::task::yield_now().await;
        assert_eq!(admission.free(), 2, "the crowd's seventh waits");
        let lone = tokio::time::timeout(Duration::from_secs(5), admission.enter("lone"))
            .await
            .expect("a slot for another namespace");
        drop(lone);
        assert!(!seventh.is_finished());
        crowd.pop();
        let seventh = tokio::time::timeout(Duration::from_secs(5), seventh)
            .await
            .expect("the crowd's own slot went to its waiter")
            .unwrap();
        assert_eq!(admission.free(), 2);
        drop((crowd, seventh));
        assert_eq!(admission.free(), 8, "every slot came back");
    }

    /// A reconcile waiting for a rate token does not hold its slot: the next in turn works.
    #[tokio::test]
    async fn a_slot_is_given_up_while_its_holder_waits() {
        let admission = Admission::new(1);
        let slot = Arc::new(Slot::new(admission.enter("crowd").await));
        let (token, wait) = oneshot::channel::<()>();
        let away = tokio::spawn({
            let slot = slot.clone();
            async move { slot.away(wait).await }
        });
        let lone = tokio::time::timeout(Duration::from_secs(5), admission.enter("lone"))
            .await
            .expect("the slot was free while its holder waited");
        token.send(()).unwrap();
        tokio::task::yield_now().await;
        assert!(!away.is_finished(), "the holder waits for a slot again");
        drop(lone);
        tokio::time::timeout(Duration::from_secs(5), away)
            .await
            .expect("back in after the lone watch")
            .unwrap()
            .unwrap();
        assert_eq!(admission.free(), 0, "the holder has its slot again");
        drop(slot);
        assert_eq!(admission.free(), 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_lose_the_slot() {
        let admission = Admission::new(1);
        let held = admission.enter("a").await;
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), admission.enter("b")).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(admission.free(), 1);
        let _again = admission.enter("c").await;
        assert_eq!(admission.free(), 0);
    }
}
