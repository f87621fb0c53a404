//! The bound on joins in progress: `--max-joins-in-flight` (docs/deployment.md, Joins under
//! load).

use labchat_core::JoinAdmission;

use super::InvalidSetting;
use crate::cli::ServeArgs;

/// At most `--max-joins-in-flight` joins (at least 1) at once; one more waits for a slot up to the
/// default admission wait (one second), or a quarter of `--store-timeout` if that is shorter, so
/// that a join waits at the door well before the store would time it out.
pub(super) fn joins(args: &ServeArgs) -> Result<JoinAdmission, InvalidSetting> {
    if args.max_joins_in_flight == 0 {
        return Err(InvalidSetting::new("--max-joins-in-flight must be at least 1"));
    }
    let wait = JoinAdmission::default().wait.min(args.store_timeout / 4);
    Ok(JoinAdmission { max_in_flight: args.max_joins_in_flight, wait })
}
