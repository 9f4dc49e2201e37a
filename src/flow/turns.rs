//! Fair turns between keys (namespaces): waiters queue per key and keys are served round-robin,
//! so a key with many waiters waits behind itself, never in front of the others. The rate
//! limiter hands out tokens this way ([`crate::flow::rate`]), and [`Admission`] its slots for
//! reconciles.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

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

    /// Queues a waiter for `key`; it gets what [`Turns::grant`] hands it.
    pub fn wait(&mut self, key: &str) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let queue = self.queues.entry(key.to_string()).or_default();
        if queue.is_empty() {
            self.order.push_back(key.to_string());
        }
        queue.push_back(tx);
        rx
    }

    /// Gives `value` to the first live waiter of the key whose turn it is; back when no one
    /// waits (waiters that gave up pass their turn on).
    pub fn grant(&mut self, mut value: T) -> Result<(), T> {
        while let Some(key) = self.order.pop_front() {
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                self.queues.remove(&key);
            } else {
                self.order.push_back(key);
            }
            if let Some(waiter) = waiter {
                match waiter.send(value) {
                    Ok(()) => return Ok(()),
                    Err(back) => value = back,
                }
            }
        }
        Err(value)
    }
}

/// At most `slots` reconciles work at once; the others wait at the door, in their namespace's
/// turn. Waiting costs a small future: the work is allocated once admitted.
pub struct Admission {
    state: Mutex<AdmissionState>,
}

struct AdmissionState {
    free: usize,
    waiting: Turns<Permit>,
}

/// A slot; dropping it hands the slot to the next waiter in turn.
pub struct Permit {
    admission: Option<Arc<Admission>>,
}

impl Admission {
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Admission {
            state: Mutex::new(AdmissionState {
                free: slots.max(1),
                waiting: Turns::default(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot in `key`'s turn.
    pub async fn enter(self: &Arc<Self>, key: &str) -> Permit {
        let admitted = {
            let mut state = self.state();
            if state.waiting.is_empty() && state.free > 0 {
                state.free -= 1;
                return Permit {
                    admission: Some(self.clone()),
                };
            }
            state.waiting.wait(key)
        };
        match admitted.await {
            Ok(permit) => permit,
            // The sender is only dropped with the Admission, which this Arc keeps alive.
            Err(_) => Permit { admission: None },
        }
    }

    /// Slots neither held nor handed out.
    pub fn free(&self) -> usize {
        self.state().free
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(admission) = self.admission.take() else {
            return;
        };
        let mut state = admission.state();
        let next = Permit {
            admission: Some(admission.clone()),
        };
        if let Err(mut unused) = state.waiting.grant(next) {
            // Nobody waits: the slot is free again (disarmed, so this drop does not recurse).
            unused.admission = None;
            state.free += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
