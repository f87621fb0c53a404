//! The workloads, and what they share: opening and joining many connections, the reader task
//! that checks and times every delivery, and the per-phase tallies.

pub mod fanout;
pub mod heal;
pub mod idle;
pub mod joinstorm;
pub mod rate;
pub mod receipts;
pub mod scale;
pub mod session;
pub mod slow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::BenchError;
use crate::client::{self, Target, Writer, Ws};
use crate::stats::{self, BenchText, Latency, Seen};

/// Most connections any workload opens.
pub const MAX_CONNECTIONS: usize = 60_000;
/// Longest phase any workload runs.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

pub(crate) fn check_duration(what: &str, d: Duration) -> Result<(), BenchError> {
    if d > MAX_DURATION {
        return Err(BenchError::Options(format!("{what} is at most {MAX_DURATION:?}")));
    }
    Ok(())
}

/// A run's nonce: texts of other runs (still in the rooms) are told apart by it.
pub(crate) fn nonce() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:08x}", t.subsec_nanos() ^ std::process::id().rotate_left(16))
}

/// Tallies of one phase (warm-up, measurement, one step of a step run).
pub(crate) struct Phase {
    pub hist: Histogram<u64>,
    /// Deliveries expected: messages sent times receivers.
    pub expected: u64,
    /// Distinct deliveries seen.
    pub delivered: u64,
    /// Deliveries seen more than once.
    pub duplicates: u64,
    /// Messages sent.
    pub sent: u64,
}

/// Bookkeeping shared by a run's tasks.
#[derive(Default)]
pub(crate) struct State {
    pub phases: Vec<Phase>,
    /// Window workloads: sequence number to receivers still to get it.
    pub inflight: HashMap<u64, u32>,
    /// Frames that looked like benchmark deliveries but did not fit the run.
    pub strays: u64,
    /// `error` frames received.
    pub server_errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Connections that ended before the run did.
    pub closed: u64,
}

pub(crate) struct Shared {
    pub nonce: String,
    state: Mutex<State>,
    /// Window workloads: free slots of the window.
    pub window: Semaphore,
}

impl Shared {
    pub fn new(window: usize) -> Arc<Self> {
        Arc::new(Self { nonce: nonce(), state: Mutex::default(), window: Semaphore::new(window) })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a new phase and returns its number.
    pub fn add_phase(&self) -> Result<usize, BenchError> {
        let hist = stats::histogram()?;
        let mut st = self.lock();
        st.phases.push(Phase { hist, expected: 0, delivered: 0, duplicates: 0, sent: 0 });
        Ok(st.phases.len() - 1)
    }

    /// Counts one message sent in `phase`, to be delivered to `receivers`.
    pub fn sent(&self, phase: usize, receivers: u64) {
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.sent += 1;
            p.expected += receivers;
        }
    }

    /// Whether every delivery expected in `phases` has been seen.
    pub fn complete(&self, phases: std::ops::Range<usize>) -> bool {
        let st = self.lock();
        phases.filter_map(|i| st.phases.get(i)).all(|p| p.delivered >= p.expected)
    }

    /// Waits until [`Shared::complete`] or `timeout`; true when complete.
    pub async fn drain(&self, phases: std::ops::Range<usize>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.complete(phases.clone()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The tallies of a phase.
    pub fn summary(&self, phase: usize) -> PhaseSummary {
        let st = self.lock();
        st.phases.get(phase).map_or_else(PhaseSummary::default, |p| PhaseSummary {
            latency: Latency::of(&p.hist),
            sent: p.sent,
            expected: p.expected,
            delivered: p.delivered,
            missing: p.expected.saturating_sub(p.delivered),
            duplicated: p.duplicates,
        })
    }

    pub fn errors(&self) -> Problems {
        let st = self.lock();
        Problems {
            strays: st.strays,
            server_errors: st.server_errors,
            first_error: st.first_error.clone(),
            closed_connections: st.closed,
        }
    }
}

/// What a phase measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseSummary {
    /// Send-to-deliver latency (for scheduled workloads: from the scheduled send time).
    pub latency: Latency,
    /// Messages sent.
    pub sent: u64,
    /// Deliveries expected (messages times receivers).
    pub expected: u64,
    /// Distinct deliveries received.
    pub delivered: u64,
    /// Deliveries never received.
    pub missing: u64,
    /// Deliveries received more than once.
    pub duplicated: u64,
}

/// Anything odd seen during a run (all zero/none in a good run).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Problems {
    /// Benchmark texts that did not fit the run (unknown phase or sender).
    pub strays: u64,
    /// `error` frames the server sent.
    pub server_errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Connections that ended before the run did.
    pub closed_connections: u64,
}

/// What a reader does besides counting and timing deliveries.
pub(crate) enum Mode {
    /// Nothing.
    Plain,
    /// Frees a window slot when a message has reached every receiver.
    Window,
    /// Acks, then reads, every message from another member.
    AckAndRead { writer: Writer, room: Arc<str> },
    /// The receipts sender: tracks receipts of its own messages.
    ReceiptSender(Arc<Mutex<receipts::Tracker>>),
}

pub(crate) struct Reader {
    pub shared: Arc<Shared>,
    /// Index of the first connection of this reader's room.
    pub room_base: usize,
    /// Members of the room.
    pub members: usize,
    /// This connection's index.
    pub me: usize,
    pub mode: Mode,
}

impl Reader {
    fn on_frame(&self, frame: &str, seen: &mut [Seen]) {
        if let Some(view) = stats::message_view(frame) {
            self.on_message(view, seen);
        } else if stats::is_receipt_frame(frame) {
            if let Mode::ReceiptSender(tracker) = &self.mode {
                receipts::Tracker::on_receipts(tracker, &self.shared, frame);
            }
        } else if frame.starts_with(r#"{"event":"error""#) {
            let mut st = self.shared.lock();
            st.server_errors += 1;
            if st.first_error.is_none() {
                st.first_error = Some(frame.chars().take(300).collect());
            }
        }
    }

    fn on_message(&self, view: stats::MessageView<'_>, seen: &mut [Seen]) {
        let now = stats::now_ns();
        let parsed = BenchText::parse(view.text).filter(|t| t.nonce == self.shared.nonce);
        let local = parsed.and_then(|t| t.sender.checked_sub(self.room_base)).filter(|l| *l < self.members);
        let (Some(t), Some(local)) = (parsed, local) else {
            // A text of another run (or another client) in the same room.
            return;
        };
        let fresh = seen[local].insert(t.seq);
        {
            let mut st = self.shared.lock();
            let Some(phase) = st.phases.get_mut(t.phase) else {
                st.strays += 1;
                return;
            };
            if fresh {
                phase.delivered += 1;
                phase.hist.saturating_record(now.saturating_sub(t.t_ns).max(1));
            } else {
                phase.duplicates += 1;
            }
            if fresh
                && matches!(self.mode, Mode::Window)
                && let Some(left) = st.inflight.get_mut(&t.seq)
            {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    st.inflight.remove(&t.seq);
                    self.shared.window.add_permits(1);
                }
            }
        }
        match &self.mode {
            Mode::AckAndRead { writer, room } if fresh && t.sender != self.me => {
                writer.send(client::receipt_frame("ackMessages", room, view.id));
                writer.send(client::receipt_frame("readMessages", room, view.id));
            }
            Mode::ReceiptSender(tracker) if fresh && t.sender == self.me => {
                receipts::Tracker::on_own_message(tracker, view.id, t.t_ns, t.phase);
            }
            _ => {}
        }
    }
}

/// Starts the task that reads a connection until it ends (or the task is aborted).
pub(crate) fn spawn_reader(mut stream: SplitStream<Ws>, reader: Reader) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = vec![Seen::default(); reader.members];
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => reader.on_frame(t.as_str(), &mut seen),
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    reader.shared.lock().closed += 1;
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    })
}

/// Opens and joins `per_room` connections to each of `rooms`, `concurrency` at a time.
/// Connection `i` belongs to room `i / per_room`, is user `{prefix}-{i}`, and connects to the
/// node of its member index in the room, `i % per_room` (see [`Target::url_of`]).
pub(crate) async fn open_rooms(
    target: &Target,
    rooms: &[String],
    per_room: usize,
    prefix: &str,
    read_buffer: usize,
    concurrency: usize,
) -> Result<Vec<Ws>, BenchError> {
    let total = rooms.len() * per_room;
    crate::procfs::check_open_files(total)?;
    let opened: Vec<(usize, Ws)> = futures_util::stream::iter(0..total)
        .map(|i| async move {
            let token = target.token(&format!("{prefix}-{i}"))?;
            let mut ws = target.connect_member(i, i % per_room, &token, read_buffer).await?;
            client::join(&mut ws, &rooms[i / per_room], i).await?;
            Ok::<_, BenchError>((i, ws))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut ordered: Vec<Option<Ws>> = (0..total).map(|_| None).collect();
    for (i, ws) in opened {
        ordered[i] = Some(ws);
    }
    Ok(ordered.into_iter().flatten().collect())
}

/// The connections of a running workload: writers, reader tasks, and halves kept open.
#[derive(Default)]
pub(crate) struct Conns {
    pub writers: Vec<Option<Writer>>,
    pub tasks: Vec<JoinHandle<()>>,
    pub sinks: Vec<SplitSink<Ws, Message>>,
}

impl Conns {
    /// Adds one connection: with `sends`, a writer task owns its sink (see [`Conns::writer`]);
    /// otherwise the sink is only kept open. Its reader task is started in every case.
    pub fn add(&mut self, ws: Ws, sends: bool, reader: Reader) {
        let (sink, stream) = ws.split();
        if sends {
            let (w, task) = client::spawn_writer(sink);
            self.writers.push(Some(w));
            self.tasks.push(task);
        } else {
            self.writers.push(None);
            self.sinks.push(sink);
        }
        self.tasks.push(spawn_reader(stream, reader));
    }

    pub fn writer(&self, i: usize) -> Result<&Writer, BenchError> {
        self.writers.get(i).and_then(Option::as_ref).ok_or_else(|| BenchError::Protocol(format!("no writer for {i}")))
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The 1-minute load average, for the record.
pub(crate) fn load1() -> Option<f64> {
    crate::procfs::loadavg().map(|l| l[0])
}
