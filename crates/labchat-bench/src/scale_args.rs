//! The options of `labchat-bench scale`.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use labchat_bench::{BenchError, Kill, ScaleOptions};

#[derive(Debug, Args)]
pub(crate) struct ScaleArgs {
    /// Rooms of --small-members members (all processes together).
    #[arg(long, default_value_t = 20_000)]
    small_rooms: usize,
    /// Members per small room.
    #[arg(long, default_value_t = 5)]
    small_members: usize,
    /// Members of the large room, spread over every node (0: none); held by shard 0.
    #[arg(long, default_value_t = 1_000)]
    big_members: usize,
    /// This process' share of the small rooms: shard I of --shards.
    #[arg(long, default_value_t = 0)]
    shard: usize,
    /// Load-generator processes of the run.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Handshakes and joins in progress at once (this process).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Loopback source addresses, used in turn (e.g. 127.0.0.2,...,127.0.0.9).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    source: Vec<IpAddr>,
    /// Unix time (seconds) at which traffic starts in every process of the run.
    #[arg(long)]
    traffic_at: Option<u64>,
    /// Idle server CPU measured this long (single-process runs with --server-pid).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// Messages to the large room.
    #[arg(long, default_value_t = 20)]
    fanout_messages: usize,
    /// Time between them.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    fanout_every: Duration,
    /// Messages per second over this process' small rooms.
    #[arg(long, default_value_t = 40.0)]
    rate: f64,
    /// Traffic time before the kill.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    steady: Duration,
    /// Index of the node killed (its clients reconnect to the others) ...
    #[arg(long, requires = "kill_pid")]
    kill_node: Option<usize>,
    /// ... and its pid, sent SIGKILL by this process (give it to one process only; the others
    /// take --kill-node alone, to count their reconnects).
    #[arg(long)]
    kill_pid: Option<u32>,
    /// The kill is done by another process of the run: only --kill-node is taken.
    #[arg(long)]
    other_kills: Option<usize>,
    /// Most time from the kill until everyone is back.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    storm_timeout: Duration,
    /// Most time to open every connection.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    open_timeout: Duration,
    /// Time between the end of traffic and the end-of-run check against the store: longer than
    /// the nodes' quiet-room check (5 s) tells a message delivered late from one never delivered.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: Duration,
}

impl ScaleArgs {
    pub(crate) fn options(&self, room_offset: usize) -> Result<ScaleOptions, BenchError> {
        let victim: Option<(usize, Kill)> = match (self.kill_node, self.kill_pid, self.other_kills) {
            (Some(node), Some(pid), _) => Some((node, Box::pin(kill9(pid)))),
            (None, None, Some(node)) => Some((node, Box::pin(async {}))),
            (None, None, None) => None,
            _ => return Err(BenchError::Options("give --kill-node with --kill-pid, or --other-kills alone".into())),
        };
        Ok(ScaleOptions {
            small_rooms: self.small_rooms,
            small_members: self.small_members,
            big_members: self.big_members,
            shard: self.shard,
            shards: self.shards,
            concurrency: self.concurrency,
            sources: self.source.clone(),
            traffic_at: self.traffic_at.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            idle: self.idle,
            fanout_messages: self.fanout_messages,
            fanout_every: self.fanout_every,
            rate: self.rate,
            steady: self.steady,
            victim,
            storm_timeout: self.storm_timeout,
            open_timeout: self.open_timeout,
            settle: self.settle,
            room_offset,
        })
    }
}

/// `kill -9 PID`.
async fn kill9(pid: u32) {
    let status = tokio::process::Command::new("kill").args(["-9", &pid.to_string()]).status().await;
    if let Err(e) = status {
        report_error(&format!("kill -9 {pid}: {e}"));
    }
}

fn report_error(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "labchat-bench: {line}");
}
