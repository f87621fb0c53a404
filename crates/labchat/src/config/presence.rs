//! The bound on a room's presence announcements: `--presence-burst-limit` and
//! `--presence-burst-interval` (docs/protocol.md, Presence).

use labchat_core::PresenceBurst;

use super::InvalidSetting;
use crate::cli::ServeArgs;

/// The changes a room announces one by one per interval before coalescing the rest into one
/// `membersChanged` per interval: any limit (0 coalesces every change), an interval above zero.
pub(super) fn burst(args: &ServeArgs) -> Result<PresenceBurst, InvalidSetting> {
    if args.presence_burst_interval.is_zero() {
        return Err(InvalidSetting::new("--presence-burst-interval must be greater than zero"));
    }
    Ok(PresenceBurst { limit: args.presence_burst_limit, interval: args.presence_burst_interval })
}
