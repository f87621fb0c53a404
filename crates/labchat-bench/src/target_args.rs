//! The options every workload takes: where the server is, its secret and seed, and how to report.

use std::path::PathBuf;

use clap::Args;
use labchat_bench::{BenchError, Target, seed};

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// The server's websocket URL (loopback only). Repeat it (or give a comma list) for the
    /// nodes of a cluster: member i of a workload connects to URL i % n, so the sender (member
    /// 0) stays on the first.
    #[arg(long, value_delimiter = ',', num_args = 1, default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// The server's HS256 secret (its --jwt-secret).
    #[arg(long, env = "LABCHAT_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The role claim name (the server's --jwt-role-claim).
    #[arg(long, default_value = "role")]
    role_claim: String,
    /// The seed file the server was started with (default: the ids `seed` generates).
    #[arg(long)]
    seed_file: Option<PathBuf>,
    /// First room of the seed to use (runs on fresh rooms start with empty histories).
    #[arg(long, default_value_t = 0)]
    pub(crate) room_offset: usize,
    /// The server's pid, to read its RSS and CPU time from /proc. Repeat it (or give a comma
    /// list) for several nodes: their CPU times and RSS are summed.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    server_pid: Vec<u32>,
    /// One JSON object per run instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Generator threads (1: a current-thread runtime, meant for a generator pinned to one core).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
}

impl TargetArgs {
    pub(crate) fn target(&self) -> Result<Target, BenchError> {
        let (first, more) = self.url.split_first().ok_or_else(|| BenchError::Options("--url is required".into()))?;
        let mut t = Target::new(first.as_str(), self.secret.as_bytes(), 0)?.with_more_urls(more.to_vec())?;
        t.role_claim.clone_from(&self.role_claim);
        t.rooms = match &self.seed_file {
            Some(path) => seed::read_ids(path)?,
            None => (0..MAX_GENERATED_ROOMS).map(seed::room_id).collect(),
        };
        t.server_pid = self.server_pid.first().copied();
        t.more_server_pids = self.server_pid.iter().skip(1).copied().collect();
        Ok(t)
    }
}

const MAX_GENERATED_ROOMS: usize = 100_000;
