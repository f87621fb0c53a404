//! A short run of every `labchat-bench` workload against an in-process server, so the load
//! generator keeps working as the protocol evolves. Asserts correctness only (every delivery
//! arrives exactly once, counts add up), never timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat::app::{StoreSettings, parse_seed};
use labchat_bench::{
    FanoutOptions, IdleOptions, JoinStormOptions, RateOptions, ReceiptsOptions, SlowOptions, StepOptions, Target, seed,
};
use labchat_tests::harness::{SECRET, TestServer, settings};

const ROOMS: usize = 16;

/// A server seeded with the bench's generated requests (through the same parser as
/// `labchat serve --seed-requests`), with the per-connection rate limit raised as the benchmarks
/// do, and a target for it that reads this process' /proc entries.
async fn server() -> (TestServer, Target) {
    let json = seed::to_json(&seed::generate(ROOMS, seed::DEFAULT_CREATOR));
    let mut s = settings();
    s.store = StoreSettings::Memory { seed: parse_seed(&json).unwrap() };
    s.ws.rate_per_second = 1e6;
    s.ws.rate_burst = 1e6;
    let server = TestServer::start_with(s).await;
    let mut target = Target::new(server.url(), SECRET, ROOMS).unwrap();
    target.server_pid = Some(std::process::id());
    (server, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_workloads_run_and_account_for_every_delivery() {
    let (server, target) = server().await;

    let idle = labchat_bench::idle(
        &target,
        &IdleOptions { connections: 20, rooms: 5, concurrency: 8, settle: Duration::ZERO, ..IdleOptions::default() },
    )
    .await
    .unwrap();
    assert_eq!((idle.joined, idle.failed), (20, 0), "{idle:?}");
    assert_eq!(idle.connect_join.count, 20);
    assert!(idle.rss_per_connection_bytes.is_some());

    let fanout = labchat_bench::fanout(
        &target,
        &FanoutOptions {
            members: 5,
            window: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_secs(1),
            room_offset: 5,
            ..FanoutOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(fanout.phase.sent > 0, "{fanout:?}");
    assert_eq!(fanout.phase.delivered, fanout.phase.sent * 5, "{fanout:?}");
    assert_eq!((fanout.phase.missing, fanout.phase.duplicated, fanout.stalled), (0, 0, false), "{fanout:?}");
    assert_eq!((fanout.problems.server_errors, fanout.problems.strays), (0, 0), "{fanout:?}");
    assert_eq!(fanout.phase.latency.count, fanout.phase.delivered);

    let rate = labchat_bench::rate(
        &target,
        &RateOptions {
            rooms: 3,
            members: 4,
            rate: 300.0,
            warmup: Duration::from_millis(100),
            duration: Duration::from_secs(1),
            room_offset: 6,
            ..RateOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rate.phase.sent, 300, "{rate:?}");
    assert_eq!(rate.phase.delivered, 300 * 4, "{rate:?}");
    assert_eq!((rate.phase.missing, rate.phase.duplicated, rate.problems.server_errors), (0, 0, 0), "{rate:?}");

    let steps = labchat_bench::rate_steps(
        &target,
        &StepOptions {
            base: RateOptions {
                rooms: 2,
                members: 3,
                rate: 100.0,
                warmup: Duration::ZERO,
                duration: Duration::from_millis(300),
                room_offset: 9,
                ..RateOptions::default()
            },
            factor: 2.0,
            max_rate: 400.0,
            // A bound no step misses: this checks the stepping, not the server's speed.
            p99_ms: 60_000.0,
            refine: 1,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(steps.steps.len(), 3, "{steps:?}");
    assert_eq!(steps.best_messages_per_s, Some(400.0));
    assert!(steps.steps.iter().all(|s| s.phase.missing == 0 && s.phase.duplicated == 0), "{steps:?}");

    let receipts = labchat_bench::receipts(
        &target,
        &ReceiptsOptions { members: 4, messages: 40, window: 2, room_offset: 11, ..ReceiptsOptions::default() },
    )
    .await
    .unwrap();
    assert_eq!(receipts.completed, 40, "{receipts:?}");
    assert_eq!(receipts.receipts_seen, receipts.receipts_expected, "{receipts:?}");
    assert_eq!(receipts.receipts_expected, 40 * 2 * 3);
    assert_eq!((receipts.receipts_duplicated, receipts.receipts_stray), (0, 0), "{receipts:?}");
    assert_eq!((receipts.deliveries.missing, receipts.deliveries.duplicated), (0, 0), "{receipts:?}");

    let slow = labchat_bench::slow(
        &target,
        &SlowOptions {
            members: 4,
            rate: 200.0,
            duration: Duration::from_secs(1),
            sample_every: Duration::from_millis(100),
            room_offset: 12,
            ..SlowOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(slow.others.sent, 200, "{slow:?}");
    assert_eq!(slow.others.delivered, 200 * 3, "{slow:?}");
    assert_eq!((slow.others.missing, slow.others.duplicated), (0, 0), "{slow:?}");
    assert!(!slow.rss.is_empty());

    let storm = labchat_bench::joinstorm(
        &target,
        &JoinStormOptions {
            users: 30,
            settle: Duration::from_millis(600),
            room_offset: 13,
            ..JoinStormOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((storm.joined, storm.members_with_a_wrong_count), (30, 0), "{storm:?}");
    assert_eq!(storm.uncoalesced_frames, 30 * 29 / 2);
    assert!(storm.member_joined + storm.members_changed <= storm.uncoalesced_frames, "{storm:?}");
    assert!(storm.frames >= 2 * 30, "every join's reply and ack: {storm:?}");

    server.stop().await;
}

#[test]
fn the_bench_refuses_non_loopback_targets() {
    assert!(Target::new("ws://192.168.1.10:8080/ws", SECRET, 1).is_err());
    assert!(Target::new("ws://127.0.0.1:8080/ws", SECRET, 1).is_ok());
}
