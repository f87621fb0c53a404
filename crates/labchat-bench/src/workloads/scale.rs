//! The scale workload: many rooms of a few members and one large room spread over every node,
//! all connections held open; fan-out in the large room while the small rooms carry a steady
//! rate; then one node is killed while messages flow, and its clients reconnect elsewhere
//! ([`member`]) and catch up. At the end every client's `seq`s are checked against the store's
//! last `seq` of its room: no gap, no duplicate.

mod check;
mod lag;
pub(crate) mod member;
mod report;

pub use report::ScaleReport;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};

use crate::BenchError;
use crate::client::Target;
use crate::procfs::{self, CpuMark};
use crate::stats::{self, BenchText};
use member::{Command, Identity};

/// Kills a node (the binary: `kill -9 PID`; the tests: their cluster's node).
pub type Kill = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The scale workload's options (one load-generator process: its share of the rooms).
pub struct ScaleOptions {
    /// Rooms of `small_members` members, all processes together.
    pub small_rooms: usize,
    pub small_members: usize,
    /// Members of the large room (0: none); it belongs to shard 0.
    pub big_members: usize,
    /// This process' share: shard `shard` of `shards` of the small rooms.
    pub shard: usize,
    pub shards: usize,
    pub concurrency: usize,
    /// Loopback source addresses, used in turn (empty: the kernel's choice).
    pub sources: Vec<IpAddr>,
    /// When traffic starts (every process of a run waits for the same instant); `None`: right
    /// after the connections are open and the idle CPU is measured.
    pub traffic_at: Option<SystemTime>,
    /// How long the idle server CPU is measured (when pids are known).
    pub idle: Duration,
    /// Messages to the large room, one every `fanout_every`.
    pub fanout_messages: usize,
    pub fanout_every: Duration,
    /// Messages per second over this process' small rooms.
    pub rate: f64,
    /// Traffic before the kill (at least the fan-out's length).
    pub steady: Duration,
    /// The node killed (its index), and how; `None`: no kill.
    pub victim: Option<(usize, Kill)>,
    /// Most time from the kill until everyone is back.
    pub storm_timeout: Duration,
    /// Most time for the opening of every connection.
    pub open_timeout: Duration,
    /// Time between the end of traffic and the end-of-run check against the store.
    pub settle: Duration,
    pub room_offset: usize,
}

impl std::fmt::Debug for ScaleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaleOptions")
            .field("small_rooms", &self.small_rooms)
            .field("small_members", &self.small_members)
            .field("big_members", &self.big_members)
            .field("shard", &self.shard)
            .field("shards", &self.shards)
            .field("victim", &self.victim.as_ref().map(|(v, _)| v))
            .finish_non_exhaustive()
    }
}

/// Shared by the members of a run.
pub(crate) struct Run {
    pub(crate) nonce: String,
    urls: Vec<String>,
    victim: Option<usize>,
    opening: Semaphore,
    open_fail: AtomicU64,
    opened: AtomicUsize,
    lost: AtomicUsize,
    back: AtomicUsize,
    posted: AtomicU64,
    unsent: AtomicU64,
    errors: AtomicU64,
    storm: AtomicBool,
    t: Mutex<Tallies>,
    store_last: Vec<AtomicU64>,
    checked: AtomicUsize,
    lag: Arc<lag::Lag>,
}

struct Tallies {
    open: Histogram<u64>,
    steady: Histogram<u64>,
    storm: Histogram<u64>,
    /// Fan-out message number to (deliveries, latest delivery ns).
    fanout: HashMap<u64, (u64, u64)>,
    kill_at: Option<Instant>,
    /// Seconds after the kill to rejoins completed in that second.
    rejoins: HashMap<u64, u64>,
    back_after: Duration,
    first_error: Option<String>,
    /// Error frames by code.
    error_codes: BTreeMap<String, u64>,
}

const FANOUT_PHASE: usize = 1;

impl Run {
    fn url(&self, node: usize) -> String {
        self.urls[node % self.urls.len()].clone()
    }

    /// Another node than `node` and than the one killed.
    fn other_node(&self, node: usize) -> usize {
        let n = self.urls.len();
        let choices: Vec<usize> = (0..n).filter(|i| *i != node && Some(*i) != self.victim).collect();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let pick = (member::backoff(6).as_secs_f64() / member::MAX_DELAY.as_secs_f64() * choices.len() as f64) as usize;
        choices.get(pick.min(choices.len().saturating_sub(1))).copied().unwrap_or(node)
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.t.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed_open(&self) {
        self.open_fail.fetch_add(1, Ordering::Relaxed);
    }

    fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    fn posted(&self) {
        self.posted.fetch_add(1, Ordering::Relaxed);
    }

    fn unsent(&self) {
        self.unsent.fetch_add(1, Ordering::Relaxed);
    }

    fn server_error(&self, v: &serde_json::Value) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut t = self.tallies();
        if t.first_error.is_none() {
            t.first_error = Some(v.to_string().chars().take(300).collect());
        }
        *t.error_codes.entry(v["data"]["code"].as_str().unwrap_or("no code").to_owned()).or_default() += 1;
    }

    fn joined(&self, started: Instant, lost_at: Option<Instant>, first: bool) {
        let mut t = self.tallies();
        if first {
            t.open.saturating_record(stats::ns_of(Instant::now()).saturating_sub(stats::ns_of(started)).max(1));
            self.opened.fetch_add(1, Ordering::Relaxed);
        } else if lost_at.is_some() {
            if let Some(kill) = t.kill_at {
                let since = kill.elapsed();
                *t.rejoins.entry(since.as_secs()).or_default() += 1;
                t.back_after = t.back_after.max(since);
            }
            self.back.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn delivered(&self, text: &BenchText<'_>, latency_ns: u64) {
        let mut t = self.tallies();
        if text.phase == FANOUT_PHASE {
            let e = t.fanout.entry(text.seq).or_default();
            e.0 += 1;
            e.1 = e.1.max(latency_ns);
        } else if self.storm.load(Ordering::Relaxed) {
            t.storm.saturating_record(latency_ns.max(1));
        } else {
            t.steady.saturating_record(latency_ns.max(1));
        }
    }

    fn store_last(&self, room: usize, last: u64) {
        if let Some(slot) = self.store_last.get(room) {
            slot.store(last, Ordering::Relaxed);
            self.checked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The small rooms of shard `shard` of `shards` (a range of `0..rooms`).
fn share(rooms: usize, shard: usize, shards: usize) -> std::ops::Range<usize> {
    (rooms * shard / shards)..(rooms * (shard + 1) / shards)
}

fn check(opts: &ScaleOptions) -> Result<(), BenchError> {
    if opts.shards == 0 || opts.shard >= opts.shards || opts.small_members < 2 || opts.small_members > 100 {
        return Err(BenchError::Options("need --shard < --shards and 2 to 100 members per small room".into()));
    }
    if !(0.0..=100_000.0).contains(&opts.rate) || opts.fanout_messages > 10_000 {
        return Err(BenchError::Options("--rate is at most 100,000/s, --fanout-messages at most 10,000".into()));
    }
    for (what, d) in [("--steady", opts.steady), ("--storm-timeout", opts.storm_timeout), ("--idle", opts.idle)] {
        super::check_duration(what, d)?;
    }
    super::check_duration("--open-timeout", opts.open_timeout)
}

/// Runs the scale workload (one process' share).
pub async fn scale(target: &Target, mut opts: ScaleOptions) -> Result<ScaleReport, BenchError> {
    check(&opts)?;
    let mine = share(opts.small_rooms, opts.shard, opts.shards);
    let big = if opts.shard == 0 { opts.big_members } else { 0 };
    let total = mine.len() * opts.small_members + big;
    if total > super::MAX_CONNECTIONS {
        return Err(BenchError::Options(format!(
            "{total} connections: at most {} per process",
            super::MAX_CONNECTIONS
        )));
    }
    procfs::check_open_files(total)?;
    let room_ids = target.rooms(opts.room_offset, opts.small_rooms + usize::from(opts.big_members > 0))?;
    let (victim, kill) = opts.victim.take().map_or((None, None), |(v, k)| (Some(v), Some(k)));
    let local_rooms = mine.len() + usize::from(big > 0);
    let run = Arc::new(Run {
        nonce: super::nonce(),
        urls: target.urls().map(str::to_owned).collect(),
        victim,
        opening: Semaphore::new(opts.concurrency.max(1)),
        open_fail: AtomicU64::new(0),
        opened: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        back: AtomicUsize::new(0),
        posted: AtomicU64::new(0),
        unsent: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        storm: AtomicBool::new(false),
        t: Mutex::new(Tallies {
            open: stats::histogram()?,
            steady: stats::histogram()?,
            storm: stats::histogram()?,
            fanout: HashMap::new(),
            kill_at: None,
            rejoins: HashMap::new(),
            back_after: Duration::ZERO,
            first_error: None,
            error_codes: BTreeMap::new(),
        }),
        store_last: (0..local_rooms).map(|_| AtomicU64::new(u64::MAX)).collect(),
        checked: AtomicUsize::new(0),
        lag: lag::Lag::watch(),
    });
    // Members: (local room, global member index, member within its room).
    let mut plan: Vec<(usize, usize, usize)> = Vec::with_capacity(total);
    for (local, room) in mine.clone().enumerate() {
        plan.extend((0..opts.small_members).map(|m| (local, room * opts.small_members + m, m)));
    }
    let big_base = opts.small_rooms * opts.small_members;
    plan.extend((0..big).map(|m| (mine.len(), big_base + m, m)));
    let nodes = target.nodes();
    let started = Instant::now();
    let mut senders = Vec::with_capacity(total);
    let mut tasks = Vec::with_capacity(total);
    for (local, global, m) in &plan {
        let room = if *local < mine.len() { mine.start + local } else { opts.small_rooms };
        let node = if *local < mine.len() { global % nodes } else { m % nodes };
        let me = Identity {
            index: *global,
            room: *local,
            room_id: Arc::from(room_ids[room].as_str()),
            node,
            token: target.token(&format!("scale-{global}"))?,
            source: (!opts.sources.is_empty()).then(|| opts.sources[global % opts.sources.len()]),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.push(tokio::spawn(member::run(me, Arc::clone(&run), rx)));
    }
    let deadline = started + opts.open_timeout;
    while run.opened.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open_elapsed_s = started.elapsed().as_secs_f64();
    let mut report = ScaleReport {
        workload: "scale",
        shard: opts.shard,
        connections: total,
        opened: run.opened.load(Ordering::Relaxed),
        open_failures: run.open_fail.load(Ordering::Relaxed),
        open_elapsed_s,
        ..ScaleReport::default()
    };
    #[allow(clippy::cast_precision_loss)]
    {
        report.open_per_s = report.opened as f64 / open_elapsed_s.max(1e-9);
    }
    let pids = target.server_pids();
    report.server_rss_kib = procfs::rss_kib_sum(&pids)?;
    if !pids.is_empty() && opts.traffic_at.is_none() {
        let mark = CpuMark::start(&pids);
        tokio::time::sleep(opts.idle).await;
        report.idle_cpu = Some(mark.stop(&pids));
    }
    if let Some(at) = opts.traffic_at {
        tokio::time::sleep(at.duration_since(SystemTime::now()).unwrap_or_default()).await;
    }
    run.lag.traffic_started();
    let traffic = traffic(&run, &senders, &plan, &opts, mine.len(), big);
    let flow = async {
        tokio::time::sleep(opts.steady).await;
        if let Some(kill) = kill {
            run.storm.store(true, Ordering::Relaxed);
            run.tallies().kill_at = Some(Instant::now());
            kill.await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let until = Instant::now() + opts.storm_timeout;
            while run.back.load(Ordering::Relaxed) < run.lost.load(Ordering::Relaxed) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    tokio::select! {
        () = traffic => {},
        () = flow => {},
    }
    tokio::time::sleep(opts.settle).await;
    check::against_store(&run, &plan, &senders, local_rooms).await;
    report.rooms = local_rooms;
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(senders);
    let mut outcomes = Vec::with_capacity(total);
    for task in tasks {
        outcomes.push(task.await.unwrap_or_default());
    }
    report::finish(&run, &plan, &outcomes, &opts, &mut report);
    Ok(report)
}

/// Posts at `opts.rate` over the small rooms (member 0 of each) and the fan-out messages to the
/// large room (its member 0); returns when both are done.
async fn traffic(
    run: &Run,
    senders: &[mpsc::UnboundedSender<Command>],
    plan: &[(usize, usize, usize)],
    opts: &ScaleOptions,
    small: usize,
    big: usize,
) {
    let text = |phase: usize, sender: usize, seq: u64| {
        BenchText { nonce: &run.nonce, phase, sender, seq, t_ns: stats::now_ns() }.render(100)
    };
    let fan = async {
        if big == 0 {
            return;
        }
        let first = small * opts.small_members;
        for i in 0..opts.fanout_messages as u64 {
            if let Some(tx) = senders.get(first) {
                let _ = tx.send(Command::Post(text(FANOUT_PHASE, plan[first].1, i), Instant::now()));
            }
            tokio::time::sleep(opts.fanout_every).await;
        }
    };
    let steady = async {
        if small == 0 || opts.rate <= 0.0 {
            return std::future::pending::<()>().await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.rate));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            #[allow(clippy::cast_possible_truncation)]
            let m = (n as usize % small) * opts.small_members;
            let _ = senders[m].send(Command::Post(text(0, plan[m].1, n), Instant::now()));
            n += 1;
        }
    };
    tokio::join!(fan, steady);
}
