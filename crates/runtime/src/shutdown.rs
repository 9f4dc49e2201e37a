//! One shutdown type for the whole process: a cancellation token that SIGTERM or SIGINT
//! (Ctrl-C) cancels, and that anything can cancel or wait on.

use tokio_util::sync::CancellationToken;

/// Cancelled once, on a signal or by [`Shutdown::trigger`]; clones share the state.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(CancellationToken::new())
    }

    /// A shutdown that SIGTERM or SIGINT triggers.
    pub fn on_signal() -> Self {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            signal().await;
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once triggered; owns its state, so it can be handed to another task.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        self.0.clone().cancelled_owned()
    }

    /// A shutdown that triggers with this one, and that can also be triggered alone.
    pub fn child(&self) -> Shutdown {
        Shutdown(self.0.child_token())
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
            if let Err(e) = ctrl_c.await {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C either");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_stops_with_its_parent_and_alone() {
        let parent = Shutdown::new();
        let child = parent.child();
        let other = parent.child();
        child.trigger();
        assert!(child.is_triggered() && !parent.is_triggered() && !other.is_triggered());
        parent.trigger();
        other.wait().await;
        assert!(other.is_triggered());
    }
}
