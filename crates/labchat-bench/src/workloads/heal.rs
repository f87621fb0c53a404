//! `heal`: how long the first post after a Redis fault takes to cross nodes once the fault
//! healed. The bench runs the cluster's redis-server itself (on `--redis-port`, loopback, no
//! persistence) so that it can kill and restart it; the nodes (started separately with
//! `--redis-url redis://127.0.0.1:PORT/`) are watched through their `/readyz`. For each variant
//! and each heal: the fault, then both nodes' `/readyz` reporting the backplane connected, then
//! ONE post on the first node; measured from sending it to its `message` frame on the second
//! node. Run it with the nodes' quiet-room check long (60 s) so that no delivery comes from it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use super::load1;
use crate::BenchError;
use crate::client::{self, Target, Ws};
use crate::stats::{self, Latency};

/// The faults, in the order they run.
pub const VARIANTS: [Variant; 5] =
    [Variant::QuietRestart, Variant::BusyRestart, Variant::KillNormal, Variant::KillPubsub, Variant::Pause3s];

/// One kind of Redis fault.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// `kill -9`, restart, nobody posted meanwhile.
    QuietRestart,
    /// `kill -9`, 10 posts on the first node while Redis is down, restart.
    BusyRestart,
    /// `CLIENT KILL TYPE normal` (the publishers' and presence connections).
    KillNormal,
    /// `CLIENT KILL TYPE pubsub` (the subscribers' connections).
    KillPubsub,
    /// `CLIENT PAUSE 3000`.
    Pause3s,
}

/// Options of [`heal`].
#[derive(Clone, Debug)]
pub struct HealOptions {
    /// Heals per variant.
    pub heals: usize,
    /// The redis-server program.
    pub redis_server: String,
    /// Its port on 127.0.0.1.
    pub redis_port: u16,
    /// Which seeded room to use.
    pub room_offset: usize,
    /// Longest wait for a node's `/readyz` or for a delivery.
    pub wait: Duration,
}

impl Default for HealOptions {
    fn default() -> Self {
        Self {
            heals: 20,
            redis_server: "redis-server".into(),
            redis_port: 6390,
            room_offset: 0,
            wait: Duration::from_secs(30),
        }
    }
}

/// One variant's figures.
#[derive(Clone, Debug, Serialize)]
pub struct HealVariant {
    /// The fault.
    pub variant: Variant,
    /// From the post on the first node to its `message` on the second.
    pub latency: Latency,
}

/// What [`heal`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct HealReport {
    /// `heal`.
    pub workload: &'static str,
    /// Heals per variant.
    pub heals: usize,
    /// Per variant.
    pub variants: Vec<HealVariant>,
    /// 1-minute load average at the end.
    pub load1: Option<f64>,
}

/// The redis-server the bench runs, killed on drop.
struct Redis {
    program: String,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    async fn start(&mut self) -> Result<(), BenchError> {
        let child = Command::new(&self.program)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BenchError::Io { context: format!("starting {}", self.program), source })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").await.as_deref() != Some("+PONG") {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!("{} on port {} answering PING", self.program, self.port)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// One inline command; the first line of the reply.
    async fn command(&self, command: &str) -> Option<String> {
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            stream.write_all(format!("{command}\r\n").as_bytes()).await.ok()?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).await.ok()?;
            Some(line.trim_end().to_owned())
        };
        tokio::time::timeout(Duration::from_secs(2), exchange).await.ok()?
    }
}

/// `backplane.connected` of the node behind `ws_url`'s `/readyz`, `None` when it does not answer.
async fn backplane_connected(ws_url: &str) -> Option<bool> {
    let authority = ws_url.strip_prefix("ws://")?.split('/').next()?;
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await.ok()?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1)?).ok()?;
        body["backplane"]["connected"].as_bool()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange).await.ok()?
}

async fn wait_backplane(target: &Target, connected: bool, wait: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + wait;
    for url in target.urls() {
        while backplane_connected(url).await != Some(connected) {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!("{url}: /readyz backplane.connected {connected}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Sends a `message` frame with id `id` (its ack is skipped by [`until_message`]).
async fn post(ws: &mut Ws, room: &str, text: &str, id: u64) -> Result<(), BenchError> {
    let frame = serde_json::json!({"event": "message", "data": {"requestId": room, "message": text}, "id": id});
    ws.send(Message::text(frame.to_string())).await.map_err(|e| BenchError::Protocol(format!("send: {e}")))
}

/// Reads `ws` until a frame that `wanted` accepts; fails on an `error` frame.
async fn until(ws: &mut Ws, what: &str, wait: Duration, wanted: impl Fn(&Value) -> bool) -> Result<(), BenchError> {
    let read = async {
        while let Some(frame) = ws.next().await {
            let Ok(Message::Text(t)) = frame else { continue };
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
            if wanted(&v) {
                return Ok(());
            }
            if v["event"] == "error" {
                return Err(BenchError::Protocol(format!("{what}: error frame {}", v["data"])));
            }
        }
        Err(BenchError::Protocol(format!("{what}: connection closed")))
    };
    tokio::time::timeout(wait, read).await.map_err(|_| BenchError::Timeout(what.to_owned()))?
}

/// Posts `text` with id `id` and waits for its ack (the sender's own frames are read, never left
/// to pile up).
async fn post_acked(ws: &mut Ws, room: &str, text: &str, id: u64, wait: Duration) -> Result<(), BenchError> {
    post(ws, room, text, id).await?;
    until(ws, "the ack of a post", wait, |v| v["event"] == "ack" && v["id"] == id).await
}

/// Waits for the `message` of `room` with text `text`.
async fn until_message(ws: &mut Ws, room: &str, text: &str, wait: Duration) -> Result<(), BenchError> {
    until(ws, &format!("the message {text:?}"), wait, |v| {
        v["event"] == "message" && v["data"]["requestId"] == room && v["data"]["message"] == text
    })
    .await
}

/// Runs the faults of [`VARIANTS`], `heals` times each; see the module.
pub async fn heal(target: &Target, opts: &HealOptions) -> Result<HealReport, BenchError> {
    if target.nodes() < 2 || opts.heals == 0 || opts.heals > 1_000 {
        return Err(BenchError::Options("heal needs two --url (two nodes) and 1 to 1,000 heals".into()));
    }
    let mut redis = Redis { program: opts.redis_server.clone(), port: opts.redis_port, child: None };
    redis.start().await?;
    wait_backplane(target, true, opts.wait).await?;
    let room = target.rooms(opts.room_offset, 1)?.remove(0);
    let mut sender = target.connect_member(0, 0, &target.token("heal-sender")?, 64 * 1024).await?;
    let mut member = target.connect_member(1, 1, &target.token("heal-member")?, 64 * 1024).await?;
    client::join(&mut sender, &room, 0).await?;
    client::join(&mut member, &room, 1).await?;
    let nonce = super::nonce();
    let mut n = 0u64;
    let mut variants = Vec::new();
    for variant in VARIANTS {
        let mut hist: Histogram<u64> = stats::histogram()?;
        for _ in 0..opts.heals {
            let mut last = None;
            match variant {
                Variant::QuietRestart | Variant::BusyRestart => {
                    redis.kill().await;
                    wait_backplane(target, false, opts.wait).await?;
                    if variant == Variant::BusyRestart {
                        for _ in 0..10 {
                            n += 1;
                            let text = format!("heal {nonce} {n}");
                            post_acked(&mut sender, &room, &text, n, opts.wait).await?;
                            last = Some(text);
                        }
                    }
                    redis.start().await?;
                }
                Variant::KillNormal => drop(redis.command("CLIENT KILL TYPE normal").await),
                Variant::KillPubsub => drop(redis.command("CLIENT KILL TYPE pubsub").await),
                Variant::Pause3s => {
                    drop(redis.command("CLIENT PAUSE 3000").await);
                    tokio::time::sleep(Duration::from_millis(3050)).await;
                }
            }
            // A cut connection may take a moment to be noticed: let /readyz see it first.
            tokio::time::sleep(Duration::from_millis(100)).await;
            wait_backplane(target, true, opts.wait).await?;
            if let Some(text) = last {
                until_message(&mut member, &room, &text, opts.wait).await?;
            }
            n += 1;
            let text = format!("heal {nonce} {n}");
            let started = Instant::now();
            post(&mut sender, &room, &text, n).await?;
            until_message(&mut member, &room, &text, opts.wait).await?;
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
            hist.record(took).map_err(|e| BenchError::Histogram(e.to_string()))?;
            until(&mut sender, "the ack of a post", opts.wait, |v| v["event"] == "ack" && v["id"] == n).await?;
        }
        variants.push(HealVariant { variant, latency: Latency::of(&hist) });
    }
    redis.kill().await;
    Ok(HealReport { workload: "heal", heals: opts.heals, variants, load1: load1() })
}
