//! Events, end to end: which to publish, exactly once, and publishing them.
//!
//! The vocabulary, used with these meanings throughout:
//! - An **announcement** is an Event the operator decided to publish: a [`PendingEvent`] of a
//!   kind (`Failed`, `Completed`, `Discovered`, `Stuck`, `Overdue`, `PollFailed`) about a
//!   **subject** (a job's ARN, or its name when the listing gave none; a baseline; an episode).
//!   The watch's UID, the Event's reason and the subject name the Event ([`name`]).
//! - The **ledger** (`status.ledger`, [`ledger`]) is the durable record that makes each job's
//!   announcement happen exactly once across restarts, replicas and listings that omit, repeat
//!   or reorder jobs. It keeps **job hashes** ([`ledger::JobHash`]): jobs awaited (`open`),
//!   finished ones accounted for (`finished`, after the `horizon`), and ones announced as stuck.
//! - The **baseline** is the first listing from a source (region and endpoint): what had
//!   already finished is history, summarised in one `Discovered` announcement.
//! - **Episodes** ([`episodes`]) are announced once each: a watch overdue for a new job (named
//!   by when the silence began), a poll failing (named by when Ready turned False, per reason).
//! - The **outbox** ([`Outbox`], `status.ledger.outbox`) holds announcements decided and not
//!   yet published. [`Outbox::push`] is the only way in and holds the cap for every kind; a job
//!   announcement that finds no room is **deferred**: it waits in `open` and is decided again.
//! - **Publishing** ([`publish`]) creates each Event under its name; one already there counts
//!   as published, and so does one this process published before ([`published`]: while status
//!   writes fail, an expired Event is not created again). The **delivery** ([`delivery`]) is what a publishing pass achieved: published
//!   entries leave the outbox, and the EventsPublished condition says whether any wait.
//!
//! The order, and why: a reconcile decides (pure), publishes the outbox, then writes status.
//! Publishing first is safe because Events are named by what they announce: a crash or a failed
//! write between the two only means the next reconcile decides them again and finds them there.

pub mod announcements;
pub mod delivery;
pub mod episodes;
pub mod ledger;
pub mod name;
pub use personalize_watch_api::outbox;
pub mod publish;
pub mod published;

pub use crate::crd::PendingEvent;
pub use delivery::{Delivery, after_publishing};
pub use name::{Announcement, Severity};
pub use outbox::{MAX_OUTBOX, Outbox};
pub use publish::{Published, Publisher};
