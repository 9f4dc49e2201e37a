//! Writing a reconcile's decision: publish the Events it decided ([`crate::events::publish`]),
//! then write the status ([`status_write`]), and record the written status in the metrics
//! ([`observe`]). This module is the orchestration: the conflict retries and leadership checks.
//!
//! Needs: the [`Context`] (client, publisher, metrics, settings, whether this instance leads),
//! the watch as cached, and the decision as a function of the previous status: on a 409 the
//! watch is read again and the decision, from the listing in hand, made again against it (no
//! second listing). Publishing comes first because Events are named by what they announce
//! (see [`crate::events`]); entries not published stay in the outbox.

pub mod merge_patch;
pub mod observe;
pub mod status_write;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use rand::Rng;
use tracing::debug;

use crate::controller::cache::CachedWatch;
use crate::crd::{SolutionVersionWatch, SolutionVersionWatchStatus};
use crate::error::{Error, Result};
use crate::events;
use crate::status::{self, Decision};

use super::Context;
use status_write::Written;

pub use status_write::FIELD_MANAGER;

/// Write conflicts retried within one reconcile (with a fresh copy each time) before the error
/// policy backs off.
const CONFLICT_RETRIES: u32 = 3;
const CONFLICT_PAUSE: Duration = Duration::from_millis(100);

/// What was written, for scheduling the next poll.
#[derive(Clone, Copy, Debug, Default)]
pub struct Persisted {
    /// Any job PENDING or IN PROGRESS.
    pub running: bool,
    /// Finished jobs whose announcement waits in the ledger for room in the outbox.
    pub deferred: usize,
    /// Announcements still in the outbox.
    pub waiting: usize,
}

/// The copy of the watch a write is decided against.
enum Base<'a> {
    /// The cache's copy, with every waiting announcement's note.
    Cached(&'a CachedWatch),
    /// Read from the API server: whole.
    Stored(Box<SolutionVersionWatch>),
}

impl Base<'_> {
    fn watch(&self) -> &SolutionVersionWatch {
        match self {
            Base::Cached(cached) => cached.watch(),
            Base::Stored(watch) => watch,
        }
    }
}

/// The decision as a function of the previous status.
pub type Decide<'a> = dyn Fn(Option<&SolutionVersionWatchStatus>) -> Decision + Sync + 'a;

pub async fn persist_and_publish(
    ctx: &Context,
    cached: &CachedWatch,
    decide: &Decide<'_>,
) -> Result<Persisted> {
    // Publishing needs the notes of waiting announcements, which the cache leaves out.
    let mut base = if cached.outbox_complete() {
        Base::Cached(cached)
    } else {
        match read_again(ctx, cached.watch()).await? {
            Some(full) => Base::Stored(Box::new(full)),
            None => return Ok(Persisted::default()),
        }
    };
    let mut conflicts = 0;
    loop {
        if !ctx.may_write() {
            debug!("not the leader any more: nothing written or published");
            return Ok(Persisted::default());
        }
        let (written, decision) = attempt(ctx, base.watch(), decide).await?;
        match written {
            Written::Done => return Ok(persisted(&decision)),
            Written::Gone => return Ok(Persisted::default()),
            Written::Conflict if conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                let pause = CONFLICT_PAUSE * 2u32.pow(conflicts);
                let pause = pause.mul_f64(rand::rng().random_range(0.5..=1.0));
                tokio::time::sleep(pause).await;
                match read_again(ctx, cached.watch()).await? {
                    Some(fresh) => base = Base::Stored(Box::new(fresh)),
                    None => return Ok(Persisted::default()),
                }
            }
            Written::Conflict => return Err(Error::WriteConflict(conflicts + 1)),
        }
    }
}

/// One attempt against `current`: decide, publish, write; metrics follow a done write.
async fn attempt(
    ctx: &Context,
    current: &SolutionVersionWatch,
    decide: &Decide<'_>,
) -> Result<(Written, Decision)> {
    let mut decision = decide(current.status.as_ref());
    if decision.omitted > 0 {
        debug!(
            jobs = decision.omitted,
            "the listing left out jobs seen before"
        );
    }
    let outbox = decision.status.ledger.as_ref().map(|l| &l.outbox);
    let delivery = match outbox {
        Some(outbox) => {
            ctx.events
                .publish_outbox(&ctx.metrics, current, outbox)
                .await
        }
        None => events::Delivery::default(),
    };
    let generation = current.metadata.generation.unwrap_or(0);
    let now = jiff::Timestamp::now();
    events::after_publishing(&mut decision.status, &delivery, generation, now);
    let listed_at = decision.status.last_sync_time.clone();
    if decision.from_listing {
        let heartbeat = ctx.settings.status_heartbeat;
        status::hold_quiet_listing(
            current.status.as_ref(),
            &mut decision.status,
            heartbeat,
            now,
        );
    }
    let written =
        status_write::write_status(&ctx.client, &ctx.metrics, current, &mut decision.status)
            .await?;
    if written == Written::Done {
        ctx.metrics.listing_omitted(decision.omitted);
        let synced = listed_at.map(|t| t.0.as_millisecond() as f64 / 1000.0);
        observe::record_written(&ctx.metrics, current, &decision.status, synced);
    }
    Ok((written, decision))
}

fn persisted(decision: &Decision) -> Persisted {
    Persisted {
        running: status::jobs_running(&decision.status),
        deferred: decision.deferred,
        waiting: decision
            .status
            .ledger
            .as_ref()
            .map_or(0, |l| l.outbox.len()),
    }
}

/// The watch as stored now; None when it is gone or was replaced by another of its name.
async fn read_again(
    ctx: &Context,
    watch: &SolutionVersionWatch,
) -> Result<Option<SolutionVersionWatch>> {
    let api: Api<SolutionVersionWatch> =
        Api::namespaced(ctx.client.clone(), &watch.namespace().unwrap_or_default());
    let fresh = api
        .get_opt(&watch.name_any())
        .await
        .map_err(|source| Error::ReadAgain { source })?;
    Ok(fresh.filter(|f| f.uid() == watch.uid()))
}
