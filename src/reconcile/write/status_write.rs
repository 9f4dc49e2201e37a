//! The status write: the JSON merge patch from the status read to the status decided, sent to
//! the status subresource on condition that the stored object is still the one read (its
//! resourceVersion). Needs: a client allowed to patch `solutionversionwatches/status`, and the
//! metrics to count writes and conflicts. The job list is compared by digest, so the base may be
//! the cache's copy, which has none.

use kube::Resource;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::json;
use tracing::debug;

use crate::crd::{JobSummary, SolutionVersionWatch, SolutionVersionWatchStatus};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::status;

use super::merge_patch;

pub const FIELD_MANAGER: &str = "personalize-watch";
/// The media type of an answer that is the object's metadata only (what kube asks for in
/// `Api::patch_metadata`).
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// How a status write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The watch changed since it was read.
    Conflict,
    /// The watch is gone.
    Gone,
}

/// A status write: a merge patch with the resourceVersion it was computed from.
#[derive(Serialize)]
struct StatusWrite<'a> {
    metadata: Precondition<'a>,
    status: StatusPatch<'a>,
}

#[derive(Serialize)]
struct Precondition<'a> {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<&'a str>,
}

/// The merge patch from one status to the next. The job list is serialized straight from the
/// status, never as a JSON value: at 200 summaries with 1 KiB failure reasons a value of it is
/// several times the list, and a write holds what it sends while the API server answers.
#[derive(Serialize, Debug)]
pub struct StatusPatch<'a> {
    /// Every field but the job list: what changed, null for what went away.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// None: the list is unchanged (left out); Some(None): removed; Some(Some): the new list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Option<&'a [JobSummary]>>,
}

impl StatusPatch<'_> {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.jobs.is_none()
    }
}

/// The merge patch from `base` to `status`, whose job list `jobs` was taken out of it: the other
/// fields are compared as JSON values, the list (most of the status) never becomes one. The list
/// goes in only when its digest changed: the cache's copy of `base` does not hold it.
pub fn status_patch<'a>(
    base: Option<&SolutionVersionWatchStatus>,
    status: &SolutionVersionWatchStatus,
    jobs: &'a [JobSummary],
) -> StatusPatch<'a> {
    let without_jobs = |s: serde_json::Value| match s {
        serde_json::Value::Object(mut fields) => {
            fields.remove("jobs");
            serde_json::Value::Object(fields)
        }
        other => other,
    };
    let fields = match merge_patch::diff(&without_jobs(json!(base)), &without_jobs(json!(status))) {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    let same_jobs = base.and_then(|b| b.jobs_digest.as_ref()) == status.jobs_digest.as_ref();
    let jobs = if same_jobs {
        None
    } else if jobs.is_empty() {
        Some(None)
    } else {
        Some(Some(jobs))
    };
    StatusPatch { fields, jobs }
}

/// Whether `status` holds nothing `base` does not: equal but for the job list, whose digest
/// is the same (the cache's copy of `base` has no job list).
pub fn unchanged(
    base: Option<&SolutionVersionWatchStatus>,
    status: &SolutionVersionWatchStatus,
) -> bool {
    base.is_some_and(|base| {
        status.jobs_digest.is_some()
            && status.last_sync_time == base.last_sync_time
            && status::equal_but_for_sync(base, status)
    })
}

/// Writes what changed since `base` as a merge patch, on condition that the stored object is
/// still `base` (its resourceVersion). Nothing to write is a write done. The job list leaves
/// `status` for the request body (nothing after the write reads it): a reconcile waiting for the
/// API server holds one copy of it, not two.
pub async fn write_status(
    client: &kube::Client,
    metrics: &Metrics,
    base: &SolutionVersionWatch,
    status: &mut SolutionVersionWatchStatus,
) -> Result<Written> {
    // The common case, a quiet poll: nothing to write, found without serializing anything.
    if unchanged(base.status.as_ref(), status) {
        return Ok(Written::Done);
    }
    let jobs = std::mem::take(&mut status.jobs);
    let patch = status_patch(base.status.as_ref(), status, &jobs);
    if patch.is_empty() {
        return Ok(Written::Done);
    }
    let write = StatusWrite {
        metadata: Precondition {
            resource_version: base.metadata.resource_version.as_deref(),
        },
        status: patch,
    };
    let request = status_write_request(base, &write)?;
    drop(write);
    drop(jobs);
    match send_discarding_answer(client, request).await {
        Ok(()) => {
            metrics.status_written();
            Ok(Written::Done)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            metrics.status_conflict();
            debug!("status write conflict: reading the watch again");
            Ok(Written::Conflict)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Written::Gone),
        Err(source) => Err(Error::WriteStatus { source }),
    }
}

/// The PATCH of `base`'s status subresource, its body serialized once. The answer asked for is
/// the object's metadata only: by default it is the whole object, job list and all, which the
/// API server would encode and send and the client read for nothing (the watch stream brings
/// the object to the cache). Errors still come back as the API server's Status.
fn status_write_request(
    base: &SolutionVersionWatch,
    write: &StatusWrite<'_>,
) -> Result<http::Request<Vec<u8>>> {
    let namespace = base.namespace().unwrap_or_default();
    let url = SolutionVersionWatch::url_path(&(), Some(&namespace));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut request = kube::core::Request::new(url)
        .patch_subresource("status", &base.name_any(), &params, &Patch::Merge(write))
        .map_err(|e| Error::WriteStatus {
            source: kube::Error::BuildRequest(e),
        })?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(METADATA_ONLY),
    );
    // Serializing grew the body by doubling; the write holds it until the API server answers.
    request.body_mut().shrink_to_fit();
    Ok(request)
}

/// Sends `request` and reads the answer without keeping it (nothing in it is needed). Errors
/// come back as the API server's Status.
async fn send_discarding_answer(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> kube::Result<()> {
    let mut answer = client.request_stream(request).await?;
    // Read to the end so the connection can carry the next request.
    futures::io::copy_buf(&mut answer, &mut futures::io::sink())
        .await
        .map_err(kube::Error::ReadEvents)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn with_jobs(names: &[&str]) -> SolutionVersionWatchStatus {
        let jobs: Vec<JobSummary> = names
            .iter()
            .map(|n| JobSummary {
                name: n.to_string(),
                ..Default::default()
            })
            .collect();
        SolutionVersionWatchStatus {
            jobs_digest: Some(status::jobs::digest_of(&jobs, false)),
            jobs,
            ..Default::default()
        }
    }

    /// The patch as the API server receives it.
    fn sent(base: &SolutionVersionWatchStatus, next: &SolutionVersionWatchStatus) -> Value {
        serde_json::to_value(patch(base, next)).unwrap()
    }

    /// The patch as `write_status` makes it: the job list taken out of `next` first.
    fn patch<'a>(
        base: &SolutionVersionWatchStatus,
        next: &'a SolutionVersionWatchStatus,
    ) -> StatusPatch<'a> {
        let fields = SolutionVersionWatchStatus {
            jobs: Vec::new(),
            ..next.clone()
        };
        status_patch(Some(base), &fields, &next.jobs)
    }

    #[test]
    fn the_job_list_is_written_only_when_its_digest_changed() {
        let stored = with_jobs(&["a", "b"]);
        // The cache's copy: no list, the digest.
        let cached = SolutionVersionWatchStatus {
            jobs: Vec::new(),
            ..stored.clone()
        };
        let same = with_jobs(&["a", "b"]);
        assert!(patch(&cached, &same).is_empty());
        assert_eq!(sent(&cached, &same), json!({}));
        let changed = with_jobs(&["c"]);
        let patch = sent(&cached, &changed);
        assert_eq!(
            patch["jobs"],
            json!([{"name": "c", "arn": "", "status": ""}])
        );
        assert_eq!(patch["jobsDigest"], json!(changed.jobs_digest));
        let none = with_jobs(&[]);
        let removed = sent(&cached, &none);
        assert!(removed.as_object().unwrap().contains_key("jobs"));
        assert_eq!(removed["jobs"], Value::Null);
        assert!(
            sent(&stored, &none)
                .as_object()
                .unwrap()
                .contains_key("jobs"),
            "from a full copy too"
        );
        assert!(
            !sent(&stored, &stored)
                .as_object()
                .unwrap()
                .contains_key("jobs"),
            "a full copy with the same list sends none"
        );
    }
}
