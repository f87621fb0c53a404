//! The cross-node backplane's settings: `--redis-url`, `--node-id`, the quiet-room check and
//! the outbox's bounds.

use labchat_broadcast_redis::OutboxBounds;

use super::InvalidSetting;
use crate::app::BackplaneSettings;
use crate::cli::ServeArgs;

/// The Redis backplane, if `--redis-url` is set: it needs MongoDB (the nodes share their history
/// there), a node id that is not blank (default: the host name and the process id), a check
/// interval above zero and outbox bounds of at least one envelope.
pub(super) fn settings(args: &ServeArgs) -> Result<Option<BackplaneSettings>, InvalidSetting> {
    let Some(redis_url) = args.redis_url.clone() else { return Ok(None) };
    if args.mongo_uri.is_none() {
        return Err(InvalidSetting::new(
            "--redis-url needs --mongo-uri: the nodes share their history through MongoDB (the in-memory store is one node's alone)",
        ));
    }
    if args.backplane_check_interval.is_zero() {
        return Err(InvalidSetting::new("--backplane-check-interval must be greater than zero"));
    }
    if args.backplane_outbox_max_entries == 0
        || args.backplane_outbox_max_bytes == 0
        || args.backplane_reorder_max_per_room == 0
    {
        return Err(InvalidSetting::new(
            "--backplane-outbox-max-entries, --backplane-outbox-max-bytes and --backplane-reorder-max-per-room must be at least 1",
        ));
    }
    let outbox = OutboxBounds {
        max_entries: args.backplane_outbox_max_entries,
        max_bytes: args.backplane_outbox_max_bytes,
        max_age: args.backplane_outbox_max_age,
    };
    let node_id = match args.node_id.clone() {
        Some(id) if id.trim().is_empty() => return Err(InvalidSetting::new("--node-id must not be blank")),
        Some(id) => id,
        None => default_node_id(),
    };
    Ok(Some(BackplaneSettings {
        redis_url,
        node_id,
        check_interval: args.backplane_check_interval,
        outbox,
        reorder_max_per_room: args.backplane_reorder_max_per_room,
    }))
}

/// The host name (from the kernel, else `$HOSTNAME`, else `labchat`) and the process id.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "labchat".to_owned());
    format!("{host}-{}", std::process::id())
}
