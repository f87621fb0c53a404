//! Resync notices between nodes, on the inbox channel that every node subscribes to:
//!
//! - `{"resync":1,"origin":"<node>","awayMs":<ms>}`: the node's subscriber is back after being
//!   away for that long; every other node publishes again what it published meanwhile (its
//!   outbox's replay), so receipts, inbox notices and presence changes reach it live.
//! - `{"resync":1,"origin":"<node>","requestIds":["<hex>",…]}`: the node dropped envelopes of
//!   these rooms past its outbox's bounds; every node re-reads them from the store and refreshes
//!   their inbox rows.
//! - `{"resync":1,"origin":"<node>","all":true}`: the same for every room.
//!
//! This file is the notices' format; what a node does on one is in `on_resync.rs`.

use std::time::Duration;

use labchat_domain::RequestId;
use serde::{Deserialize, Serialize};

/// The version of the format, in its `resync` key.
const VERSION: u8 = 1;

/// The most rooms named in one notice.
pub(crate) const ROOMS_PER_NOTICE: usize = 1000;

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    resync: u8,
    origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    away_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    request_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    all: bool,
}

/// What a resync notice asks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// The origin's subscriber was away this long.
    Back(Duration),
    /// Re-read these rooms.
    Rooms(Vec<RequestId>),
    /// Re-read every room.
    All,
}

/// Encodes a notice from node `origin`.
pub(crate) fn encode(origin: &str, ask: &Ask) -> Result<Vec<u8>, serde_json::Error> {
    let mut wire = Wire { resync: VERSION, origin: origin.to_owned(), ..Wire::default() };
    match ask {
        Ask::Back(away) => wire.away_ms = Some(u64::try_from(away.as_millis()).unwrap_or(u64::MAX)),
        Ask::Rooms(rooms) => wire.request_ids = rooms.iter().map(|r| r.to_hex()).collect(),
        Ask::All => wire.all = true,
    }
    serde_json::to_vec(&wire)
}

/// What a payload holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Not a resync notice (no `resync` key).
    NotResync,
    /// A notice from node `origin`.
    Notice { origin: String, ask: Ask },
    /// A resync notice that cannot be read.
    Malformed(String),
}

/// Reads a payload.
pub(crate) fn decode(payload: &[u8]) -> Decoded {
    #[derive(Deserialize)]
    struct Probe {
        resync: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(payload) {
        Ok(Probe { resync: Some(_) }) => {}
        _ => return Decoded::NotResync,
    }
    let wire: Wire = match serde_json::from_slice(payload) {
        Ok(w) => w,
        Err(e) => return Decoded::Malformed(format!("resync notice ({:?} error)", e.classify())),
    };
    if wire.resync != VERSION {
        return Decoded::Malformed(format!("resync notice version {}", wire.resync));
    }
    let ask = match (wire.away_ms, wire.request_ids.is_empty(), wire.all) {
        (Some(ms), true, false) => Ask::Back(Duration::from_millis(ms)),
        (None, false, false) => {
            match wire.request_ids.iter().map(|r| RequestId::parse(r)).collect::<Result<Vec<_>, _>>() {
                Ok(rooms) => Ask::Rooms(rooms),
                Err(e) => return Decoded::Malformed(format!("resync notice requestIds: {e}")),
            }
        }
        (None, true, true) => Ask::All,
        _ => return Decoded::Malformed("a resync notice must hold one of awayMs, requestIds, all".to_owned()),
    };
    Decoded::Notice { origin: wire.origin, ask }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn notices_round_trip_and_other_payloads_are_not_notices() {
        let r = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        for ask in [Ask::Back(Duration::from_millis(1500)), Ask::Rooms(vec![r, r]), Ask::All] {
            let payload = encode("node-a", &ask).unwrap();
            assert_eq!(decode(&payload), Decoded::Notice { origin: "node-a".into(), ask });
        }
        assert_eq!(decode(br#"{"v":2,"origin":"a","event":{}}"#), Decoded::NotResync);
        assert_eq!(decode(br#"{"inbox":1,"origin":"a"}"#), Decoded::NotResync);
        for bad in [
            r#"{"resync":2,"origin":"a","all":true}"#,
            r#"{"resync":1,"origin":"a"}"#,
            r#"{"resync":1,"origin":"a","all":true,"awayMs":5}"#,
            r#"{"resync":1,"origin":"a","requestIds":["nope"]}"#,
        ] {
            assert!(matches!(decode(bad.as_bytes()), Decoded::Malformed(_)), "{bad}");
        }
    }
}
