//! The Grafana dashboard: its shape, the chart's ConfigMap, and every panel's query evaluated
//! by the test Prometheus.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use personalize_emulator::faults::{FaultKind, FaultRule};
use serde_json::Value;

use super::monitored_release;
use super::stack::{Monitoring, label};
use crate::node::Release;
use crate::support;

/// The dashboard in the repo, which the chart ships as a ConfigMap.
fn dashboard() -> Value {
    let path = support::repo_root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

const DASHBOARD: &str = "charts/personalize-watch/files/grafana-dashboard.json";

/// (panel title, query) of every panel that is not a row.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    panels
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            targets.into_iter().map(move |t| {
                (
                    title.clone(),
                    t["expr"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

/// A query as Grafana sends it with `namespace` and `watch` chosen and a one-minute interval.
fn as_grafana_sends(expr: &str, namespace: &str, watch: &str) -> String {
    expr.replace("$namespace", namespace)
        .replace("$watch", watch)
        .replace("$__rate_interval", "1m")
}

#[test]
fn the_dashboard_s_panels_each_have_a_query_a_description_and_the_chosen_data_source() {
    let d = dashboard();
    assert_eq!(d["uid"], "personalize-watch");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids: Vec<i64> = panels.iter().filter_map(|p| p["id"].as_i64()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "every panel has its own id");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            !title.is_empty() && p["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{p}"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title} uses the dashboard's data source"
        );
        let grid = &p["gridPos"];
        let right = grid["x"].as_i64().unwrap_or(99) + grid["w"].as_i64().unwrap_or(99);
        assert!(right <= 24, "{title} fits Grafana's 24 columns");
    }
    for (title, expr) in panel_queries(&d) {
        let sent = as_grafana_sends(&expr, "ns", "w");
        assert!(
            !sent.contains('$'),
            "{title}: a variable the dashboard does not define: {expr}"
        );
    }
    let variables: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "namespace", "watch"]);
}

/// The chart's dashboard ConfigMap: labelled for Grafana's sidecar, holding the repo's file.
async fn assert_ships_the_dashboard(r: &Release) {
    let maps: Api<ConfigMap> = Api::namespaced(r.client.clone(), &r.ns);
    let shipped = maps
        .get(&format!("{}-personalize-watch-dashboard", r.name))
        .await
        .expect("the dashboard ConfigMap");
    let labels = shipped.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("grafana_dashboard").map(String::as_str),
        Some("1")
    );
    let json = shipped
        .data
        .unwrap_or_default()
        .remove("personalize-watch.json")
        .unwrap_or_default();
    let shipped: Value = serde_json::from_str(&json).expect("the ConfigMap's dashboard is JSON");
    assert_eq!(shipped, dashboard(), "the ConfigMap holds {DASHBOARD}");
}

/// Waits until every panel's query returns data for `namespace`/`watch`; after `within`, fails
/// naming the panels whose queries still return nothing.
async fn every_panel_returns_data(m: &Monitoring, namespace: &str, watch: &str, within: Duration) {
    let queries = panel_queries(&dashboard());
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let empty: Vec<&(String, String)> = queries
            .iter()
            .filter(|(_, expr)| {
                m.query(&as_grafana_sends(expr, namespace, watch))
                    .is_empty()
            })
            .collect();
        if empty.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "panels whose query returns nothing for {namespace}/{watch} after {within:?}: {empty:#?}\n{}",
            m.diagnosis()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn every_dashboard_panel_s_query_returns_data_for_the_demo_s_watch() {
    let client = support::client().await;
    let team = support::namespace(&client, "dashboards").await;
    let r = monitored_release(
        "dashboard",
        std::slice::from_ref(&team),
        "metrics.grafanaDashboard.enabled=true",
    )
    .await;
    assert_ships_the_dashboard(&r).await;

    // The demo: a watch with stuck jobs (after 5 s), expecting a new job within a minute, a
    // failure and throttled calls.
    let sv = support::solution_version_arn("dashboard");
    let running = r.emu.generate(&sv, 2, "IN PROGRESS", "dash-run").await;
    r.emu.generate(&sv, 3, "ACTIVE", "dash-done").await;
    r.watch_in(
        &team,
        "nightly",
        &sv,
        "stuckAfter: 5s\nexpectNewJobWithin: 1m",
    )
    .await;
    r.synced_in(&team, "nightly", 5).await;
    let m = Monitoring::start(&r).await;
    r.emu
        .set_status(&running[0], "CREATE FAILED", Some("for the dashboard"))
        .await;
    r.emu
        .fault(
            FaultRule::new(FaultKind::Throttle)
                .times(12)
                .for_subject(&sv),
        )
        .await;

    every_panel_returns_data(&m, &team, "nightly", Duration::from_secs(120)).await;
    // The dashboard's variables (label_values of personalize_watch_jobs) list the demo's watch.
    let jobs = m.query("personalize_watch_jobs");
    assert!(jobs.iter().any(
        |s| label(s, "namespace") == Some(team.as_str()) && label(s, "name") == Some("nightly")
    ));
}
