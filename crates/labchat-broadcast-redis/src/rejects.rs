//! What a node refuses from Redis: every refused payload is counted, and logged at most once a
//! minute per reason (and per version, for an unknown version), so that a flood of forged or
//! foreign payloads can neither fill the logs nor pass unnoticed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::Refused;
use crate::metrics_names::{REJECTED, UNKNOWN_VERSION};

/// The longest a reason stays silent in the logs while payloads are refused for it.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Versions above this are counted and logged together, as `other`: a label per number would
/// let any publisher grow the metrics without bound.
const MAX_VERSION_LABEL: u64 = 99;

/// Why a payload was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// An envelope version outside this node's window.
    UnknownVersion(u64),
    /// Not sealed, where a seal is required.
    Unsigned,
    /// Sealed with neither accepted secret.
    BadMac,
    /// Not readable; the detail never quotes the payload.
    Malformed(String),
}

impl From<Refused> for Rejection {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Unsigned => Self::Unsigned,
            Refused::BadMac => Self::BadMac,
        }
    }
}

/// The `reason` label of [`REJECTED`].
fn reason(r: &Rejection) -> &'static str {
    match r {
        Rejection::UnknownVersion(_) => "unknown_version",
        Rejection::Unsigned => "unsigned",
        Rejection::BadMac => "bad_mac",
        Rejection::Malformed(_) => "malformed",
    }
}

/// The `version` label of [`UNKNOWN_VERSION`].
fn version_label(v: u64) -> String {
    if v <= MAX_VERSION_LABEL { v.to_string() } else { "other".to_owned() }
}

/// When each reason was last logged, and how many were refused since without a log line.
#[derive(Debug)]
pub(crate) struct Rejects {
    node: String,
    logged: Mutex<HashMap<String, (Option<Instant>, u64)>>,
}

impl Rejects {
    pub(crate) fn new(node: String) -> Self {
        Self { node, logged: Mutex::default() }
    }

    /// Counts a refused payload and logs it unless its reason was logged within the last minute.
    /// Returns whether it was logged.
    pub(crate) fn reject(&self, r: &Rejection) -> bool {
        self.reject_at(r, Instant::now())
    }

    fn reject_at(&self, r: &Rejection, now: Instant) -> bool {
        let node = self.node.clone();
        let key = match r {
            Rejection::UnknownVersion(v) => {
                let label = version_label(*v);
                metrics::counter!(UNKNOWN_VERSION, "node" => node.clone(), "version" => label.clone()).increment(1);
                format!("version {label}")
            }
            other => reason(other).to_owned(),
        };
        metrics::counter!(REJECTED, "node" => node, "reason" => reason(r)).increment(1);
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let (at, quiet) = logged.entry(key).or_insert((None, 0));
        if at.is_some_and(|at| now.saturating_duration_since(at) < LOG_EVERY) {
            *quiet += 1;
            return false;
        }
        let since = std::mem::take(quiet);
        *at = Some(now);
        drop(logged);
        self.log(r, since);
        true
    }

    fn log(&self, r: &Rejection, since: u64) {
        let node = self.node.as_str();
        match r {
            Rejection::UnknownVersion(v) => tracing::warn!(
                node,
                version = %version_label(*v),
                more_since_last_log = since,
                "ignoring an envelope of a version this node does not read: is a node of a newer release writing a version the others do not read yet? (see \"Rolling upgrade\" in docs/deployment.md)"
            ),
            Rejection::Unsigned => tracing::warn!(
                node,
                more_since_last_log = since,
                "ignoring an unsigned payload from redis: this node accepts only payloads sealed with the backplane secret"
            ),
            Rejection::BadMac => tracing::warn!(
                node,
                more_since_last_log = since,
                "ignoring a payload from redis sealed with neither the current nor the previous backplane secret"
            ),
            Rejection::Malformed(e) => {
                tracing::warn!(node, error = %e, more_since_last_log = since, "ignoring a malformed payload from redis")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_reason_and_version_is_logged_at_most_once_a_minute() {
        let r = Rejects::new("n".to_owned());
        let t0 = Instant::now();
        assert!(r.reject_at(&Rejection::UnknownVersion(4), t0));
        assert!(!r.reject_at(&Rejection::UnknownVersion(4), t0 + Duration::from_secs(1)));
        assert!(r.reject_at(&Rejection::UnknownVersion(5), t0 + Duration::from_secs(1)), "another version");
        assert!(r.reject_at(&Rejection::BadMac, t0 + Duration::from_secs(2)), "another reason");
        assert!(!r.reject_at(&Rejection::UnknownVersion(4), t0 + Duration::from_secs(59)));
        assert!(r.reject_at(&Rejection::UnknownVersion(4), t0 + Duration::from_secs(61)));
        assert_eq!(r.logged.lock().unwrap()["version 4"].1, 0, "the quiet count restarts after a log line");
        assert!(r.reject_at(&Rejection::UnknownVersion(1_000), t0));
        assert!(!r.reject_at(&Rejection::UnknownVersion(u64::MAX), t0 + Duration::from_secs(1)), "one label");
        assert_eq!(r.logged.lock().unwrap().len(), 4, "4, 5, other and bad_mac");
    }
}
