//! The watches that keep [`Access`] current while the operator runs: the namespaces' policy
//! annotations and the account-roles ConfigMap. A change is announced as [`Affected`], so the
//! controller reconciles the watches it concerns at once, without a restart.
//!
//! Fail closed: the controller starts only after the first complete listing of each source
//! ([`Sources::start`] resolves then), and a namespace not seen yet has no policy.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::access::{Access, AccountRoles, PolicyAnnotations, is_access_annotation};
use crate::controller::backoff::WatchBackoff;

/// What changed, so which watches to reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affected {
    /// The policy of this namespace: its watches.
    Namespace(String),
    /// The roles of these accounts: the watches naming them.
    Accounts(HashSet<String>),
}

/// Where the access inputs come from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The namespaces whose watches this instance handles; empty: all.
    pub namespaces: Vec<String>,
    /// The account-roles ConfigMap, `(namespace, name)`.
    pub account_roles: Option<(String, String)>,
}

impl Sources {
    /// Starts following every source; resolves once each has been listed completely.
    /// Changes after that go to `changed`.
    pub async fn start(
        self,
        client: Client,
        access: Arc<Access>,
        changed: broadcast::Sender<Affected>,
    ) {
        let mut synced = Vec::new();
        for api in self.namespace_apis(&client) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            synced.push(rx);
            let stream = watcher(api.0, api.1).backoff(WatchBackoff::default());
            tokio::spawn(follow_namespaces(
                stream,
                access.clone(),
                changed.clone(),
                tx,
            ));
        }
        if let Some((namespace, name)) = &self.account_roles {
            let (tx, rx) = tokio::sync::oneshot::channel();
            synced.push(rx);
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let stream = watcher(api, config).backoff(WatchBackoff::default());
            tokio::spawn(follow_account_roles(
                stream,
                access.clone(),
                changed.clone(),
                tx,
            ));
        }
        // Err: the follower ended before its first listing (the runtime is stopping).
        for rx in synced {
            let _ = rx.await;
        }
    }

    /// One stream of all namespaces, or one per handled namespace (by name, so RBAC can name
    /// exactly those).
    fn namespace_apis(&self, client: &Client) -> Vec<(Api<Namespace>, watcher::Config)> {
        let api = Api::<Namespace>::all(client.clone());
        if self.namespaces.is_empty() {
            return vec![(api, watcher::Config::default())];
        }
        self.namespaces
            .iter()
            .map(|ns| {
                let config = watcher::Config::default().fields(&format!("metadata.name={ns}"));
                (api.clone(), config)
            })
            .collect()
    }
}

/// The annotations of a namespace that make its policy and choose its roles.
fn policy_annotations(namespace: &Namespace) -> PolicyAnnotations {
    namespace
        .annotations()
        .iter()
        .filter(|(k, _)| is_access_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn follow_namespaces(
    stream: impl Stream<Item = Result<watcher::Event<Namespace>, watcher::Error>>,
    access: Arc<Access>,
    changed: broadcast::Sender<Affected>,
    synced: tokio::sync::oneshot::Sender<()>,
) {
    let mut synced = Some(synced);
    // Namespaces seen during a relist: the others were deleted while the stream was down.
    let mut relisted: Option<HashSet<String>> = None;
    let mut known: HashSet<String> = HashSet::new();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                warn!(error = %e, "watching namespaces failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => relisted = Some(HashSet::new()),
            watcher::Event::InitApply(ns) | watcher::Event::Apply(ns) => {
                let name = ns.name_any();
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(name.clone());
                }
                known.insert(name.clone());
                if access.set_namespace(&name, policy_annotations(&ns)) {
                    announce(&changed, Affected::Namespace(name));
                }
            }
            watcher::Event::Delete(ns) => {
                known.remove(&ns.name_any());
                access.forget_namespace(&ns.name_any());
            }
            watcher::Event::InitDone => {
                let seen = relisted.take().unwrap_or_default();
                for gone in known.difference(&seen) {
                    access.forget_namespace(gone);
                }
                known = seen;
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
}

async fn follow_account_roles(
    stream: impl Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>>,
    access: Arc<Access>,
    changed: broadcast::Sender<Affected>,
    synced: tokio::sync::oneshot::Sender<()>,
) {
    let mut synced = Some(synced);
    let mut relisted: Option<BTreeMap<String, String>> = None;
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let data = match event {
            Err(e) => {
                warn!(error = %e, "watching the account-roles ConfigMap failed; retrying");
                continue;
            }
            Ok(watcher::Event::Init) => {
                relisted = Some(BTreeMap::new());
                continue;
            }
            Ok(watcher::Event::InitApply(cm)) => {
                relisted = Some(cm.data.unwrap_or_default());
                continue;
            }
            // A relist that found no ConfigMap: no roles.
            Ok(watcher::Event::InitDone) => relisted.take().unwrap_or_default(),
            Ok(watcher::Event::Apply(cm)) => cm.data.unwrap_or_default(),
            Ok(watcher::Event::Delete(_)) => BTreeMap::new(),
        };
        let roles = AccountRoles::from_data(&data);
        let accounts = access.set_roles(roles);
        if !accounts.is_empty() {
            info!(accounts = ?accounts, "account roles changed");
            announce(&changed, Affected::Accounts(accounts));
        }
        if let Some(tx) = synced.take() {
            let _ = tx.send(());
        }
    }
}

fn announce(changed: &broadcast::Sender<Affected>, affected: Affected) {
    // Err: no controller listens yet (before start-up finished: nothing to reconcile).
    let _ = changed.send(affected);
}
