//! Monitoring as a platform team runs it (issue 28): the chart's ServiceMonitor, PrometheusRule
//! and Grafana dashboard, through prometheus-operator and a Prometheus (`stack`) scraping the
//! operator's pod on the real node.

mod dashboard;
mod stack;

use std::time::Duration;

use serde_json::Value;

use crate::node::Release;
use crate::support;
use stack::{Monitoring, install_prometheus_operator_crds, label, value};

/// The chart on the node watching `teams`, with its ServiceMonitor scraped each second, and
/// `set` (one more `--set`, e.g. the PrometheusRule or the dashboard).
pub(crate) async fn monitored_release(name: &str, teams: &[String], set: &str) -> Release {
    install_prometheus_operator_crds();
    let sets = [
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.interval=1s",
        "--set",
        set,
    ];
    Release::install_watching(name, teams, &sets).await
}

/// A synced watch `nightly` in each team namespace; the first's has a running job, returned.
async fn two_nightly_watches(r: &Release, team_a: &str, team_b: &str) -> String {
    let sv_a = support::solution_version_arn("monitor-a");
    let sv_b = support::solution_version_arn("monitor-b");
    let running = r.emu.generate(&sv_a, 1, "IN PROGRESS", "a-run").await;
    r.emu.generate(&sv_a, 2, "ACTIVE", "a-done").await;
    r.emu.generate(&sv_b, 2, "ACTIVE", "b-done").await;
    r.watch_in(team_a, "nightly", &sv_a, "").await;
    r.watch_in(team_b, "nightly", &sv_b, "").await;
    r.synced_in(team_a, "nightly", 3).await;
    r.synced_in(team_b, "nightly", 2).await;
    running.into_iter().next().expect("a running job")
}

/// The `namespace` labels of `series`, sorted.
fn namespaces(series: &[Value]) -> Vec<&str> {
    let mut namespaces: Vec<&str> = series
        .iter()
        .filter_map(|s| label(s, "namespace"))
        .collect();
    namespaces.sort();
    namespaces
}

#[tokio::test]
async fn the_chart_s_service_monitor_keeps_each_watch_s_namespace_and_a_failure_alert_names_its_watch()
 {
    let client = support::client().await;
    let team_a = support::namespace(&client, "team-a").await;
    let team_b = support::namespace(&client, "team-b").await;
    let teams = [team_a.clone(), team_b.clone()];
    let r = monitored_release("monitor", &teams, "metrics.prometheusRule.enabled=true").await;
    // Two watches of the same name, one per team.
    let running = two_nightly_watches(&r, &team_a, &team_b).await;

    let m = Monitoring::start(&r).await;
    series_keep_their_watch_s_namespace(&m, &teams).await;

    // A few scrapes of no failure, so the failure below is new within the alert's hour.
    let scrapes = format!(
        r#"count_over_time(personalize_watch_jobs{{namespace="{team_a}",state="failed"}}[5m])"#
    );
    m.eventually(
        Duration::from_secs(60),
        "five scrapes of the failed count",
        || (value(m.query(&scrapes).first()?)? >= 5.0).then_some(()),
    )
    .await;
    assert!(
        failure_alerts(&m).is_empty(),
        "no failure alert before a failure"
    );

    r.emu
        .set_status(&running, "CREATE FAILED", Some("monitored"))
        .await;
    let firing = m
        .eventually(Duration::from_secs(90), "the failure alert", || {
            let alerts = failure_alerts(&m);
            alerts
                .iter()
                .any(|a| a["state"] == "firing")
                .then_some(alerts)
        })
        .await;
    assert_only_alert_is_for(&firing, &team_a, "nightly");
}

/// Both watches' series reach Prometheus, each with its own namespace as `namespace`.
async fn series_keep_their_watch_s_namespace(m: &Monitoring, teams: &[String]) {
    let series = m
        .eventually(
            Duration::from_secs(60),
            "both watches' job series in Prometheus",
            || {
                let series = m.query(r#"personalize_watch_jobs{name="nightly",state="failed"}"#);
                (series.len() == teams.len()).then_some(series)
            },
        )
        .await;
    let mut want = teams.iter().map(String::as_str).collect::<Vec<_>>();
    want.sort();
    assert_eq!(
        namespaces(&series),
        want,
        "each series carries its watch's namespace:\n{series:?}"
    );
    assert!(
        series
            .iter()
            .all(|s| label(s, "exported_namespace").is_none()),
        "honorLabels keeps `namespace` (no exported_namespace): {series:?}"
    );
}

fn assert_only_alert_is_for(alerts: &[Value], namespace: &str, name: &str) {
    assert_eq!(
        alerts.len(),
        1,
        "one alert, for the failed watch only: {alerts:?}"
    );
    assert_eq!(
        label(&alerts[0], "namespace"),
        Some(namespace),
        "{alerts:?}"
    );
    assert_eq!(label(&alerts[0], "name"), Some(name), "{alerts:?}");
    let description = alerts[0]["annotations"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains(&format!("kubectl get events -n {namespace} ")),
        "the alert points at the watch's own namespace: {description}"
    );
}

fn failure_alerts(m: &Monitoring) -> Vec<Value> {
    m.alerts()
        .into_iter()
        .filter(|a| label(a, "alertname") == Some("PersonalizeBatchInferenceJobFailed"))
        .collect()
}
