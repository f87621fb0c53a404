//! Inbox notices between nodes, "a message was posted in room R" and "user U read in room R":
//! on `labchat:inbox`, that every node subscribes to (whichever rooms it has), from a node
//! writing envelope version 2, and on the room's audience channels from one writing version 3
//! (`audience`). A node hands its own notices to its listener directly, and those of other nodes as they
//! arrive; its listener (the node's inbox hub) reads the counts from the store itself, so a lost
//! notice delays an update but never makes one wrong.
//!
//! The format is a small JSON object of its own, told apart from room envelopes by its `inbox`
//! key: `{"inbox":1,"origin":"<node>","kind":"posted"|"read","requestId":"<hex>","userId"?:"<id>"}`.

use std::sync::{Arc, Mutex};

use labchat_core::{InboxListener, InboxNotice};
use labchat_domain::{RequestId, RoomEvent, UserId};
use serde::{Deserialize, Serialize};

/// The channel every node subscribes to for resync notices and version 2 inbox notices.
pub(crate) const CHANNEL: &str = "labchat:inbox";

/// The version of the format, in its `inbox` key.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    inbox: u8,
    origin: String,
    kind: Kind,
    request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Posted,
    Read,
}

/// The encoded notice, from node `origin`.
pub(crate) fn encode(origin: &str, notice: &InboxNotice) -> Result<Vec<u8>, serde_json::Error> {
    let (kind, request_id, user_id) = match notice {
        InboxNotice::Posted { request_id } => (Kind::Posted, request_id, None),
        InboxNotice::Read { request_id, user } => (Kind::Read, request_id, Some(user.as_str().to_owned())),
    };
    serde_json::to_vec(&Wire {
        inbox: VERSION,
        origin: origin.to_owned(),
        kind,
        request_id: request_id.to_hex(),
        user_id,
    })
}

/// What a payload of the inbox channel holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Not an inbox notice (a room envelope, which has no `inbox` key).
    NotInbox,
    /// An inbox notice from node `origin`.
    Notice { origin: String, notice: InboxNotice },
    /// An inbox notice that cannot be read (another version, a bad id).
    Malformed(String),
}

/// Reads a payload.
pub(crate) fn decode(payload: &[u8]) -> Decoded {
    #[derive(Deserialize)]
    struct Probe {
        inbox: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(payload) {
        Ok(Probe { inbox: Some(_) }) => {}
        _ => return Decoded::NotInbox,
    }
    let wire: Wire = match serde_json::from_slice(payload) {
        Ok(w) => w,
        Err(e) => return Decoded::Malformed(e.to_string()),
    };
    if wire.inbox != VERSION {
        return Decoded::Malformed(format!("inbox notice version {}", wire.inbox));
    }
    let request_id = match RequestId::parse(&wire.request_id) {
        Ok(r) => r,
        Err(e) => return Decoded::Malformed(format!("requestId: {e}")),
    };
    let notice = match (wire.kind, wire.user_id) {
        (Kind::Posted, _) => InboxNotice::Posted { request_id },
        (Kind::Read, Some(user)) => match UserId::parse(user) {
            Ok(user) => InboxNotice::Read { request_id, user },
            Err(e) => return Decoded::Malformed(format!("userId: {e}")),
        },
        (Kind::Read, None) => return Decoded::Malformed("a read without userId".to_owned()),
    };
    Decoded::Notice { origin: wire.origin, notice }
}

/// The node's listener for inbox notices (none until one is registered).
#[derive(Default)]
pub(crate) struct Relay {
    listener: Mutex<Option<Arc<dyn InboxListener>>>,
}

impl Relay {
    /// Registers (or replaces) the listener.
    pub(crate) fn listen(&self, listener: Arc<dyn InboxListener>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    /// Hands a notice to the listener, if any.
    pub(crate) fn deliver(&self, notice: InboxNotice) {
        if let Some(listener) = &*self.listener.lock().unwrap_or_else(|p| p.into_inner()) {
            listener.notice(notice);
        }
    }

    /// The notice of a locally published event, if it makes one: delivered to this node's
    /// listener now, and returned encoded for the other nodes.
    pub(crate) fn published(&self, origin: &str, event: &RoomEvent) -> Option<Result<Vec<u8>, serde_json::Error>> {
        let notice = InboxNotice::of(event)?;
        let payload = encode(origin, &notice);
        self.deliver(notice);
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn notices_round_trip_and_room_envelopes_are_not_notices() {
        let request_id = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        for notice in [
            InboxNotice::Posted { request_id },
            InboxNotice::Read { request_id, user: UserId::parse("lab-1").unwrap() },
        ] {
            let payload = encode("node-a", &notice).unwrap();
            assert_eq!(decode(&payload), Decoded::Notice { origin: "node-a".into(), notice });
        }
        assert_eq!(decode(br#"{"v":1,"origin":"a","event":{}}"#), Decoded::NotInbox);
        assert_eq!(decode(b"not json"), Decoded::NotInbox);
        for bad in [
            r#"{"inbox":2,"origin":"a","kind":"posted","requestId":"6751b6df1ad14eaa13a03313"}"#,
            r#"{"inbox":1,"origin":"a","kind":"read","requestId":"6751b6df1ad14eaa13a03313"}"#,
            r#"{"inbox":1,"origin":"a","kind":"posted","requestId":"nope"}"#,
            r#"{"inbox":1,"origin":"a","kind":"typed","requestId":"6751b6df1ad14eaa13a03313"}"#,
        ] {
            assert!(matches!(decode(bad.as_bytes()), Decoded::Malformed(_)), "{bad}");
        }
    }
}
