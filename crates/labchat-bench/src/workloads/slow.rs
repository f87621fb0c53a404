//! `slow`: one room of M members where member 0 stops reading after its join. Member 1 sends
//! at a fixed rate; the others' latency (from the scheduled send time) and the server's RSS over
//! time show whether one stuck client hurts the rest, and what becomes of the stuck one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use super::{Conns, Mode, PhaseSummary, Problems, Reader, Shared, check_duration, load1, open_rooms};
use crate::BenchError;
use crate::client::{self, Target};
use crate::procfs::{self, CpuMark, CpuUse};
use crate::stats::{BenchText, ns_of};

/// Options of [`slow`].
#[derive(Clone, Debug)]
pub struct SlowOptions {
    /// Members (M), the stuck one and the sender included (at least 3).
    pub members: usize,
    /// Messages per second.
    pub rate: f64,
    /// Message text size.
    pub size: usize,
    /// Sending time.
    pub duration: Duration,
    /// How often to sample the server's RSS.
    pub sample_every: Duration,
    /// Which seeded room to use.
    pub room_offset: usize,
    /// How long to wait for late deliveries.
    pub drain_timeout: Duration,
}

impl Default for SlowOptions {
    fn default() -> Self {
        Self {
            members: 10,
            rate: 2_000.0,
            size: 1_000,
            duration: Duration::from_secs(10),
            sample_every: Duration::from_millis(250),
            room_offset: 0,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// One RSS sample.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RssSample {
    /// Seconds since sending started.
    pub t_s: f64,
    /// Server RSS, KiB.
    pub rss_kib: u64,
}

/// What [`slow`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct SlowReport {
    /// `slow`.
    pub workload: &'static str,
    /// M.
    pub members: usize,
    /// Messages per second.
    pub rate: f64,
    /// Text size.
    pub size: usize,
    /// Deliveries per message counted: the M - 1 members that read (the sender's own copy
    /// included).
    pub receivers_per_message: usize,
    /// The reading members: counts and latency from the scheduled send time.
    #[serde(flatten)]
    pub others: PhaseSummary,
    /// Server RSS over time.
    pub rss: Vec<RssSample>,
    /// Largest RSS sample, KiB.
    pub rss_max_kib: Option<u64>,
    /// What became of the stuck member: `closed <code>`, `dropped without a close frame (...)`
    /// (the server gave up on it while its buffers were full), `ended` or `open`.
    pub slow_outcome: String,
    /// Text frames the stuck member could still read afterwards.
    pub slow_frames_buffered: u64,
    /// CPU over the run.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Anything odd.
    #[serde(flatten)]
    pub problems: Problems,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

/// Runs the slow-consumer workload.
pub async fn slow(target: &Target, opts: &SlowOptions) -> Result<SlowReport, BenchError> {
    if opts.members < 3 || opts.members > 10_000 || !(opts.rate > 0.0 && opts.rate <= 1e6) {
        return Err(BenchError::Options("slow needs 3 to 10000 members and a rate in (0, 1e6]".into()));
    }
    check_duration("--duration", opts.duration)?;
    check_duration("--drain-timeout", opts.drain_timeout)?;
    let room = target.rooms(opts.room_offset, 1)?;
    let shared = Shared::new(0);
    let mut sockets =
        open_rooms(target, &room, opts.members, &format!("slow-{}", shared.nonce), 4 * 1024, 64).await?.into_iter();
    let Some(mut stuck) = sockets.next() else {
        return Err(BenchError::Protocol("no connections".into()));
    };
    let mut conns = Conns::default();
    conns.writers.push(None);
    for (i, ws) in sockets.enumerate().map(|(i, ws)| (i + 1, ws)) {
        let reader =
            Reader { shared: Arc::clone(&shared), room_base: 0, members: opts.members, me: i, mode: Mode::Plain };
        conns.add(ws, i == 1, reader);
    }
    let writer = conns.writer(1)?.clone();
    let receivers = (opts.members - 1) as u64;
    let phase = shared.add_phase()?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pids = target.server_pids();
    let sampled = pids.clone();
    let every = opts.sample_every.max(Duration::from_millis(10));
    let started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(rss) = procfs::rss_kib_sum(&sampled).ok().flatten() {
                        samples.push(RssSample { t_s: started.elapsed().as_secs_f64(), rss_kib: rss });
                    }
                }
                _ = &mut stop_rx => return samples,
            }
        }
    });
    let cpu_mark = CpuMark::start(&pids);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = (opts.rate * opts.duration.as_secs_f64()).round() as u64;
    let interval = 1e9 / opts.rate;
    let mut seq = 0u64;
    while seq < total {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let due = started + Duration::from_nanos((seq as f64 * interval) as u64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        shared.sent(phase, receivers);
        let text = BenchText { nonce: &shared.nonce, phase, sender: 1, seq, t_ns: ns_of(due) }.render(opts.size);
        if !writer.send(client::message_frame(&room[0], &text)) {
            return Err(BenchError::Protocol("the sender's connection closed".into()));
        }
        seq += 1;
    }
    shared.drain(phase..phase + 1, opts.drain_timeout).await;
    let cpu = cpu_mark.stop(&pids);
    let _ = stop_tx.send(());
    let rss = sampler.await.unwrap_or_default();
    let others = shared.summary(phase);
    let problems = shared.errors();
    drop(conns);
    // What did the server do with the stuck member? Read what it buffered, up to a close.
    let mut buffered = 0u64;
    // A connection the server kept goes silent once its backlog is read: "open".
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(msg) = tokio::time::timeout(Duration::from_secs(1), stuck.next()).await {
            match msg {
                Some(Ok(Message::Text(_))) => buffered += 1,
                Some(Ok(Message::Close(Some(f)))) => return format!("closed {}", u16::from(f.code)),
                Some(Ok(Message::Close(None))) => return "closed (no code)".to_owned(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("dropped without a close frame ({e})"),
                None => return "ended".to_owned(),
            }
        }
        "open".to_owned()
    })
    .await
    .unwrap_or_else(|_| "open (still sending after 20 s)".to_owned());
    Ok(SlowReport {
        workload: "slow",
        members: opts.members,
        rate: opts.rate,
        size: opts.size,
        receivers_per_message: opts.members - 1,
        others,
        rss_max_kib: rss.iter().map(|s| s.rss_kib).max(),
        rss,
        slow_outcome: outcome,
        slow_frames_buffered: buffered,
        cpu,
        problems,
        load1: load1(),
    })
}
