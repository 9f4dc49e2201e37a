//! The fixture most end-to-end tests start from: a namespace of its own, an emulator and an
//! operator scoped to that namespace, and helpers to apply watches and wait for their status.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use personalize_watch::crd::SolutionVersionWatch;

use super::processes::{Emulator, Operator, OperatorOptions};
use super::{client, control_plane, install_crds, namespace, wait_for};

pub struct Fixture {
    pub client: Client,
    pub ns: String,
    pub emu: Emulator,
    pub op: Operator,
}

impl Fixture {
    pub async fn start(prefix: &str) -> Self {
        Self::start_with(prefix, vec![]).await
    }

    /// With extra operator flags.
    pub async fn start_with(prefix: &str, extra: Vec<String>) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let ns = namespace(&client, prefix).await;
        let emu = Emulator::start();
        let op = start_operator(&ns, &emu, extra);
        op.wait_ready().await;
        Fixture {
            client,
            ns,
            emu,
            op,
        }
    }

    pub fn restart_operator(&mut self, extra: Vec<String>) {
        self.op.kill();
        self.op = start_operator(&self.ns, &self.emu, extra);
    }

    pub fn watches(&self) -> Api<SolutionVersionWatch> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Applies a watch of a solution version (server-side apply through the fixture's client).
    pub async fn apply_watch(&self, name: &str, sv: &str, extra_spec: &str) {
        self.apply_spec(name, &format!("  solutionVersionArn: {sv}\n{extra_spec}"))
            .await;
    }

    /// Applies a watch of a solution: every version it has or will have.
    pub async fn apply_solution_watch(&self, name: &str, solution: &str, extra_spec: &str) {
        self.apply_spec(name, &format!("  solutionArn: {solution}\n{extra_spec}"))
            .await;
    }

    /// Applies a watch of a solution version with one label (`key: value`).
    pub async fn apply_watch_labelled(&self, name: &str, sv: &str, label: &str) {
        self.apply_object(
            name,
            &format!("  labels: {{{label}}}\n"),
            &format!("  solutionVersionArn: {sv}\n"),
        )
        .await;
    }

    /// Applies a watch of `spec` (YAML lines indented by two spaces).
    pub async fn apply_spec(&self, name: &str, spec: &str) {
        self.apply_object(name, "", spec).await;
    }

    /// Applies a watch with more `metadata` and `spec` (YAML lines indented by two spaces).
    async fn apply_object(&self, name: &str, metadata: &str, spec: &str) {
        let yaml = format!(
            "apiVersion: personalize-watch.dev/v1alpha1\nkind: SolutionVersionWatch\nmetadata:\n  name: {name}\n  namespace: {ns}\n{metadata}spec:\n{spec}",
            ns = self.ns
        );
        let watch: SolutionVersionWatch = serde_yaml::from_str(&yaml).expect("watch YAML");
        self.watches()
            .patch(
                name,
                &PatchParams::apply("personalize-watch-tests"),
                &Patch::Apply(&watch),
            )
            .await
            .expect("apply the watch");
    }

    /// Waits until the watch's status satisfies `check`.
    pub async fn wait_status<F>(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        check: F,
    ) -> SolutionVersionWatch
    where
        F: Fn(&SolutionVersionWatch) -> bool,
    {
        let api = self.watches();
        let check = &check;
        wait_for(timeout, what, || {
            let api = api.clone();
            async move {
                let w = api.get(name).await.ok()?;
                check(&w).then_some(w)
            }
        })
        .await
    }

    /// The Events in the fixture's namespace with this reason.
    pub async fn events(&self, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        api.list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }

    /// Events for one job (its secondary reference), counting folded repeats.
    pub async fn job_events(&self, reason: &str, job: &str) -> u32 {
        self.events(reason)
            .await
            .iter()
            .filter(|e| e.related.as_ref().and_then(|r| r.name.as_deref()) == Some(job))
            .map(|e| e.series.as_ref().map_or(1, |s| s.count as u32))
            .sum()
    }
}

/// An operator scoped to `ns`, against the test control plane and `emu`.
pub fn start_operator(ns: &str, emu: &Emulator, extra: Vec<String>) -> Operator {
    let mut args = vec!["--watch-namespace".to_string(), ns.to_string()];
    args.extend(extra);
    Operator::start(OperatorOptions {
        kubeconfig: control_plane().kubeconfig.clone(),
        endpoint: &emu.url,
        args,
        env: vec![],
    })
}

/// (status, reason) of a condition.
pub fn condition(w: &SolutionVersionWatch, type_: &str) -> Option<(String, String)> {
    w.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// status.counts.total.
pub fn total(w: &SolutionVersionWatch) -> Option<i64> {
    w.status.as_ref()?.counts.as_ref().map(|c| c.total)
}
