//! `idle`: N connections spread over R rooms, all joined, then left idle. Measures the server's
//! resident memory per connection and the connect+join latency and rate.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use super::{check_duration, load1};
use crate::BenchError;
use crate::client::{self, Target};
use crate::procfs::{self, CpuMark, CpuUse};
use crate::stats::{self, Latency};

/// Options of [`idle`].
#[derive(Clone, Debug)]
pub struct IdleOptions {
    /// Connections (N).
    pub connections: usize,
    /// Rooms (R); connection `i` joins room `i % R`.
    pub rooms: usize,
    /// Handshakes in progress at once.
    pub concurrency: usize,
    /// Wait after the last join before reading the server's RSS.
    pub settle: Duration,
    /// How long to keep the connections open after that.
    pub hold: Duration,
    /// First seeded room to use.
    pub room_offset: usize,
}

impl Default for IdleOptions {
    fn default() -> Self {
        Self {
            connections: 10_000,
            rooms: 1_000,
            concurrency: 64,
            settle: Duration::from_secs(2),
            hold: Duration::ZERO,
            room_offset: 0,
        }
    }
}

/// What [`idle`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    /// `idle`.
    pub workload: &'static str,
    /// Connections asked for.
    pub connections: usize,
    /// Connections opened and joined.
    pub joined: usize,
    /// Handshakes or joins that failed.
    pub failed: usize,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Rooms.
    pub rooms: usize,
    /// Handshakes in progress at once.
    pub concurrency: usize,
    /// From starting the TCP connect until the join's ack.
    pub connect_join: Latency,
    /// Time to open and join all.
    pub elapsed_s: f64,
    /// Joined connections per second.
    pub connections_per_s: f64,
    /// Server RSS before connecting, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every connection joined and idle, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after - before) / joined, bytes.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU while connecting.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Server CPU per connect+join, microseconds.
    pub server_cpu_us_per_connection: Option<f64>,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

/// Runs the idle workload.
pub async fn idle(target: &Target, opts: &IdleOptions) -> Result<IdleReport, BenchError> {
    if opts.connections == 0 || opts.rooms == 0 || opts.connections > super::MAX_CONNECTIONS {
        return Err(BenchError::Options(format!(
            "idle needs 1 to {} connections and 1+ rooms",
            super::MAX_CONNECTIONS
        )));
    }
    check_duration("--hold", opts.hold)?;
    check_duration("--settle", opts.settle)?;
    procfs::check_open_files(opts.connections)?;
    let rooms = target.rooms(opts.room_offset, opts.rooms)?;
    let pids = target.server_pids();
    let rss_before = procfs::rss_kib_sum(&pids)?;
    let prefix = format!("idle-{}", super::nonce());
    let mut hist = stats::histogram()?;
    let cpu_mark = CpuMark::start(&pids);
    let started = Instant::now();
    let rooms_ref = &rooms;
    let prefix_ref = &prefix;
    let mut results = futures_util::stream::iter(0..opts.connections)
        .map(|i| async move {
            let token = target.token(&format!("{prefix_ref}-{i}"))?;
            let t0 = Instant::now();
            let mut ws = target.connect_member(i, i, &token, 1024).await?;
            client::join(&mut ws, &rooms_ref[i % rooms_ref.len()], i).await?;
            Ok::<_, BenchError>((ws, t0.elapsed()))
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut open = Vec::with_capacity(opts.connections);
    let mut failed = 0;
    let mut first_failure = None;
    while let Some(r) = results.next().await {
        match r {
            Ok((ws, took)) => {
                hist.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1));
                open.push(ws);
            }
            Err(e) => {
                failed += 1;
                first_failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
    drop(results);
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu_mark.stop(&pids);
    tokio::time::sleep(opts.settle).await;
    let rss_after = procfs::rss_kib_sum(&pids)?;
    tokio::time::sleep(opts.hold).await;
    let joined = open.len();
    drop(open);
    #[allow(clippy::cast_precision_loss)]
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if joined > 0 => Some((a as f64 - b as f64) * 1024.0 / joined as f64),
        _ => None,
    };
    #[allow(clippy::cast_precision_loss)]
    Ok(IdleReport {
        workload: "idle",
        connections: opts.connections,
        joined,
        failed,
        first_failure,
        rooms: opts.rooms,
        concurrency: opts.concurrency,
        connect_join: Latency::of(&hist),
        elapsed_s: elapsed,
        connections_per_s: joined as f64 / elapsed,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_bytes: per_conn,
        cpu,
        server_cpu_us_per_connection: cpu.server_cpu_s.filter(|_| joined > 0).map(|s| s * 1e6 / joined as f64),
        load1: load1(),
    })
}
