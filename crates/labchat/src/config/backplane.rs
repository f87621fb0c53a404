//! The cross-node backplane's settings: `--redis-url` and `--node-id`.

use super::InvalidSetting;
use crate::app::BackplaneSettings;

/// The Redis backplane, if `--redis-url` is set: it needs MongoDB (the nodes share their history
/// there), and a node id that is not blank (default: the host name and the process id).
pub(super) fn settings(
    redis_url: Option<String>,
    node_id: Option<String>,
    mongo: bool,
) -> Result<Option<BackplaneSettings>, InvalidSetting> {
    let Some(redis_url) = redis_url else { return Ok(None) };
    if !mongo {
        return Err(InvalidSetting::new(
            "--redis-url needs --mongo-uri: the nodes share their history through MongoDB (the in-memory store is one node's alone)",
        ));
    }
    let node_id = match node_id {
        Some(id) if id.trim().is_empty() => return Err(InvalidSetting::new("--node-id must not be blank")),
        Some(id) => id,
        None => default_node_id(),
    };
    Ok(Some(BackplaneSettings { redis_url, node_id }))
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
