//! `joinstorm`: N users join one fresh room at once. Each member reads every frame it is sent
//! and keeps the room's count as a client would (the join reply's `membersCount`, plus one per
//! `memberJoined` and minus one per `memberLeft` after it, replaced by each `membersChanged`'s
//! `membersCount`). Measures the presence frames the storm costs (one `memberJoined` per arrival
//! per member already there would be N·(N−1)/2) and the server CPU the storm takes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::{check_duration, load1};
use crate::BenchError;
use crate::client::{STEP_TIMEOUT, Target, Ws};
use crate::procfs::{self, CpuMark, CpuUse};

/// Options of [`joinstorm`].
#[derive(Clone, Debug)]
pub struct JoinStormOptions {
    /// Users (N) joining the room, each with one connection.
    pub users: usize,
    /// Handshakes in progress at once (before the storm: every connection is open first).
    pub concurrency: usize,
    /// Wait after the last join's ack for the last coalesced changes.
    pub settle: Duration,
    /// Storms, one after the other, each in a fresh room with fresh connections (the first
    /// room is `room_offset`, the next ones follow): more rounds, a finer CPU figure.
    pub rounds: usize,
    /// Which seeded room to use (a fresh one: nobody in it yet).
    pub room_offset: usize,
}

impl Default for JoinStormOptions {
    fn default() -> Self {
        Self { users: 200, concurrency: 64, settle: Duration::from_secs(1), rounds: 1, room_offset: 0 }
    }
}

/// What [`joinstorm`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct JoinStormReport {
    /// `joinstorm`.
    pub workload: &'static str,
    /// Users asked for, per storm.
    pub users: usize,
    /// Storms.
    pub rounds: usize,
    /// Users whose join was acknowledged, in all storms.
    pub joined: usize,
    /// Frames the members received from each storm's start, of every kind, in all storms.
    pub frames: u64,
    /// Of them `memberJoined`.
    pub member_joined: u64,
    /// Of them `memberLeft`.
    pub member_left: u64,
    /// Of them `membersChanged`.
    pub members_changed: u64,
    /// Presence frames (the three above) per member, on average.
    pub presence_frames_per_member: f64,
    /// The most presence frames one member received.
    pub max_presence_frames_per_member: u64,
    /// N·(N−1)/2: the `memberJoined` frames of one storm without coalescing.
    pub uncoalesced_frames: u64,
    /// Members whose count of the room, kept from the frames, is not the number joined.
    pub members_with_a_wrong_count: usize,
    /// From a storm's start until every join was acknowledged, the mean of the storms.
    pub join_elapsed_s: f64,
    /// CPU from each storm's start until the end of its settle time: seconds summed over the
    /// storms, shares of a core their mean.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Server CPU over one storm and its settle time, in milliseconds: the mean of the storms.
    pub server_cpu_ms: Option<f64>,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

/// What one member saw.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    frames: u64,
    member_joined: u64,
    member_left: u64,
    members_changed: u64,
    /// The room's count as this member keeps it, from its join reply on.
    count: Option<i64>,
    joined: bool,
}

impl Tally {
    fn presence(&self) -> u64 {
        self.member_joined + self.member_left + self.members_changed
    }

    fn on_frame(&mut self, v: &Value) -> Result<(), String> {
        self.frames += 1;
        let data = &v["data"];
        match v["event"].as_str() {
            Some("roomHistory") if v["id"] == json!(1) => self.count = data["membersCount"].as_i64(),
            Some("ack") if v["id"] == json!(1) => self.joined = true,
            Some("memberJoined") => {
                self.member_joined += 1;
                self.count = self.count.map(|c| c + 1);
            }
            Some("memberLeft") => {
                self.member_left += 1;
                self.count = self.count.map(|c| c - 1);
            }
            Some("membersChanged") => {
                self.members_changed += 1;
                self.count = data["membersCount"].as_i64();
            }
            Some("error") => return Err(format!("error frame: {data}")),
            _ => {}
        }
        Ok(())
    }
}

/// Joins the room once `start` says so, then reads every frame into `tally` until the
/// connection ends or the task is aborted.
fn spawn_member(
    mut ws: Ws,
    room: String,
    mut start: watch::Receiver<bool>,
    tally: Arc<Mutex<Tally>>,
    failure: Arc<Mutex<Option<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if start.wait_for(|go| *go).await.is_err() {
            return;
        }
        let frame = json!({"event": "joinRoom", "data": {"requestId": room}, "id": 1});
        if let Err(e) = ws.send(Message::text(frame.to_string())).await {
            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("send joinRoom: {e}"));
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            let parsed = serde_json::from_str::<Value>(t.as_str()).map_err(|e| format!("non-JSON frame: {e}"));
            let res = parsed.and_then(|v| tally.lock().unwrap_or_else(|p| p.into_inner()).on_frame(&v));
            if let Err(e) = res {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
        }
    })
}

/// What one storm saw: each member's tally, the CPU, the time until every join's ack.
struct Storm {
    seen: Vec<Tally>,
    cpu: CpuUse,
    join_elapsed_s: f64,
}

/// One storm in `room`: opens every connection, then joins them all at once, waits for every
/// ack and the settle time, and closes them again (then waits the settle time once more, so
/// that the departures are not charged to the next storm).
async fn storm(target: &Target, opts: &JoinStormOptions, room: &str) -> Result<Storm, BenchError> {
    let pids = target.server_pids();
    let prefix = format!("storm-{}", super::nonce());
    let prefix_ref = &prefix;
    let opened: Vec<Ws> = futures_util::stream::iter(0..opts.users)
        .map(|i| async move { target.connect(i, &target.token(&format!("{prefix_ref}-{i}"))?, 64 * 1024).await })
        .buffer_unordered(opts.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let (go, start) = watch::channel(false);
    let failure = Arc::new(Mutex::new(None));
    let tallies: Vec<Arc<Mutex<Tally>>> = (0..opened.len()).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = opened
        .into_iter()
        .zip(&tallies)
        .map(|(ws, t)| spawn_member(ws, room.to_owned(), start.clone(), Arc::clone(t), Arc::clone(&failure)))
        .collect();
    let snapshot = || -> Vec<Tally> { tallies.iter().map(|t| *t.lock().unwrap_or_else(|p| p.into_inner())).collect() };
    let failed = || failure.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let cpu_mark = CpuMark::start(&pids);
    let started = Instant::now();
    go.send_replace(true);
    let deadline = started + STEP_TIMEOUT * 3;
    while snapshot().iter().any(|t| !t.joined) && Instant::now() < deadline && failed().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let join_elapsed_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(opts.settle).await;
    let cpu = cpu_mark.stop(&pids);
    let seen = snapshot();
    for t in &tasks {
        t.abort();
    }
    tokio::time::sleep(opts.settle).await;
    if let Some(e) = failed() {
        return Err(BenchError::Protocol(e));
    }
    let joined = seen.iter().filter(|t| t.joined).count();
    if joined < opts.users {
        return Err(BenchError::Timeout(format!("joinstorm: {joined} of {} joins acknowledged", opts.users)));
    }
    Ok(Storm { seen, cpu, join_elapsed_s })
}

/// Runs the join storm workload.
pub async fn joinstorm(target: &Target, opts: &JoinStormOptions) -> Result<JoinStormReport, BenchError> {
    if opts.users < 2 || opts.users > super::MAX_CONNECTIONS || opts.rounds == 0 || opts.rounds > 100 {
        return Err(BenchError::Options(format!(
            "joinstorm needs 2 to {} users and 1 to 100 rounds",
            super::MAX_CONNECTIONS
        )));
    }
    check_duration("--settle", opts.settle)?;
    procfs::check_open_files(opts.users)?;
    let rooms = target.rooms(opts.room_offset, opts.rounds)?;
    let mut seen = Vec::new();
    let (mut server_s, mut server_pct, mut generator_pct, mut elapsed) = (None::<f64>, None::<f64>, None::<f64>, 0.0);
    let add = |sum: Option<f64>, v: Option<f64>| v.map(|v| sum.unwrap_or(0.0) + v);
    for room in &rooms {
        let s = storm(target, opts, room).await?;
        seen.extend(s.seen);
        server_s = add(server_s, s.cpu.server_cpu_s);
        server_pct = add(server_pct, s.cpu.server_cpu_pct);
        generator_pct = add(generator_pct, s.cpu.generator_cpu_pct);
        elapsed += s.join_elapsed_s;
    }
    #[allow(clippy::cast_precision_loss)]
    let rounds = opts.rounds as f64;
    let cpu = CpuUse {
        server_cpu_s: server_s,
        server_cpu_pct: server_pct.map(|p| p / rounds),
        generator_cpu_pct: generator_pct.map(|p| p / rounds),
    };
    let joined = seen.len();
    let sum = |f: fn(&Tally) -> u64| seen.iter().map(f).sum::<u64>();
    let n = opts.users as u64;
    let presence = sum(Tally::presence);
    #[allow(clippy::cast_precision_loss)]
    Ok(JoinStormReport {
        workload: "joinstorm",
        users: opts.users,
        rounds: opts.rounds,
        joined,
        frames: sum(|t| t.frames),
        member_joined: sum(|t| t.member_joined),
        member_left: sum(|t| t.member_left),
        members_changed: sum(|t| t.members_changed),
        presence_frames_per_member: presence as f64 / joined as f64,
        max_presence_frames_per_member: seen.iter().map(Tally::presence).max().unwrap_or(0),
        uncoalesced_frames: n * (n - 1) / 2,
        members_with_a_wrong_count: seen.iter().filter(|t| t.count != i64::try_from(opts.users).ok()).count(),
        join_elapsed_s: elapsed / rounds,
        cpu,
        server_cpu_ms: server_s.map(|s| s * 1e3 / rounds),
        load1: load1(),
    })
}
