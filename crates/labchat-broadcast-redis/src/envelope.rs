//! The versioned JSON envelope a node publishes for each room event.
//!
//! `{"v":2,"origin":"<node id>","seq":<seq, for messages only>,"event":<RoomEvent>}`. The event is
//! in the domain's own serde form (labchat-domain, feature `serde`), which reads every field
//! through the domain's constructors; so a new kind of room event crosses nodes with no change
//! here. Version 1 (one DTO per event here) is refused like any other unknown version: nodes of
//! different versions do not share a backplane.

use labchat_domain::{RequestId, RoomEvent, Seq};
use serde::{Deserialize, Serialize};

/// The envelope version this node writes and reads.
pub(crate) const VERSION: u32 = 2;

/// The pub/sub channel of a room.
pub(crate) fn channel(room: RequestId) -> String {
    format!("labchat:room:{}", room.to_hex())
}

/// An envelope could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Not JSON of the envelope's shape, or a field the domain refuses (`Data`). Only the error's
    /// category and place are kept: serde's message may quote the payload, which holds message
    /// text that is never logged.
    #[error("malformed envelope ({0:?} error at line {1}, column {2})")]
    Json(serde_json::error::Category, usize, usize),
    /// A version this node does not know.
    #[error("unsupported envelope version {0} (this node reads {VERSION})")]
    Version(u32),
    /// The envelope disagrees with its event.
    #[error("invalid envelope field {0}: {1}")]
    Field(&'static str, &'static str),
}

/// A received envelope: who published it and the event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Received {
    /// The publishing node's id.
    pub(crate) origin: String,
    /// The event.
    pub(crate) event: RoomEvent,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    v: u32,
    origin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    event: &'a RoomEvent,
}

/// The version was checked first (`decode`).
#[derive(Deserialize)]
struct Incoming {
    origin: String,
    #[serde(default)]
    seq: Option<u64>,
    event: RoomEvent,
}

/// Encodes `event` as published by node `origin`.
pub(crate) fn encode(origin: &str, event: &RoomEvent) -> Result<Vec<u8>, EnvelopeError> {
    let envelope = Outgoing { v: VERSION, origin, seq: event.seq().map(Seq::get), event };
    serde_json::to_vec(&envelope).map_err(json_error)
}

/// Decodes an envelope, validating every field as the domain does.
pub(crate) fn decode(bytes: &[u8]) -> Result<Received, EnvelopeError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(json_error)?;
    if version.v != VERSION {
        return Err(EnvelopeError::Version(version.v));
    }
    let envelope: Incoming = serde_json::from_slice(bytes).map_err(json_error)?;
    if envelope.event.seq().map(Seq::get) != envelope.seq {
        return Err(EnvelopeError::Field("seq", "differs from the message's seq"));
    }
    Ok(Received { origin: envelope.origin, event: envelope.event })
}

fn json_error(e: serde_json::Error) -> EnvelopeError {
    EnvelopeError::Json(e.classify(), e.line(), e.column())
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
