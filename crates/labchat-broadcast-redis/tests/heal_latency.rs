//! Benchmark, not a check (ignored by default): the latency of the first post after a Redis
//! fault heals, from node a's publish to node b's sink, over 20 heals per variant, with the
//! quiet-room check at 60 s. Prints p50/p99 per variant (docs/benchmarks.md):
//!
//! `cargo test -p labchat-broadcast-redis --test heal_latency -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};

use labchat_core::Broadcaster;
use labchat_domain::RoomEvent;
use support::{Nodes, Redis, room, wait_for};

const HEALS: usize = 20;

#[derive(Clone, Copy, Debug)]
enum Variant {
    QuietRestart,
    BusyRestart,
    KillNormal,
    KillPubsub,
    Pause3s,
}

async fn command(redis: &Redis, args: &[&str]) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async::<redis::Value>(&mut c).await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints the heal latencies"]
async fn heal_latency() {
    let Some(mut redis) = Redis::start().await else { return };
    let nodes = Nodes::start(&redis, |s| s.check_interval = Duration::from_secs(60)).await;
    let r = room();
    let (_on_a, on_b) = nodes.recorders(r).await;
    let mut n = 0u64;
    for variant in
        [Variant::QuietRestart, Variant::BusyRestart, Variant::KillNormal, Variant::KillPubsub, Variant::Pause3s]
    {
        let mut took = Vec::with_capacity(HEALS);
        for _ in 0..HEALS {
            match variant {
                Variant::QuietRestart | Variant::BusyRestart => {
                    redis.kill().await;
                    nodes.wait_connected(false).await;
                    if matches!(variant, Variant::BusyRestart) {
                        for _ in 0..10 {
                            nodes.post(&nodes.a, r).await;
                            n += 1;
                        }
                    }
                    redis.restart().await;
                }
                Variant::KillNormal => command(&redis, &["CLIENT", "KILL", "TYPE", "normal"]).await,
                Variant::KillPubsub => command(&redis, &["CLIENT", "KILL", "TYPE", "pubsub"]).await,
                Variant::Pause3s => {
                    command(&redis, &["CLIENT", "PAUSE", "3000"]).await;
                    tokio::time::sleep(Duration::from_millis(3050)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            nodes.wait_connected(true).await;
            let before = n;
            wait_for("the outage's posts on node b", Duration::from_secs(10), || async {
                on_b.seqs().len() as u64 >= before
            })
            .await;
            let m = nodes.store_only(r).await;
            n += 1;
            let start = Instant::now();
            nodes.a.publish(RoomEvent::MessagePosted(m)).await.unwrap();
            wait_for("the first post after the heal", Duration::from_secs(60), || async {
                on_b.seqs().len() as u64 >= n
            })
            .await;
            took.push(start.elapsed());
        }
        took.sort();
        eprintln!(
            "heal latency {variant:?}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {HEALS} heals",
            percentile(&took, 0.5).as_secs_f64() * 1e3,
            percentile(&took, 0.99).as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3,
        );
    }
    assert_eq!(on_b.seqs(), (1..=n).collect::<Vec<_>>(), "every message once, in order");
    nodes.shutdown();
}
