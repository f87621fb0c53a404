//! `rate`: R rooms of M members at a fixed total send rate. Messages are scheduled at fixed
//! times and their latency is measured from the scheduled time, not from when the generator got
//! around to sending them, so a stall anywhere shows up in the figures (no coordinated omission).
//! The senders rotate over the rooms and, within a room, over its members.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Conns, Mode, PhaseSummary, Problems, Reader, Shared, check_duration, load1, open_rooms};
use crate::BenchError;
use crate::client::{self, Target};
use crate::procfs::{CpuMark, CpuUse};
use crate::stats::{BenchText, ns_of};

/// Options of [`rate`].
#[derive(Clone, Debug)]
pub struct RateOptions {
    /// Rooms (R).
    pub rooms: usize,
    /// Members per room (M).
    pub members: usize,
    /// Messages per second, all rooms together.
    pub rate: f64,
    /// Message text size in bytes.
    pub size: usize,
    /// Sending at the rate before measuring.
    pub warmup: Duration,
    /// Measured sending time.
    pub duration: Duration,
    /// First seeded room to use.
    pub room_offset: usize,
    /// How long to wait for late deliveries after the last send.
    pub drain_timeout: Duration,
}

impl Default for RateOptions {
    fn default() -> Self {
        Self {
            rooms: 100,
            members: 10,
            rate: 30_000.0,
            size: 100,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            room_offset: 0,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// What one measured phase of [`rate`] (or one step of [`rate_steps`]) measured.
#[derive(Clone, Debug, Serialize)]
pub struct RateReport {
    /// `rate` (or `rate-step`).
    pub workload: &'static str,
    /// R.
    pub rooms: usize,
    /// M.
    pub members: usize,
    /// Text size.
    pub size: usize,
    /// Scheduled messages per second.
    pub target_messages_per_s: f64,
    /// Scheduled deliveries per second (messages x members).
    pub target_deliveries_per_s: f64,
    /// Deliveries per message: every member of the room, the sender's own copy included.
    pub receivers_per_message: usize,
    /// From the first scheduled send until the last delivery (or the drain timeout).
    pub elapsed_s: f64,
    /// Deliveries per second over that time.
    pub deliveries_per_s: f64,
    /// How far behind schedule the generator sent, at worst (ms).
    pub max_send_lag_ms: f64,
    /// Counts and latency from the scheduled send time.
    #[serde(flatten)]
    pub phase: PhaseSummary,
    /// CPU over the phase.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Server CPU time per delivery, microseconds.
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Step mode: p99 under the bound, nothing missing or duplicated.
    pub pass: Option<bool>,
    /// Anything odd.
    #[serde(flatten)]
    pub problems: Problems,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

struct Rig {
    shared: Arc<Shared>,
    conns: Conns,
    rooms: Vec<String>,
    members: usize,
    seqs: Vec<u64>,
    next: u64,
}

impl Rig {
    async fn open(target: &Target, opts: &RateOptions) -> Result<Self, BenchError> {
        if opts.rooms == 0 || opts.members == 0 || opts.rooms * opts.members > super::MAX_CONNECTIONS {
            return Err(BenchError::Options("rate needs 1+ rooms of 1+ members".into()));
        }
        check_duration("--duration", opts.duration)?;
        check_duration("--warmup", opts.warmup)?;
        check_duration("--drain-timeout", opts.drain_timeout)?;
        let rooms = target.rooms(opts.room_offset, opts.rooms)?;
        let shared = Shared::new(0);
        let sockets = open_rooms(target, &rooms, opts.members, &format!("rate-{}", shared.nonce), 4 * 1024, 64).await?;
        let mut conns = Conns::default();
        for (i, ws) in sockets.into_iter().enumerate() {
            let room_base = i / opts.members * opts.members;
            let reader =
                Reader { shared: Arc::clone(&shared), room_base, members: opts.members, me: i, mode: Mode::Plain };
            conns.add(ws, true, reader);
        }
        let seqs = vec![0; rooms.len() * opts.members];
        Ok(Self { shared, conns, rooms, members: opts.members, seqs, next: 0 })
    }

    /// Sends at `rate` for `len`; returns the phase and the worst lag behind schedule.
    async fn send_phase(&mut self, rate: f64, len: Duration, size: usize) -> Result<(usize, Duration), BenchError> {
        let phase = self.shared.add_phase()?;
        let start = Instant::now();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let total = (rate * len.as_secs_f64()).round().max(0.0) as u64;
        let interval = 1e9 / rate;
        let rooms = self.rooms.len() as u64;
        let members = self.members as u64;
        let mut max_lag = Duration::ZERO;
        let mut i = 0u64;
        while i < total {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let due = start + Duration::from_nanos((i as f64 * interval) as u64);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep_until(due.into()).await;
                continue;
            }
            max_lag = max_lag.max(now - due);
            let room = usize::try_from(self.next % rooms).unwrap_or(0);
            let local = usize::try_from((self.next / rooms) % members).unwrap_or(0);
            let sender = room * self.members + local;
            let seq = self.seqs[sender];
            self.seqs[sender] += 1;
            let text = BenchText { nonce: &self.shared.nonce, phase, sender, seq, t_ns: ns_of(due) }.render(size);
            self.shared.sent(phase, members);
            if !self.conns.writer(sender)?.send(client::message_frame(&self.rooms[room], &text)) {
                return Err(BenchError::Protocol(format!("connection {sender} closed")));
            }
            i += 1;
            self.next += 1;
        }
        Ok((phase, max_lag))
    }

    /// A warm-up phase, then a measured one; reports the measured one.
    async fn run(
        &mut self,
        target: &Target,
        opts: &RateOptions,
        workload: &'static str,
    ) -> Result<RateReport, BenchError> {
        if !(opts.rate > 0.0 && opts.rate.is_finite()) {
            return Err(BenchError::Options("--rate must be positive".into()));
        }
        if !opts.warmup.is_zero() {
            self.send_phase(opts.rate, opts.warmup, opts.size).await?;
        }
        let cpu_mark = CpuMark::start(&target.server_pids());
        let started = Instant::now();
        let (phase, lag) = self.send_phase(opts.rate, opts.duration, opts.size).await?;
        self.shared.drain(0..phase + 1, opts.drain_timeout).await;
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let cpu = cpu_mark.stop(&target.server_pids());
        let summary = self.shared.summary(phase);
        if summary.missing > 0 {
            // Late rather than lost, perhaps: let the backlog clear so the next step starts clean.
            self.shared.drain(0..phase + 1, Duration::from_secs(30)).await;
        }
        #[allow(clippy::cast_precision_loss)]
        let per_delivery =
            cpu.server_cpu_s.filter(|_| summary.delivered > 0).map(|s| s * 1e6 / summary.delivered as f64);
        #[allow(clippy::cast_precision_loss)]
        Ok(RateReport {
            workload,
            rooms: self.rooms.len(),
            members: self.members,
            size: opts.size,
            target_messages_per_s: opts.rate,
            target_deliveries_per_s: opts.rate * self.members as f64,
            receivers_per_message: self.members,
            elapsed_s: elapsed,
            deliveries_per_s: summary.delivered as f64 / elapsed,
            max_send_lag_ms: crate::stats::ms(lag),
            phase: summary,
            cpu,
            server_cpu_us_per_delivery: per_delivery,
            pass: None,
            problems: self.shared.errors(),
            load1: load1(),
        })
    }
}

/// Runs the rate workload once at `opts.rate`.
pub async fn rate(target: &Target, opts: &RateOptions) -> Result<RateReport, BenchError> {
    let mut rig = Rig::open(target, opts).await?;
    rig.run(target, opts, "rate").await
}

/// Options of [`rate_steps`].
#[derive(Clone, Debug)]
pub struct StepOptions {
    /// Rooms, members, size, durations; `rate` is the first step's rate.
    pub base: RateOptions,
    /// Each step's rate is the previous one times this.
    pub factor: f64,
    /// Highest rate tried (messages per second).
    pub max_rate: f64,
    /// A step passes when its p99 is under this (and nothing is missing or duplicated).
    pub p99_ms: f64,
    /// Bisection steps between the last passing and the first failing rate.
    pub refine: usize,
}

impl Default for StepOptions {
    fn default() -> Self {
        Self {
            base: RateOptions {
                rate: 5_000.0,
                duration: Duration::from_secs(5),
                warmup: Duration::from_millis(500),
                ..RateOptions::default()
            },
            factor: 1.5,
            max_rate: 200_000.0,
            p99_ms: 50.0,
            refine: 3,
        }
    }
}

/// What [`rate_steps`] found.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// `rate-steps`.
    pub workload: &'static str,
    /// The bound on p99.
    pub p99_target_ms: f64,
    /// Highest passing rate, messages per second.
    pub best_messages_per_s: Option<f64>,
    /// Deliveries per second measured at that rate.
    pub best_deliveries_per_s: Option<f64>,
    /// Its p99.
    pub best_p99_ms: Option<f64>,
    /// Every step, in the order run.
    pub steps: Vec<RateReport>,
}

/// Raises the rate step by step until p99 crosses the bound (or deliveries go missing), then
/// bisects; `on_step` sees each step as it completes.
pub async fn rate_steps(
    target: &Target,
    opts: &StepOptions,
    mut on_step: impl FnMut(&RateReport),
) -> Result<StepReport, BenchError> {
    if opts.factor <= 1.0 || opts.refine > 10 {
        return Err(BenchError::Options("--factor must be above 1 and --refine at most 10".into()));
    }
    let mut rig = Rig::open(target, &opts.base).await?;
    let mut steps = Vec::new();
    let mut best: Option<RateReport> = None;
    let mut failed_at: Option<f64> = None;
    let mut step = |r: RateReport, steps: &mut Vec<RateReport>| {
        let pass = r.phase.latency.p99_ms < opts.p99_ms && r.phase.missing == 0 && r.phase.duplicated == 0;
        let r = RateReport { pass: Some(pass), ..r };
        on_step(&r);
        steps.push(r.clone());
        (pass, r)
    };
    let mut rate = opts.base.rate;
    while rate <= opts.max_rate && steps.len() < 40 {
        let o = RateOptions { rate, ..opts.base.clone() };
        let (pass, r) = step(rig.run(target, &o, "rate-step").await?, &mut steps);
        if !pass {
            failed_at = Some(rate);
            break;
        }
        best = Some(r);
        rate *= opts.factor;
    }
    if let (Some(mut hi), Some(mut lo)) = (failed_at, best.as_ref().map(|b| b.target_messages_per_s)) {
        for _ in 0..opts.refine {
            let mid = f64::midpoint(lo, hi);
            let o = RateOptions { rate: mid, ..opts.base.clone() };
            let (pass, r) = step(rig.run(target, &o, "rate-step").await?, &mut steps);
            if pass {
                lo = mid;
                best = Some(r);
            } else {
                hi = mid;
            }
        }
    }
    Ok(StepReport {
        workload: "rate-steps",
        p99_target_ms: opts.p99_ms,
        best_messages_per_s: best.as_ref().map(|b| b.target_messages_per_s),
        best_deliveries_per_s: best.as_ref().map(|b| b.deliveries_per_s),
        best_p99_ms: best.as_ref().map(|b| b.phase.latency.p99_ms),
        steps,
    })
}
