//! `session`: a room as a user finds it. A writer posts M messages of S characters (accented,
//! so multi-byte), then N readers join the room (each receives the history in its join reply),
//! read every frame they are sent, and stay connected. Measures the server's resident memory
//! per reader once they have settled: what a connection keeps after a large reply.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::{check_duration, load1};
use crate::BenchError;
use crate::client::{self, STEP_TIMEOUT, Target, Ws};
use crate::procfs::{self, CpuMark, CpuUse};

/// Options of [`session`].
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Readers (N) joining the room after the messages were posted.
    pub readers: usize,
    /// Messages (M) the writer posts first.
    pub messages: usize,
    /// Characters (S) per message, `é` among them.
    pub chars: usize,
    /// Handshakes in progress at once.
    pub concurrency: usize,
    /// Wait after the last join before reading the server's RSS.
    pub settle: Duration,
    /// Which seeded room to use (a fresh one: its history is what the writer posts).
    pub room_offset: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            readers: 1_000,
            messages: 200,
            chars: 150,
            concurrency: 64,
            settle: Duration::from_secs(2),
            room_offset: 0,
        }
    }
}

/// What [`session`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct SessionReport {
    /// `session`.
    pub workload: &'static str,
    /// Readers asked for.
    pub readers: usize,
    /// Readers that joined.
    pub joined: usize,
    /// Messages posted before the readers joined.
    pub messages: usize,
    /// Characters per message.
    pub chars: usize,
    /// UTF-8 bytes per message text.
    pub text_bytes: usize,
    /// Frames the readers received in all (join replies, acks, presence, ...).
    pub frames_received: u64,
    /// Bytes of the largest frame a reader received (the join's `roomHistory`).
    pub largest_frame_bytes: usize,
    /// Server RSS after the writer posted, before any reader connected, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every reader joined and settled, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after - before) / joined, bytes.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU while the readers joined.
    #[serde(flatten)]
    pub cpu: CpuUse,
    /// Time to open and join every reader.
    pub join_elapsed_s: f64,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

/// A text of `chars` characters, a third of them `é`.
pub fn text(chars: usize) -> String {
    "Résumé é".chars().cycle().take(chars).collect()
}

/// Sends `frame` with correlation id `id` and waits for its `ack`, skipping other frames.
async fn request(ws: &mut Ws, frame: Value, id: u64) -> Result<(), BenchError> {
    ws.send(Message::text(frame.to_string())).await.map_err(|e| BenchError::Protocol(format!("writer: send: {e}")))?;
    let wait = async {
        while let Some(msg) = ws.next().await {
            let Ok(Message::Text(t)) = msg else {
                if let Err(e) = msg {
                    return Err(BenchError::Protocol(format!("writer: {e}")));
                }
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str())
                .map_err(|e| BenchError::Protocol(format!("writer: server sent non-JSON: {e}")))?;
            match (v["event"].as_str(), v["id"].as_u64()) {
                (Some("ack"), Some(got)) if got == id => return Ok(()),
                (Some("error"), _) => return Err(BenchError::Protocol(format!("writer: {}", v["data"]))),
                _ => {}
            }
        }
        Err(BenchError::Protocol("writer: closed".into()))
    };
    tokio::time::timeout(STEP_TIMEOUT, wait).await.map_err(|_| BenchError::Timeout(format!("writer: ack {id}")))?
}

/// Reads every frame of a joined reader until the connection ends (or the task is aborted);
/// counts them and the largest one.
fn spawn_drain(mut ws: Ws, tally: std::sync::Arc<std::sync::Mutex<(u64, usize)>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let mut g = tally.lock().unwrap_or_else(|p| p.into_inner());
                g.0 += 1;
                g.1 = g.1.max(t.len());
            }
        }
    })
}

/// Joins `room` like [`client::join`], and tallies the frames read before the ack.
async fn join_counting(ws: &mut Ws, room: &str, index: usize) -> Result<(u64, usize), BenchError> {
    let frame = json!({"event": "joinRoom", "data": {"requestId": room}, "id": 1});
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| BenchError::Protocol(format!("reader {index}: send joinRoom: {e}")))?;
    let wait = async {
        let (mut frames, mut largest) = (0u64, 0usize);
        while let Some(msg) = ws.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t,
                Ok(_) => continue,
                Err(e) => return Err(BenchError::Protocol(format!("reader {index}: {e}"))),
            };
            frames += 1;
            largest = largest.max(text.len());
            let v: Value = serde_json::from_str(text.as_str())
                .map_err(|e| BenchError::Protocol(format!("reader {index}: server sent non-JSON: {e}")))?;
            match (v["event"].as_str(), v["id"].as_u64()) {
                (Some("ack"), Some(1)) => return Ok((frames, largest)),
                (Some("error"), _) => return Err(BenchError::Protocol(format!("reader {index}: {}", v["data"]))),
                _ => {}
            }
        }
        Err(BenchError::Protocol(format!("reader {index}: closed while joining")))
    };
    tokio::time::timeout(STEP_TIMEOUT, wait).await.map_err(|_| BenchError::Timeout(format!("reader {index}: join")))?
}

/// Runs the session workload.
pub async fn session(target: &Target, opts: &SessionOptions) -> Result<SessionReport, BenchError> {
    if opts.readers == 0 || opts.readers > super::MAX_CONNECTIONS || opts.messages > 100_000 || opts.chars == 0 {
        return Err(BenchError::Options(format!(
            "session needs 1 to {} readers, at most 100,000 messages and 1+ characters",
            super::MAX_CONNECTIONS
        )));
    }
    check_duration("--settle", opts.settle)?;
    procfs::check_open_files(opts.readers + 1)?;
    let room = target.rooms(opts.room_offset, 1)?.remove(0);
    let pids = target.server_pids();
    let prefix = format!("session-{}", super::nonce());
    let body = text(opts.chars);

    let mut writer = target.connect(0, &target.token(&format!("{prefix}-writer"))?, 64 * 1024).await?;
    client::join(&mut writer, &room, 0).await?;
    for k in 0..opts.messages {
        let id = 2 + k as u64;
        request(&mut writer, json!({"event": "message", "data": {"requestId": room, "message": body}, "id": id}), id)
            .await?;
    }
    let drain_writer = spawn_drain(writer, std::sync::Arc::default());
    tokio::time::sleep(opts.settle).await;
    let rss_before = procfs::rss_kib_sum(&pids)?;

    let tally = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0usize)));
    let cpu_mark = CpuMark::start(&pids);
    let started = Instant::now();
    let (room_ref, prefix_ref) = (&room, &prefix);
    let mut joins = futures_util::stream::iter(0..opts.readers)
        .map(|i| async move {
            let token = target.token(&format!("{prefix_ref}-{i}"))?;
            let mut ws = target.connect(i + 1, &token, 4096).await?;
            let seen = join_counting(&mut ws, room_ref, i).await?;
            Ok::<_, BenchError>((ws, seen))
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut tasks = vec![drain_writer];
    while let Some(r) = joins.next().await {
        let (ws, (frames, largest)) = r?;
        {
            let mut g = tally.lock().unwrap_or_else(|p| p.into_inner());
            g.0 += frames;
            g.1 = g.1.max(largest);
        }
        tasks.push(spawn_drain(ws, std::sync::Arc::clone(&tally)));
    }
    drop(joins);
    let join_elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_mark.stop(&pids);
    tokio::time::sleep(opts.settle).await;
    let rss_after = procfs::rss_kib_sum(&pids)?;
    let joined = tasks.len() - 1;
    for t in &tasks {
        t.abort();
    }
    let (frames_received, largest_frame_bytes) = *tally.lock().unwrap_or_else(|p| p.into_inner());
    #[allow(clippy::cast_precision_loss)]
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if joined > 0 => Some((a as f64 - b as f64) * 1024.0 / joined as f64),
        _ => None,
    };
    Ok(SessionReport {
        workload: "session",
        readers: opts.readers,
        joined,
        messages: opts.messages,
        chars: opts.chars,
        text_bytes: body.len(),
        frames_received,
        largest_frame_bytes,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_bytes: per_conn,
        cpu,
        join_elapsed_s: join_elapsed,
        load1: load1(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_text_has_the_characters_asked_for_and_accents() {
        let t = super::text(150);
        assert_eq!(t.chars().count(), 150);
        assert!(t.contains('é'));
        assert!(t.len() > 150);
    }
}
