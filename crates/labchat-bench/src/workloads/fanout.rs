//! `fanout`: one room of M members; member 0 sends 100-byte messages with W in flight (a
//! message is in flight until every member, the sender included, has received it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Conns, Mode, PhaseSummary, Problems, Reader, Shared, check_duration, load1, open_rooms};
use crate::BenchError;
use crate::client::{self, Target};
use crate::procfs::{CpuMark, CpuUse};
use crate::stats::{BenchText, now_ns};

/// Options of [`fanout`].
#[derive(Clone, Debug)]
pub struct FanoutOptions {
    /// Members of the room (M), the sender included.
    pub members: usize,
    /// Messages in flight (W).
    pub window: usize,
    /// Message text size in bytes.
    pub size: usize,
    /// Sending before measuring.
    pub warmup: Duration,
    /// Measured sending time.
    pub duration: Duration,
    /// Most messages sent in all.
    pub max_messages: u64,
    /// Which seeded room to use.
    pub room_offset: usize,
    /// How long the sender waits for a window slot before giving up.
    pub stall_timeout: Duration,
}

impl Default for FanoutOptions {
    fn default() -> Self {
        Self {
            members: 50,
            window: 1,
            size: 100,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            max_messages: 5_000_000,
            room_offset: 0,
            stall_timeout: Duration::from_secs(5),
        }
    }
}

/// What [`fanout`] measured (over the measured phase).
#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    /// `fanout`.
    pub workload: &'static str,
    /// M.
    pub members: usize,
    /// W.
    pub window: usize,
    /// Text size in bytes.
    pub size: usize,
    /// Deliveries per message: every member, the sender's own copy included.
    pub receivers_per_message: usize,
    /// Measured wall time, from the first measured send until its last delivery.
    pub elapsed_s: f64,
    /// Messages per second.
    pub messages_per_s: f64,
    /// Deliveries (messages x receivers) per second.
    pub deliveries_per_s: f64,
    /// Counts and send-to-deliver latency.
    #[serde(flatten)]
    pub phase: PhaseSummary,
    /// CPU over the measured phase.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Server CPU time per delivery, in microseconds.
    pub server_cpu_us_per_delivery: Option<f64>,
    /// The window never emptied within the stall timeout (a delivery went missing).
    pub stalled: bool,
    /// Anything odd.
    #[serde(flatten)]
    pub problems: Problems,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

/// Runs the fanout workload.
pub async fn fanout(target: &Target, opts: &FanoutOptions) -> Result<FanoutReport, BenchError> {
    if opts.members < 2 || opts.window == 0 || opts.members > super::MAX_CONNECTIONS {
        return Err(BenchError::Options("fanout needs at least 2 members and a window of at least 1".into()));
    }
    check_duration("--duration", opts.duration)?;
    check_duration("--warmup", opts.warmup)?;
    let room = target.rooms(opts.room_offset, 1)?;
    let shared = Shared::new(opts.window);
    let sockets = open_rooms(target, &room, opts.members, &format!("fan-{}", shared.nonce), 8 * 1024, 64).await?;
    let mut conns = Conns::default();
    for (i, ws) in sockets.into_iter().enumerate() {
        let reader =
            Reader { shared: Arc::clone(&shared), room_base: 0, members: opts.members, me: i, mode: Mode::Window };
        conns.add(ws, i == 0, reader);
    }
    let writer = conns.writer(0)?.clone();
    let receivers = opts.members as u64;
    let mut seq = 0u64;
    let mut stalled = false;
    let mut measured = None;
    for (phase_len, measure) in [(opts.warmup, false), (opts.duration, true)] {
        let phase = shared.add_phase()?;
        if measure {
            measured = Some((phase, Instant::now(), CpuMark::start(&target.server_pids())));
        }
        let end = Instant::now() + phase_len;
        while Instant::now() < end && seq < opts.max_messages {
            match tokio::time::timeout(opts.stall_timeout, shared.window.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => {
                    stalled = true;
                    break;
                }
            }
            seq += 1;
            shared.lock().inflight.insert(seq, opts.members as u32);
            shared.sent(phase, receivers);
            let text = BenchText { nonce: &shared.nonce, phase, sender: 0, seq, t_ns: now_ns() }.render(opts.size);
            if !writer.send(client::message_frame(&room[0], &text)) {
                return Err(BenchError::Protocol("the sender's connection closed".into()));
            }
        }
        if stalled {
            break;
        }
    }
    let Some((phase, started, cpu_mark)) = measured else {
        return Err(BenchError::Protocol("the measured phase did not start".into()));
    };
    let complete = shared.drain(phase..phase + 1, opts.stall_timeout).await;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu_mark.stop(&target.server_pids());
    let summary = shared.summary(phase);
    #[allow(clippy::cast_precision_loss)]
    let per_delivery = cpu.server_cpu_s.filter(|_| summary.delivered > 0).map(|s| s * 1e6 / summary.delivered as f64);
    drop(conns);
    #[allow(clippy::cast_precision_loss)]
    Ok(FanoutReport {
        workload: "fanout",
        members: opts.members,
        window: opts.window,
        size: opts.size,
        receivers_per_message: opts.members,
        elapsed_s: elapsed,
        messages_per_s: summary.sent as f64 / elapsed,
        deliveries_per_s: summary.delivered as f64 / elapsed,
        phase: summary,
        cpu,
        server_cpu_us_per_delivery: per_delivery,
        stalled: stalled || !complete,
        problems: shared.errors(),
        load1: load1(),
    })
}
