//! `receipts`: one room of M members; member 0 sends, every other member acks and then reads
//! each message it receives. Measures the time from a send until the sender has seen every
//! delivery and read receipt of it (2 x (M - 1) receipts).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Conns, Mode, PhaseSummary, Problems, Reader, Shared, check_duration, load1, open_rooms, spawn_reader};
use crate::BenchError;
use crate::client::{self, Target};
use crate::procfs::{CpuMark, CpuUse};
use crate::stats::{self, BenchText, Latency, now_ns};

/// Options of [`receipts`].
#[derive(Clone, Debug)]
pub struct ReceiptsOptions {
    /// Members of the room (M), the sender included.
    pub members: usize,
    /// Messages to send.
    pub messages: u64,
    /// Messages whose receipts are awaited at once.
    pub window: usize,
    /// Message text size.
    pub size: usize,
    /// Which seeded room to use.
    pub room_offset: usize,
    /// Longest the run may take.
    pub max_duration: Duration,
    /// How long the sender waits for a window slot before giving up.
    pub stall_timeout: Duration,
}

impl Default for ReceiptsOptions {
    fn default() -> Self {
        Self {
            members: 10,
            messages: 2_000,
            window: 1,
            size: 100,
            room_offset: 0,
            max_duration: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(5),
        }
    }
}

/// What [`receipts`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiptsReport {
    /// `receipts`.
    pub workload: &'static str,
    /// M.
    pub members: usize,
    /// Window.
    pub window: usize,
    /// Messages whose receipts all arrived.
    pub completed: u64,
    /// From send until the sender has seen every receipt.
    pub receipt_latency: Latency,
    /// Receipts the sender should have seen (2 x (M - 1) per message).
    pub receipts_expected: u64,
    /// Distinct receipts it saw.
    pub receipts_seen: u64,
    /// Receipts it saw twice.
    pub receipts_duplicated: u64,
    /// Receipts for messages it did not know.
    pub receipts_stray: u64,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// Messages fully receipted per second.
    pub messages_per_s: f64,
    /// The messages themselves: counts and send-to-deliver latency.
    pub deliveries: PhaseSummary,
    /// CPU over the run.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Anything odd.
    #[serde(flatten)]
    pub problems: Problems,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

struct Pending {
    sent_ns: u64,
    delivered: HashSet<String>,
    read: HashSet<String>,
}

/// The sender's view of its messages' receipts.
pub(crate) struct Tracker {
    receivers: usize,
    pending: HashMap<String, Pending>,
    hist: Histogram<u64>,
    completed: u64,
    seen: u64,
    duplicated: u64,
    stray: u64,
}

#[derive(Deserialize)]
struct ReceiptFrame {
    event: String,
    data: ReceiptData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptData {
    user_id: String,
    messages: Vec<String>,
}

impl Tracker {
    fn lock(t: &Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        t.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sender got its own message back: its receipts are now awaited.
    pub(crate) fn on_own_message(t: &Mutex<Self>, id: &str, sent_ns: u64, _phase: usize) {
        let pending = Pending { sent_ns, delivered: HashSet::new(), read: HashSet::new() };
        Self::lock(t).pending.insert(id.to_owned(), pending);
    }

    /// A `messagesDelivered` or `messageReads` frame.
    pub(crate) fn on_receipts(t: &Mutex<Self>, shared: &Shared, frame: &str) {
        let now = now_ns();
        let mut me = Self::lock(t);
        let Ok(f) = serde_json::from_str::<ReceiptFrame>(frame) else {
            me.stray += 1;
            return;
        };
        let read = f.event == "messageReads";
        for id in &f.data.messages {
            let receivers = me.receivers;
            let Some(p) = me.pending.get_mut(id) else {
                me.stray += 1;
                continue;
            };
            let set = if read { &mut p.read } else { &mut p.delivered };
            let fresh = set.insert(f.data.user_id.clone());
            let done = p.read.len() >= receivers && p.delivered.len() >= receivers;
            let sent_ns = p.sent_ns;
            if fresh {
                me.seen += 1;
            } else {
                me.duplicated += 1;
            }
            if done {
                me.pending.remove(id);
                me.completed += 1;
                me.hist.saturating_record(now.saturating_sub(sent_ns).max(1));
                shared.window.add_permits(1);
            }
        }
    }
}

/// Runs the receipts workload.
pub async fn receipts(target: &Target, opts: &ReceiptsOptions) -> Result<ReceiptsReport, BenchError> {
    if opts.members < 2 || opts.window == 0 || opts.members > 1000 || opts.messages > 10_000_000 {
        return Err(BenchError::Options(
            "receipts needs 2 to 1000 members, a window of 1+, at most 10M messages".into(),
        ));
    }
    check_duration("--max-duration", opts.max_duration)?;
    let room = target.rooms(opts.room_offset, 1)?;
    let shared = Shared::new(opts.window);
    let tracker = Arc::new(Mutex::new(Tracker {
        receivers: opts.members - 1,
        pending: HashMap::new(),
        hist: stats::histogram()?,
        completed: 0,
        seen: 0,
        duplicated: 0,
        stray: 0,
    }));
    let sockets = open_rooms(target, &room, opts.members, &format!("rcpt-{}", shared.nonce), 4 * 1024, 64).await?;
    let room_id: Arc<str> = Arc::from(room[0].as_str());
    let mut conns = Conns::default();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let (w, task) = client::spawn_writer(sink);
        let mode = if i == 0 {
            Mode::ReceiptSender(Arc::clone(&tracker))
        } else {
            Mode::AckAndRead { writer: w.clone(), room: Arc::clone(&room_id) }
        };
        conns.writers.push(Some(w));
        conns.tasks.push(task);
        let reader = Reader { shared: Arc::clone(&shared), room_base: 0, members: opts.members, me: i, mode };
        conns.tasks.push(spawn_reader(stream, reader));
    }
    let writer = conns.writer(0)?.clone();
    let phase = shared.add_phase()?;
    let cpu_mark = CpuMark::start(&target.server_pids());
    let started = Instant::now();
    let deadline = started + opts.max_duration;
    let mut sent = 0u64;
    while sent < opts.messages && Instant::now() < deadline {
        match tokio::time::timeout(opts.stall_timeout, shared.window.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            _ => break,
        }
        sent += 1;
        shared.sent(phase, opts.members as u64);
        let text = BenchText { nonce: &shared.nonce, phase, sender: 0, seq: sent, t_ns: now_ns() }.render(opts.size);
        if !writer.send(client::message_frame(&room_id, &text)) {
            return Err(BenchError::Protocol("the sender's connection closed".into()));
        }
    }
    // Wait for the outstanding receipts (bounded).
    let drain_until = Instant::now() + opts.stall_timeout;
    while Tracker::lock(&tracker).completed < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    shared.drain(phase..phase + 1, Duration::from_millis(500)).await;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu_mark.stop(&target.server_pids());
    let deliveries = shared.summary(phase);
    drop(conns);
    let t = Tracker::lock(&tracker);
    #[allow(clippy::cast_precision_loss)]
    Ok(ReceiptsReport {
        workload: "receipts",
        members: opts.members,
        window: opts.window,
        completed: t.completed,
        receipt_latency: Latency::of(&t.hist),
        receipts_expected: sent * 2 * (opts.members as u64 - 1),
        receipts_seen: t.seen,
        receipts_duplicated: t.duplicated,
        receipts_stray: t.stray,
        elapsed_s: elapsed,
        messages_per_s: t.completed as f64 / elapsed,
        deliveries,
        cpu,
        problems: shared.errors(),
        load1: load1(),
    })
}
