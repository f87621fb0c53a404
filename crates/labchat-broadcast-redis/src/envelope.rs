//! The versioned JSON envelope a node publishes for each room event.
//!
//! `{"v":<version>,"origin":"<node id>","seq":<seq, for messages only>,"event":<RoomEvent>}`.
//! The event is in the domain's own serde form (labchat-domain, feature `serde`), which reads
//! every field through the domain's constructors; so a new kind of room event crosses nodes with
//! no change here.
//!
//! A release reads a window of two versions, its own and the previous release's, and writes the
//! one its operator chose ([`EnvelopeVersion`], `--backplane-version`; docs/deployment.md,
//! "Rolling upgrade"):
//!
//! - **2**, the previous release's: the fields above, not authenticated. A node with a backplane
//!   secret seals it all the same (`auth`), and the previous release, which ignores keys it does
//!   not know, reads it as before. Read for one more release, then dropped.
//! - **3**: the same fields, always sealed with the backplane secret: a version 3 envelope without
//!   a MAC is refused by every node, so a node can only write it with a secret.
//!
//! Any other version is refused (counted and logged by the receiver), never guessed at.

use labchat_domain::{RoomEvent, Seq};
use serde::{Deserialize, Serialize};

use crate::auth::Seal;

/// The oldest envelope version this release reads: the previous release's.
const OLDEST: u32 = 2;
/// The newest envelope version this release reads and writes.
const NEWEST: u32 = 3;

/// An envelope version this release can write: one of its window, [`EnvelopeVersion::OLDEST`]
/// and [`EnvelopeVersion::NEWEST`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvelopeVersion(u32);

impl EnvelopeVersion {
    /// The previous release's version (2): what a node writes unless told otherwise, so that
    /// nodes of the previous release, still running during a rolling upgrade, read it.
    pub const OLDEST: Self = Self(OLDEST);
    /// This release's version (3): authenticated envelopes.
    pub const NEWEST: Self = Self(NEWEST);

    /// The version `v`, if this release reads it.
    pub fn new(v: u32) -> Result<Self, UnknownVersion> {
        if (OLDEST..=NEWEST).contains(&v) { Ok(Self(v)) } else { Err(UnknownVersion(v)) }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether envelopes of this version carry a MAC (a node writing it needs a secret).
    pub fn is_authenticated(self) -> bool {
        self.0 >= 3
    }
}

impl Default for EnvelopeVersion {
    fn default() -> Self {
        Self::OLDEST
    }
}

/// A version outside the window this release reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("envelope version {0} is not one this release reads ({OLDEST} and {NEWEST})")]
pub struct UnknownVersion(pub u32);

/// An envelope could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Not JSON of the envelope's shape, or a field the domain refuses (`Data`). Only the error's
    /// category and place are kept: serde's message may quote the payload, which holds message
    /// text that is never logged.
    #[error("malformed envelope ({0:?} error at line {1}, column {2})")]
    Json(serde_json::error::Category, usize, usize),
    /// A version outside the window this node reads.
    #[error("unsupported envelope version {0} (this node reads {OLDEST} and {NEWEST})")]
    Version(u64),
    /// A version 3 envelope without a MAC.
    #[error("a version {NEWEST} envelope without a MAC")]
    Unsigned,
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

/// Encodes `event` as published by node `origin`, in envelope version `version` (sealed, if it
/// is to be, by the publisher).
pub(crate) fn encode(version: EnvelopeVersion, origin: &str, event: &RoomEvent) -> Result<Vec<u8>, EnvelopeError> {
    let envelope = Outgoing { v: version.get(), origin, seq: event.seq().map(Seq::get), event };
    serde_json::to_vec(&envelope).map_err(json_error)
}

/// Decodes an envelope (opened from its seal, `seal` saying how it was sealed), validating every
/// field as the domain does.
pub(crate) fn decode(bytes: &[u8], seal: Seal) -> Result<Received, EnvelopeError> {
    #[derive(Deserialize)]
    struct Version {
        v: u64,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(json_error)?;
    match (version.v, seal) {
        (2, _) => decode_v2(bytes),
        (3, Seal::None) => Err(EnvelopeError::Unsigned),
        (3, Seal::Verified | Seal::Unchecked) => decode_v3(bytes),
        (other, _) => Err(EnvelopeError::Version(other)),
    }
}

/// The previous release's envelope, exactly as it reads it (kept for one release).
fn decode_v2(bytes: &[u8]) -> Result<Received, EnvelopeError> {
    decode_fields(bytes)
}

/// This release's envelope; its MAC was checked by `auth` before.
fn decode_v3(bytes: &[u8]) -> Result<Received, EnvelopeError> {
    decode_fields(bytes)
}

/// The fields versions 2 and 3 share.
fn decode_fields(bytes: &[u8]) -> Result<Received, EnvelopeError> {
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
