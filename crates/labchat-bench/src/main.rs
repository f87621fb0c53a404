//! `labchat-bench`: runs one workload against a labchat server started separately, and prints a
//! table (or, with `--json`, one JSON object per run) on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use labchat_bench::report::Table;
use labchat_bench::{
    FanoutOptions, IdleOptions, JoinStormOptions, RateOptions, ReceiptsOptions, SessionOptions, SlowOptions,
    StepOptions, seed,
};
use serde::Serialize;
use target_args::TargetArgs;

mod heal_args;
mod scale_args;
mod target_args;

/// Load generator for labchat: speaks the JSON protocol over real websockets, to 127.0.0.1 only.
///
/// Start the server with the same secret and seed file, and a raised rate limit, e.g.:
///   labchat-bench seed --rooms 1000 --out seed.json
///   labchat serve --jwt-secret S --seed-requests seed.json --rate-per-second 1000000 --rate-burst 1000000
///   labchat-bench fanout --secret S --seed-file seed.json --server-pid PID
///
/// Against two nodes of a cluster, give both: --url URL1 --url URL2 --server-pid PID1 --server-pid PID2.
#[derive(Debug, Parser)]
#[command(name = "labchat-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a seed file of generated requests for `labchat serve --seed-requests`.
    Seed {
        /// How many requests (rooms).
        #[arg(long)]
        rooms: usize,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Their creator (any user: the bench connects as LAB).
        #[arg(long, default_value = seed::DEFAULT_CREATOR)]
        created_by: String,
    },
    /// N idle joined connections over R rooms: server RSS per connection, connect+join latency.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        /// Connections (N).
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Rooms (R).
        #[arg(long, default_value_t = 1_000, conflicts_with = "members_per_room")]
        rooms: usize,
        /// Members per room (K): sets R to N / K, rounded up.
        #[arg(long)]
        members_per_room: Option<usize>,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Wait after the last join before reading the RSS.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Keep the connections open this long afterwards.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        hold: Duration,
    },
    /// A writer posts M messages of S characters, then N readers join the room (its history in
    /// their join reply), read every frame and stay: server RSS per reader.
    Session {
        #[command(flatten)]
        target: TargetArgs,
        /// Readers (N).
        #[arg(long, default_value_t = 1_000)]
        readers: usize,
        /// Messages (M) posted before the readers join.
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Characters (S) per message, `é` among them.
        #[arg(long, default_value_t = 150)]
        chars: usize,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Wait after posting, and after the last join, before reading the RSS.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        settle: Duration,
    },
    /// N users join one fresh room at once: presence frames per member, server CPU.
    Joinstorm {
        #[command(flatten)]
        target: TargetArgs,
        /// Users (N), one connection each.
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Handshakes in progress at once (every connection opens before the storm).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Wait after the last join for the last coalesced changes.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Storms one after the other, each in a fresh room (a finer CPU figure).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// One room of M members, W messages in flight: deliveries/s, latency, CPU per delivery.
    Fanout {
        #[command(flatten)]
        target: TargetArgs,
        /// Members (M), the sender included.
        #[arg(long, default_value_t = 50)]
        members: usize,
        /// Messages in flight (W).
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Message size, bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Warm-up before measuring.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        /// Measured time.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Most messages in all.
        #[arg(long, default_value_t = 5_000_000)]
        max_messages: u64,
    },
    /// R rooms x M members at a fixed send rate (latency from the scheduled time); --step
    /// searches the highest rate with p99 under --p99-ms.
    Rate {
        #[command(flatten)]
        target: TargetArgs,
        /// Rooms (R).
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Members per room (M).
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Messages per second, all rooms together (the first step's rate with --step).
        #[arg(long, default_value_t = 30_000.0)]
        rate: f64,
        /// Message size, bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Warm-up before measuring (each step).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        /// Measured time (each step).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Wait this long for late deliveries.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        drain_timeout: Duration,
        /// Step mode.
        #[arg(long)]
        step: bool,
        /// Step mode: rate factor between steps.
        #[arg(long, default_value_t = 1.5)]
        factor: f64,
        /// Step mode: highest rate tried.
        #[arg(long, default_value_t = 200_000.0)]
        max_rate: f64,
        /// Step mode: the p99 bound, ms.
        #[arg(long, default_value_t = 50.0)]
        p99_ms: f64,
        /// Step mode: bisection steps after the first failure.
        #[arg(long, default_value_t = 3)]
        refine: usize,
    },
    /// Every receiver acks and reads each message: time until the sender saw every receipt.
    Receipts {
        #[command(flatten)]
        target: TargetArgs,
        /// Members (M), the sender included.
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Messages.
        #[arg(long, default_value_t = 2_000)]
        messages: u64,
        /// Messages awaiting receipts at once.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Message size, bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Longest run.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        max_duration: Duration,
    },
    /// Small rooms and one large room over every node, held open: connect+join, idle CPU,
    /// fan-out, a steady rate, then `kill -9` of one node and its clients' reconnect storm. Run
    /// several processes (--shard/--shards) with one --traffic-at: see scripts/scale.sh.
    Scale {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        scale: scale_args::ScaleArgs,
    },
    /// One member never reads: the others' latency and the server RSS over time.
    Slow {
        #[command(flatten)]
        target: TargetArgs,
        /// Members (M), the stuck one included.
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Message size, bytes.
        #[arg(long, default_value_t = 1_000)]
        size: usize,
        /// Sending time.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// RSS sampling interval.
        #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
        sample_every: Duration,
    },
    /// Two nodes (--url twice) whose backplane is a redis-server the bench runs on
    /// --redis-port and breaks (kill -9 and restart, with and without posts meanwhile; CLIENT
    /// KILL of the normal and the pubsub connections; a 3 s CLIENT PAUSE): the latency of the
    /// first post after each heal, node 1 to node 2. Start the nodes with
    /// --redis-url redis://127.0.0.1:PORT/ and --backplane-check-interval 60s.
    Heal {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        heal: heal_args::HealArgs,
    },
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "labchat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn emit<R: Table + Serialize>(json: bool, report: &R) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    } else {
        writeln!(out, "{}", report.render())?;
    }
    out.flush()?;
    Ok(())
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, BoxError> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    Ok(rt)
}

fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Cmd::Seed { rooms, out, created_by } => {
            if rooms == 0 || rooms > 10_000_000 {
                return Err("--rooms must be 1 to 10,000,000".into());
            }
            seed::write(&out, rooms, &created_by)?;
            writeln!(std::io::stderr(), "wrote {rooms} requests to {}", out.display())?;
            Ok(())
        }
        Cmd::Idle { target, connections, rooms, members_per_room, concurrency, settle, hold } => {
            let t = target.target()?;
            let rooms = match members_per_room {
                Some(0) => return Err("--members-per-room must be at least 1".into()),
                Some(k) => connections.div_ceil(k),
                None => rooms,
            };
            let opts = IdleOptions { connections, rooms, concurrency, settle, hold, room_offset: target.room_offset };
            let report = runtime(target.threads)?.block_on(labchat_bench::idle(&t, &opts))?;
            emit(target.json, &report)
        }
        Cmd::Session { target, readers, messages, chars, concurrency, settle } => {
            let t = target.target()?;
            let opts =
                SessionOptions { readers, messages, chars, concurrency, settle, room_offset: target.room_offset };
            let report = runtime(target.threads)?.block_on(labchat_bench::session(&t, &opts))?;
            emit(target.json, &report)
        }
        Cmd::Joinstorm { target, users, concurrency, settle, rounds } => {
            let t = target.target()?;
            let opts = JoinStormOptions { users, concurrency, settle, rounds, room_offset: target.room_offset };
            let report = runtime(target.threads)?.block_on(labchat_bench::joinstorm(&t, &opts))?;
            emit(target.json, &report)
        }
        Cmd::Fanout { target, members, window, size, warmup, duration, max_messages } => {
            let t = target.target()?;
            let opts = FanoutOptions {
                members,
                window,
                size,
                warmup,
                duration,
                max_messages,
                room_offset: target.room_offset,
                ..FanoutOptions::default()
            };
            let report = runtime(target.threads)?.block_on(labchat_bench::fanout(&t, &opts))?;
            emit(target.json, &report)
        }
        Cmd::Rate {
            target,
            rooms,
            members,
            rate,
            size,
            warmup,
            duration,
            drain_timeout,
            step,
            factor,
            max_rate,
            p99_ms,
            refine,
        } => {
            let t = target.target()?;
            let base = RateOptions {
                rooms,
                members,
                rate,
                size,
                warmup,
                duration,
                room_offset: target.room_offset,
                drain_timeout,
            };
            let rt = runtime(target.threads)?;
            if step {
                let opts = StepOptions { base, factor, max_rate, p99_ms, refine };
                let json = target.json;
                let report = rt.block_on(labchat_bench::rate_steps(&t, &opts, |s| {
                    let _ = emit(json, s);
                }))?;
                emit(target.json, &report)
            } else {
                let report = rt.block_on(labchat_bench::rate(&t, &base))?;
                emit(target.json, &report)
            }
        }
        Cmd::Receipts { target, members, messages, window, size, max_duration } => {
            let t = target.target()?;
            let opts = ReceiptsOptions {
                members,
                messages,
                window,
                size,
                room_offset: target.room_offset,
                max_duration,
                ..ReceiptsOptions::default()
            };
            let report = runtime(target.threads)?.block_on(labchat_bench::receipts(&t, &opts))?;
            emit(target.json, &report)
        }
        Cmd::Heal { target, heal } => {
            let (t, opts) = (target.target()?, heal.options(target.room_offset));
            let report = runtime(target.threads)?.block_on(labchat_bench::heal(&t, &opts))?;
            emit(target.json, &report)
        }
        Cmd::Scale { target, scale } => {
            let t = target.target()?;
            let opts = scale.options(target.room_offset)?;
            let report = runtime(target.threads)?.block_on(labchat_bench::scale(&t, opts))?;
            emit(target.json, &report)
        }
        Cmd::Slow { target, members, rate, size, duration, sample_every } => {
            let t = target.target()?;
            let opts = SlowOptions {
                members,
                rate,
                size,
                duration,
                sample_every,
                room_offset: target.room_offset,
                ..SlowOptions::default()
            };
            let report = runtime(target.threads)?.block_on(labchat_bench::slow(&t, &opts))?;
            emit(target.json, &report)
        }
    }
}
