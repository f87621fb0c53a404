//! Command-line interface: every `serve` flag also reads a `LABCHAT_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Serialize, Serializer};

/// labchat: real-time chat for the rooms of a lab's requests, over websockets.
///
/// Clients connect to ws://ADDR/ (or /ws) with a JWT (Authorization: Bearer, or the subprotocols
/// labchat.v1 + bearer.<JWT>), join the room of a request, and chat. See docs/protocol.md.
#[derive(Debug, Parser)]
#[command(name = "labchat", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the chat server.
    ///
    /// Try it: `labchat serve --demo` seeds a request, prints two tokens and how to connect.
    Serve(Box<ServeArgs>),
    /// Mint a development token (HS256) with the configured secret, and print it.
    Token(TokenArgs),
}

/// Accepted JWT algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Alg {
    /// HMAC-SHA256 with --jwt-secret / --jwt-secret-file.
    #[value(name = "HS256")]
    #[serde(rename = "HS256")]
    Hs256,
    /// RSA-SHA256 with --jwt-public-key-file (PEM).
    #[value(name = "RS256")]
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA P-256 with --jwt-public-key-file (PEM).
    #[value(name = "ES256")]
    #[serde(rename = "ES256")]
    Es256,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// JWT verification settings.
#[derive(Debug, Args, Serialize)]
pub struct JwtArgs {
    /// HS256 secret (prefer --jwt-secret-file or the environment variable: flags show in `ps`).
    #[arg(long, env = "LABCHAT_JWT_SECRET", hide_env_values = true)]
    #[serde(serialize_with = "masked")]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret (trailing newline ignored).
    #[arg(long, env = "LABCHAT_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key file, for RS256 or ES256.
    #[arg(long, env = "LABCHAT_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// The one accepted algorithm; any other (including `none`) is refused.
    #[arg(long, env = "LABCHAT_JWT_ALG", value_enum, default_value = "HS256")]
    pub jwt_alg: Alg,
    /// Required `iss` claim.
    #[arg(long, env = "LABCHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "LABCHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Name of the claim holding the role (TEACHER or LAB).
    #[arg(long, env = "LABCHAT_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,
}

/// `labchat serve`.
///
/// Every setting comes from a flag, a `LABCHAT_*` environment variable, or the `--config` TOML
/// file (keys are the flag names in snake_case), in that order of precedence, else its default.
#[derive(Debug, Args, Serialize)]
pub struct ServeArgs {
    /// TOML configuration file (see labchat.example.toml); flags and environment override it.
    #[arg(long, env = "LABCHAT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets masked) as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// Address to listen on.
    #[arg(long, env = "LABCHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of a separate operations listener for /healthz, /readyz and /metrics (default:
    /// none, everything on --listen). When set, /metrics is served only there.
    #[arg(long, env = "LABCHAT_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// JWT settings.
    #[command(flatten)]
    #[serde(flatten)]
    pub jwt: JwtArgs,
    /// Messages sent in roomHistory on join (and the largest `history` page).
    #[arg(long, env = "LABCHAT_HISTORY_LIMIT", default_value_t = 200)]
    pub history_limit: usize,
    /// Longest message, in characters.
    #[arg(long, env = "LABCHAT_MAX_MESSAGE_CHARS", default_value_t = 4000)]
    pub max_message_chars: usize,
    /// Most ids in one ackMessages/readMessages frame.
    #[arg(long, env = "LABCHAT_MAX_RECEIPT_IDS", default_value_t = 500)]
    pub max_receipt_ids: usize,
    /// Largest accepted websocket frame, in bytes (larger: close 1009).
    #[arg(long, env = "LABCHAT_MAX_FRAME_BYTES", default_value_t = 65536)]
    pub max_frame_bytes: usize,
    /// Most rooms one connection may join.
    #[arg(long, env = "LABCHAT_MAX_ROOMS_PER_CONNECTION", default_value_t = 100)]
    pub max_rooms_per_connection: usize,
    /// Most joins (joinRoom) this node runs at once; one more waits briefly for one to end and is
    /// then refused with a retryable UNAVAILABLE carrying retryAfterMs.
    #[arg(long, env = "LABCHAT_MAX_JOINS_IN_FLIGHT", default_value_t = labchat_core::JoinAdmission::default().max_in_flight)]
    pub max_joins_in_flight: usize,
    /// Presence changes of a room (memberJoined, memberLeft) announced one by one per
    /// --presence-burst-interval; past it the interval's changes go out together as one
    /// membersChanged at its end.
    #[arg(long, env = "LABCHAT_PRESENCE_BURST_LIMIT", default_value_t = 10)]
    pub presence_burst_limit: u32,
    /// The interval of --presence-burst-limit.
    #[arg(long, env = "LABCHAT_PRESENCE_BURST_INTERVAL", default_value = "250ms", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub presence_burst_interval: Duration,
    /// How long the history page a join read may serve the next joins of its room with the same
    /// `after` (while nothing of the room reached the node since); `0s`: every join reads its own.
    #[arg(long, env = "LABCHAT_JOIN_REUSE", default_value = "1s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub join_reuse: Duration,
    /// Sustained frames per second per connection.
    #[arg(long, env = "LABCHAT_RATE_PER_SECOND", default_value_t = 30.0)]
    pub rate_per_second: f64,
    /// Frames per connection allowed in a burst.
    #[arg(long, env = "LABCHAT_RATE_BURST", default_value_t = 60.0)]
    pub rate_burst: f64,
    /// A connection that keeps sending before its retryAfterMs, for this long, is closed (1008).
    #[arg(long, env = "LABCHAT_RATE_CLOSE_AFTER", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub rate_close_after: Duration,
    /// Most frames queued for one connection; a client that lets it fill is closed (1013).
    #[arg(long, env = "LABCHAT_OUTBOUND_MAX_FRAMES", default_value_t = 1024)]
    pub outbound_max_frames: usize,
    /// Most bytes queued for one connection; a client that lets it fill is closed (1013).
    #[arg(long, env = "LABCHAT_OUTBOUND_MAX_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub outbound_max_bytes: usize,
    /// Server ping interval; a connection silent for two intervals is closed.
    #[arg(long, env = "LABCHAT_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub ping_interval: Duration,
    /// Most open connections (more get HTTP 503).
    #[arg(long, env = "LABCHAT_MAX_CONNECTIONS", default_value_t = 20000)]
    pub max_connections: usize,
    /// Time a client has to send a whole HTTP request head, the websocket handshake included;
    /// a slower or silent socket is closed.
    #[arg(long, env = "LABCHAT_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub handshake_timeout: Duration,
    /// Most connections not (yet) upgraded to a websocket, per listener; more get HTTP 503.
    #[arg(long, env = "LABCHAT_MAX_PENDING_CONNECTIONS", default_value_t = 1024)]
    pub max_pending_connections: usize,
    /// How often each connection re-checks its user's access to the rooms it joined (and how
    /// long a request looked up in the store is trusted); a user who lost access leaves the room
    /// within two intervals. `0s` turns the periodic re-check off (every frame then looks its
    /// request up).
    #[arg(
        long,
        env = "LABCHAT_ACCESS_RECHECK_INTERVAL",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    #[serde(serialize_with = "duration")]
    pub access_recheck_interval: Duration,
    /// How long after sending a sender may edit a message (`editMessage`); `0s`: never.
    #[arg(long, env = "LABCHAT_EDIT_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub edit_window: Duration,
    /// How long shutdown waits for connections to close.
    #[arg(long, env = "LABCHAT_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// On SIGTERM (or `POST /drain` on the --ops-listen address), how long the node keeps serving
    /// with `/readyz` answering 503, so load balancers take it out, before closing its clients.
    #[arg(long, env = "LABCHAT_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub drain_delay: Duration,
    /// Then its clients are closed with 1012 (service restart), spread evenly over this long;
    /// `0s`: all at once. A second SIGTERM during a drain stops at once.
    #[arg(long, env = "LABCHAT_DRAIN_WINDOW", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub drain_window: Duration,
    /// JSON file of requests to load into the in-memory store: [{"id": "<24-hex>", "createdBy": "<user id>"}].
    #[arg(long, env = "LABCHAT_SEED_REQUESTS")]
    pub seed_requests: Option<PathBuf>,
    /// Demo mode: seed one request, print its id, a TEACHER and a LAB token and how to connect.
    /// Without a configured secret, a random one is used for this run.
    #[arg(long, env = "LABCHAT_DEMO")]
    pub demo: bool,
    /// MongoDB connection string; without it, the in-memory store is used (nothing persists).
    #[arg(long, env = "LABCHAT_MONGO_URI", hide_env_values = true)]
    #[serde(serialize_with = "masked_uri")]
    pub mongo_uri: Option<String>,
    /// MongoDB database name.
    #[arg(long, env = "LABCHAT_MONGO_DB", default_value = "labchat")]
    pub mongo_db: String,
    /// Collection holding the lab's requests (read-only).
    #[arg(long, env = "LABCHAT_MONGO_REQUESTS_COLLECTION", default_value = "requests")]
    pub mongo_requests_collection: String,
    /// Field of a request holding its creator's user id (ObjectId or string).
    #[arg(long, env = "LABCHAT_MONGO_CREATOR_FIELD", default_value = "createdBy")]
    pub mongo_creator_field: String,
    /// Group concurrent message inserts into one batched MongoDB insert (`false`: one insert per
    /// message).
    #[arg(long, env = "LABCHAT_MONGO_BATCH_INSERTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub mongo_batch_inserts: bool,
    /// Time limit of every store operation.
    #[arg(long, env = "LABCHAT_STORE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub store_timeout: Duration,
    /// Redis connection string of the backplane that joins several labchat nodes into one chat
    /// (e.g. `redis://127.0.0.1:6379/`); without it this node serves alone. Needs --mongo-uri:
    /// the nodes share their history through MongoDB.
    #[arg(long, env = "LABCHAT_REDIS_URL", hide_env_values = true)]
    #[serde(serialize_with = "masked_uri")]
    pub redis_url: Option<String>,
    /// The backplane on a Redis Cluster (7 or later) instead of one server: the URLs of some of
    /// its nodes, comma-separated (e.g. `redis://10.0.0.1:7000/,redis://10.0.0.2:7000/`); rooms
    /// travel on sharded channels (see docs/deployment.md). Set this or --redis-url, not both.
    #[arg(long, env = "LABCHAT_REDIS_CLUSTER", hide_env_values = true)]
    #[serde(serialize_with = "masked_uris")]
    pub redis_cluster: Option<String>,
    /// This node's name in the backplane's envelopes, logs and metrics (default: the host name
    /// and the process id).
    #[arg(long, env = "LABCHAT_NODE_ID")]
    pub node_id: Option<String>,
    /// How often each quiet room (no message heard for this long) is checked against the store
    /// on a node with a backplane.
    #[arg(long, env = "LABCHAT_BACKPLANE_CHECK_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub backplane_check_interval: Duration,
    /// Most envelopes a node keeps to publish again after a Redis failure (and keeps, once
    /// published, for a node whose subscriber was away); past it the oldest are dropped and
    /// their rooms resynced.
    #[arg(long, env = "LABCHAT_BACKPLANE_OUTBOX_MAX_ENTRIES", default_value_t = 10_000)]
    pub backplane_outbox_max_entries: usize,
    /// Most payload bytes of the outbox (each of its two queues).
    #[arg(long, env = "LABCHAT_BACKPLANE_OUTBOX_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub backplane_outbox_max_bytes: usize,
    /// Oldest envelope the outbox publishes again; older ones are dropped and their rooms
    /// resynced.
    #[arg(long, env = "LABCHAT_BACKPLANE_OUTBOX_MAX_AGE", default_value = "30s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "duration")]
    pub backplane_outbox_max_age: Duration,
    /// Most messages a node holds for one room ahead of a missing one; past it they are dropped
    /// and the room is re-read from the store.
    #[arg(long, env = "LABCHAT_BACKPLANE_REORDER_MAX_PER_ROOM", default_value_t = labchat_broadcast_redis::DEFAULT_REORDER_MAX_PER_ROOM)]
    pub backplane_reorder_max_per_room: usize,
    /// Most messages a node holds ahead of missing ones, all rooms together; past it the room
    /// whose message crossed it drops what it holds and is re-read from the store.
    #[arg(long, env = "LABCHAT_BACKPLANE_REORDER_MAX_PER_NODE", default_value_t = labchat_broadcast_redis::DEFAULT_REORDER_MAX_PER_NODE)]
    pub backplane_reorder_max_per_node: usize,
    /// The backplane envelope version this node writes: 2, read by the previous release (the
    /// default: safe while a rolling upgrade runs), or 3, authenticated (needs a backplane
    /// secret; raise it once no node of the previous release is left, see docs/deployment.md).
    #[arg(long, env = "LABCHAT_BACKPLANE_VERSION", default_value_t = 2)]
    pub backplane_version: u32,
    /// The secret (16 bytes or more) shared by the nodes, that seals what this node publishes
    /// and checks what it receives (prefer --backplane-secret-file or the environment variable:
    /// flags show in `ps`).
    #[arg(long, env = "LABCHAT_BACKPLANE_SECRET", hide_env_values = true)]
    #[serde(serialize_with = "masked")]
    pub backplane_secret: Option<String>,
    /// File holding the backplane secret (trailing newline ignored).
    #[arg(long, env = "LABCHAT_BACKPLANE_SECRET_FILE")]
    pub backplane_secret_file: Option<PathBuf>,
    /// The previous backplane secret, still accepted (never used to seal) while a rotation rolls
    /// over the nodes.
    #[arg(long, env = "LABCHAT_BACKPLANE_PREVIOUS_SECRET", hide_env_values = true)]
    #[serde(serialize_with = "masked")]
    pub backplane_previous_secret: Option<String>,
    /// File holding the previous backplane secret (trailing newline ignored).
    #[arg(long, env = "LABCHAT_BACKPLANE_PREVIOUS_SECRET_FILE")]
    pub backplane_previous_secret_file: Option<PathBuf>,
    /// Runtime worker threads (default: one per core).
    #[arg(long, env = "LABCHAT_WORKERS")]
    pub workers: Option<usize>,
    /// Log format.
    #[arg(long, env = "LABCHAT_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `labchat=debug` (RUST_LOG also works).
    #[arg(long, env = "LABCHAT_LOG")]
    pub log: Option<String>,
}

/// `labchat token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// The role: TEACHER or LAB.
    #[arg(long)]
    pub role: String,
    /// How long the token is valid, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// HS256 secret.
    #[arg(long, env = "LABCHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret.
    #[arg(long, env = "LABCHAT_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Name of the role claim.
    #[arg(long, env = "LABCHAT_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,
}

fn masked<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("********"),
        None => s.serialize_none(),
    }
}

/// Masks the password of `scheme://user:password@host`.
fn masked_uri<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(uri) => s.serialize_str(&mask_uri_password(uri)),
        None => s.serialize_none(),
    }
}

/// Masks the password of each of comma-separated URIs.
fn masked_uris<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(uris) => s.serialize_str(&uris.split(',').map(mask_uri_password).collect::<Vec<_>>().join(",")),
        None => s.serialize_none(),
    }
}

/// `mongodb://user:secret@host/db` becomes `mongodb://user:********@host/db`.
pub fn mask_uri_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_owned() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return uri.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
        None => uri.to_owned(),
    }
}

fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
