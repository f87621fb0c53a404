//! The options of `labchat-bench heal`.

use clap::Args;
use labchat_bench::HealOptions;

#[derive(Debug, Args)]
pub(crate) struct HealArgs {
    /// Heals per fault.
    #[arg(long, default_value_t = 20)]
    heals: usize,
    /// The redis-server program.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// The port of the redis-server the bench runs (127.0.0.1).
    #[arg(long)]
    redis_port: u16,
}

impl HealArgs {
    /// The workload's options, its rooms numbered from `room_offset`.
    pub(crate) fn options(self, room_offset: usize) -> HealOptions {
        let Self { heals, redis_server, redis_port } = self;
        HealOptions { heals, redis_server, redis_port, room_offset, ..HealOptions::default() }
    }
}
