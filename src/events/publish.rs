//! Publishing: each outbox entry becomes an events.k8s.io/v1 Event under its derived name
//! ([`super::name`]). Publishing the same Event twice (a retry, a restart, a second writer) finds
//! it already there (409 AlreadyExists) and counts as done, so no LIST-then-create is needed
//! and no series ever folds two jobs together. Needs: a client allowed to create Events in the
//! watch's namespace, and the metrics to count what was created or refused.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;
use tracing::{debug, info, warn};

use crate::crd::{AnnouncementKind, PendingEvent, SolutionVersionWatch};
use crate::metrics::Metrics;
use crate::text::truncate_utf8;

use super::delivery::Delivery;
use super::ledger::MAX_NOTE_BYTES;
use super::name::{Announcement, event_name};
use super::outbox::Outbox;
use super::published::PublishedNames;

/// Kind used in the secondary reference that names a job (not a Kubernetes object).
pub const JOB_KIND: &str = "BatchInferenceJob";
pub const JOB_API_VERSION: &str = "personalize.amazonaws.com/v1";
pub const REPORTING_CONTROLLER: &str = "personalize-watch.dev/operator";
/// The API server refuses reportingInstance over 128 characters.
const MAX_INSTANCE: usize = 128;

/// What happened to a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Created,
    /// Created before (by an earlier attempt or another replica).
    AlreadyThere,
}

/// Content refusals in a row after which a publishing pass stops (see
/// [`Publisher::publish_outbox`]).
pub const REFUSALS_IN_A_ROW: usize = 3;

/// Creates Events for one operator instance.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
    /// What this process published: not created again after it expired.
    published: Arc<PublishedNames>,
}

impl Publisher {
    pub fn new(client: Client, instance: &str) -> Self {
        Publisher {
            client,
            instance: truncate_utf8(instance, MAX_INSTANCE).to_string(),
            published: Arc::default(),
        }
    }

    /// Publishes `outbox` in order. An Event refused for its content (422 Invalid, 400 Bad
    /// Request: an admission policy, a validation) stays pending and the rest go on, until
    /// [`REFUSALS_IN_A_ROW`] of them: then the refusal is about Events, not one Event (a policy
    /// refusing all), and trying the whole outbox on every reconcile would only load the API
    /// server. Any other refusal stops the rest (whatever refused one will refuse the next), and
    /// they wait for the next reconcile.
    pub async fn publish_outbox(
        &self,
        metrics: &Metrics,
        watch: &SolutionVersionWatch,
        outbox: &Outbox,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        let mut refused_in_a_row = 0;
        for (index, pending) in outbox.iter().enumerate() {
            let announcement = Announcement::of(pending);
            match self.publish(watch, &announcement).await {
                Ok(published) => {
                    if published == Published::Created {
                        metrics.event_published(announcement.reason);
                        observe_duration(metrics, pending);
                        info!(
                            reason = announcement.reason,
                            job = pending.job_name,
                            "published event"
                        );
                    } else {
                        debug!(
                            reason = announcement.reason,
                            job = pending.job_name,
                            "event already published"
                        );
                    }
                    delivery.published += 1;
                    refused_in_a_row = 0;
                }
                Err(e) => {
                    let why = refusal(&e);
                    metrics.event_refused(&refusal_reason(&e));
                    warn!(
                        reason = announcement.reason,
                        job = pending.job_name,
                        error = why,
                        "could not publish the event; it stays pending"
                    );
                    delivery.error.get_or_insert(why);
                    if !refused_for_its_content(&e) {
                        break;
                    }
                    delivery.kept.push(index);
                    delivery.published += 1;
                    refused_in_a_row += 1;
                    if refused_in_a_row == REFUSALS_IN_A_ROW {
                        break;
                    }
                }
            }
        }
        delivery
    }

    /// Creates the Event about `watch`, unless it exists already or this process published it
    /// before (it may have expired since: see [`super::published`]).
    pub async fn publish(
        &self,
        watch: &SolutionVersionWatch,
        announcement: &Announcement,
    ) -> Result<Published, kube::Error> {
        let event = self.event(watch, announcement);
        let name = event.metadata.name.clone().unwrap_or_default();
        if self.published.contains(&name) {
            return Ok(Published::AlreadyThere);
        }
        let namespace = watch.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let published = match api.create(&PostParams::default(), &event).await {
            Ok(_) => Published::Created,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                Published::AlreadyThere
            }
            Err(e) => return Err(e),
        };
        self.published.remember(&name);
        Ok(published)
    }

    fn event(&self, watch: &SolutionVersionWatch, a: &Announcement) -> Event {
        let uid = watch.uid().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(&watch.name_any(), &uid, a.reason, &a.subject)),
                namespace: watch.namespace(),
                ..Default::default()
            },
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            action: Some("Poll".into()),
            reason: Some(a.reason.into()),
            note: Some(truncate_utf8(&a.note, MAX_NOTE_BYTES).to_string()),
            type_: Some(a.severity.as_str().into()),
            regarding: Some(watch.object_ref(&())),
            related: a.job_name.as_ref().map(|name| ObjectReference {
                api_version: Some(JOB_API_VERSION.into()),
                kind: Some(JOB_KIND.into()),
                name: Some(name.clone()),
                namespace: watch.namespace(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A finished job's duration goes into the histogram when its Event is created: once per job,
/// across restarts and replicas (a later publish finds the Event there).
fn observe_duration(metrics: &Metrics, pending: &PendingEvent) {
    let outcome = match pending.kind {
        AnnouncementKind::Completed => "completed",
        AnnouncementKind::Failed => "failed",
        _ => return,
    };
    if let Some(seconds) = pending.duration_seconds {
        metrics.job_finished(outcome, seconds as f64);
    }
}

/// What the API server said when it refused an Event (its message, not the whole status).
fn refusal(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}

/// Whether the API server refused this Event for what it says (a validation, an admission
/// policy): the next one may well go through.
fn refused_for_its_content(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 || s.code == 400)
}

/// The API server's reason for refusing a call (Forbidden, Invalid, ...), or the client's.
fn refusal_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.reason.is_empty() => s.reason.clone(),
        kube::Error::Api(s) => format!("HTTP{}", s.code),
        _ => "Unreachable".into(),
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::crd::SolutionVersionWatchSpec;

    const SV: &str = "arn:aws:personalize:us-east-1:123456789012:solution/s/v1";

    fn failed(n: usize) -> PendingEvent {
        PendingEvent {
            kind: AnnouncementKind::Failed,
            subject: format!("{SV}/job-{n}"),
            job_name: format!("job-{n}"),
            note: "CREATE FAILED".into(),
            duration_seconds: None,
            reason: None,
        }
    }

    /// Publishes an outbox of `pending` Events to an API server answering with `answers` in
    /// turn; the delivery and how many creates were asked for.
    async fn publish_against(pending: usize, answers: &[u16]) -> (Delivery, usize) {
        crate::install_crypto_provider();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let answers = answers.to_vec();
        let api_server = tokio::spawn(async move {
            let mut asked = 0;
            while let Some((_, send)) = handle.next_request().await {
                let code = answers.get(asked).copied().unwrap_or(201);
                asked += 1;
                let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "Invalid", "code": code, "message": "refused by a test policy"});
                let body = if code == 201 { json!({}) } else { body };
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(body.to_string().into_bytes()))
                        .unwrap(),
                );
            }
            asked
        });
        let publisher = Publisher::new(Client::new(service, "default"), "test");
        let mut watch = SolutionVersionWatch::new("w", SolutionVersionWatchSpec::watching(SV));
        watch.metadata.namespace = Some("default".into());
        watch.metadata.uid = Some("uid-1".into());
        let mut outbox = Outbox::default();
        for n in 0..pending {
            outbox.push(failed(n)).unwrap();
        }
        let delivery = publisher
            .publish_outbox(&Metrics::new(), &watch, &outbox)
            .await;
        drop(publisher);
        (delivery, api_server.await.unwrap())
    }

    /// One Event refused for its content does not hold back the others.
    #[tokio::test]
    async fn a_refused_event_is_kept_and_the_rest_go_out() {
        let (delivery, asked) = publish_against(5, &[422, 201, 400, 201, 201]).await;
        assert_eq!(asked, 5);
        assert_eq!(delivery.published, 5);
        assert_eq!(delivery.kept, vec![0, 2]);
        assert!(delivery.error.is_some());
    }

    /// A policy refusing every Event costs a few requests per pass, not one per pending Event.
    #[tokio::test]
    async fn refusals_in_a_row_end_the_pass() {
        let (delivery, asked) = publish_against(100, &[201, 422, 422, 422, 201]).await;
        assert_eq!(asked, 1 + REFUSALS_IN_A_ROW);
        assert_eq!(delivery.published, 1 + REFUSALS_IN_A_ROW);
        assert_eq!(delivery.kept, vec![1, 2, 3]);
    }

    /// Any other refusal (here Forbidden) stops the pass at once: the entries after it wait.
    #[tokio::test]
    async fn another_refusal_stops_the_pass() {
        let (delivery, asked) = publish_against(5, &[201, 403]).await;
        assert_eq!(asked, 2);
        assert_eq!(delivery.published, 1);
        assert!(delivery.kept.is_empty());
    }
}
