//! The backplane's metrics, read through a Prometheus recorder installed for this test binary
//! alone (its only test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use labchat_core::Broadcaster;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::{Nodes, Recorder, Redis, room, wait_for};

const LIMIT: Duration = Duration::from_secs(10);

/// The value of `name{node="<node>"}`, if rendered.
fn value(handle: &PrometheusHandle, name: &str, node: &str) -> Option<f64> {
    let prefix = format!("{name}{{node=\"{node}\"}} ");
    handle.render().lines().find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().parse().unwrap()))
}

async fn wait_value(handle: &PrometheusHandle, name: &str, node: &str, ok: impl Fn(f64) -> bool) {
    wait_for(&format!("{name} of {node}"), LIMIT, || async { value(handle, name, node).is_some_and(&ok) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_receptions_gap_fills_and_publish_errors_are_counted_per_node() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let Some(mut redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    wait_value(&handle, "labchat_backplane_connected", "node-a", |v| v == 1.0).await;
    wait_value(&handle, "labchat_backplane_connected", "node-b", |v| v == 1.0).await;
    let r = room();
    let on_b = Recorder::new(2);
    nodes.b.subscribe(r, on_b.clone()).await.unwrap();
    nodes.post(&nodes.a, r).await;
    on_b.expect_seqs("node b", 1, LIMIT).await;
    wait_value(&handle, "labchat_backplane_received_total", "node-b", |v| v >= 1.0).await;
    assert_eq!(value(&handle, "labchat_backplane_gap_fills_total", "node-b"), None);
    nodes.store_only(r).await;
    nodes.post(&nodes.a, r).await;
    on_b.expect_seqs("node b", 3, LIMIT).await;
    wait_value(&handle, "labchat_backplane_gap_fills_total", "node-b", |v| v >= 1.0).await;
    assert_eq!(value(&handle, "labchat_backplane_publish_errors_total", "node-a"), None);
    redis.kill().await;
    nodes.wait_connected(false).await;
    wait_value(&handle, "labchat_backplane_connected", "node-a", |v| v == 0.0).await;
    nodes.post(&nodes.a, r).await;
    wait_value(&handle, "labchat_backplane_publish_errors_total", "node-a", |v| v >= 1.0).await;
    nodes.shutdown();
}
