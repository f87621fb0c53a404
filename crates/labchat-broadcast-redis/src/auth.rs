//! Authentication of what nodes publish: an HMAC-SHA256 with a secret the nodes share.
//!
//! A node with a secret seals every payload it publishes (room envelopes, inbox and resync
//! notices) by putting the MAC in front of the payload's JSON object:
//!
//! `{"mac":"<64 hex digits>",` followed by the payload's bytes after its opening `{`.
//!
//! The MAC is computed over the payload's exact bytes as the publisher encoded them (opening
//! `{` included, `mac` key excluded), so a receiver checks it without re-encoding anything. The
//! sealed payload stays one JSON object: a node of the previous release, which ignores keys it
//! does not know, reads a sealed version 2 envelope as it reads an unsealed one.
//!
//! A node may hold two secrets: the current one, with which it seals, and a previous one, still
//! accepted while a rotation rolls over the nodes (see docs/security.md).

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The beginning of a sealed payload, before the MAC's hex digits.
const HEAD: &[u8] = b"{\"mac\":\"";
/// The MAC's length in hex digits.
const MAC_HEX: usize = 64;
/// What follows the MAC's hex digits.
const TAIL: &[u8] = b"\",";
/// The length of everything that sealing puts in front of the payload's bytes after its `{`.
const PREFIX: usize = HEAD.len() + MAC_HEX + TAIL.len();

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The shared secrets of the backplane. Its `Debug` form shows only which are set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BackplaneSecrets {
    /// Seals what this node publishes, and is accepted on what it receives.
    pub current: Option<Vec<u8>>,
    /// Also accepted on what this node receives (never used to seal): the secret being rotated
    /// out.
    pub previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for BackplaneSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<Vec<u8>>| if s.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("BackplaneSecrets")
            .field("current", &shown(&self.current))
            .field("previous", &shown(&self.previous))
            .finish()
    }
}

/// How a received payload was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seal {
    /// Sealed, and the MAC matches the current or the previous secret.
    Verified,
    /// Sealed, but this node has no secret to check it with (authentication is off here).
    Unchecked,
    /// Not sealed.
    None,
}

/// Why a received payload was refused before it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not sealed, and this node accepts only sealed payloads.
    Unsigned,
    /// Sealed with neither the current nor the previous secret, or the seal is malformed.
    BadMac,
}

/// The node's keys and its policy for unsealed payloads.
#[derive(Clone)]
pub(crate) struct Keys {
    current: Option<HmacSha256>,
    previous: Option<HmacSha256>,
    /// Whether unsealed payloads are refused.
    sealed_only: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("current", &self.current.is_some())
            .field("previous", &self.previous.is_some())
            .field("sealed_only", &self.sealed_only)
            .finish()
    }
}

/// The secrets cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// A secret shorter than [`MIN_SECRET_BYTES`].
    #[error("the backplane {0} secret must be at least {MIN_SECRET_BYTES} bytes")]
    Short(&'static str),
    /// A previous secret without a current one.
    #[error("a previous backplane secret needs a current one")]
    PreviousOnly,
}

fn key(secret: &[u8], which: &'static str) -> Result<HmacSha256, KeyError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeyError::Short(which));
    }
    HmacSha256::new_from_slice(secret).map_err(|_| KeyError::Short(which))
}

impl Keys {
    /// No secret: nothing sealed, nothing checked.
    pub(crate) fn none() -> Self {
        Self { current: None, previous: None, sealed_only: false }
    }

    /// The keys of `secrets`; `sealed_only`: refuse unsealed payloads (only with a secret).
    pub(crate) fn new(secrets: &BackplaneSecrets, sealed_only: bool) -> Result<Self, KeyError> {
        let current = secrets.current.as_deref().map(|s| key(s, "current")).transpose()?;
        let previous = secrets.previous.as_deref().map(|s| key(s, "previous")).transpose()?;
        if current.is_none() && previous.is_some() {
            return Err(KeyError::PreviousOnly);
        }
        let sealed_only = sealed_only && current.is_some();
        Ok(Self { current, previous, sealed_only })
    }

    /// Whether this node seals what it publishes.
    pub(crate) fn seals(&self) -> bool {
        self.current.is_some()
    }

    /// The payload sealed with the current secret; as it is without one, or when it is not a
    /// JSON object with at least one key (never the case of what this crate encodes).
    pub(crate) fn seal<'a>(&self, payload: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(key) = &self.current else { return Cow::Borrowed(payload) };
        if payload.len() < 3 || payload.first() != Some(&b'{') || payload.get(1) == Some(&b'}') {
            return Cow::Borrowed(payload);
        }
        let mut mac = key.clone();
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        let mut out = Vec::with_capacity(payload.len() + PREFIX);
        out.extend_from_slice(HEAD);
        for b in tag {
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]);
        }
        out.extend_from_slice(TAIL);
        out.extend_from_slice(&payload[1..]);
        Cow::Owned(out)
    }

    /// Checks a received payload's seal and returns the payload as its publisher encoded it.
    pub(crate) fn open<'a>(&self, payload: &'a [u8]) -> Result<(Cow<'a, [u8]>, Seal), Refused> {
        if !payload.starts_with(HEAD) {
            return if self.sealed_only { Err(Refused::Unsigned) } else { Ok((Cow::Borrowed(payload), Seal::None)) };
        }
        let tag = payload.get(HEAD.len()..HEAD.len() + MAC_HEX).and_then(unhex).ok_or(Refused::BadMac)?;
        if payload.get(HEAD.len() + MAC_HEX..PREFIX) != Some(TAIL) {
            return Err(Refused::BadMac);
        }
        let mut body = Vec::with_capacity(payload.len() - PREFIX + 1);
        body.push(b'{');
        body.extend_from_slice(&payload[PREFIX..]);
        if self.current.is_none() {
            return Ok((Cow::Owned(body), Seal::Unchecked));
        }
        let matches = |key: &Option<HmacSha256>| {
            key.as_ref().is_some_and(|k| {
                let mut mac = k.clone();
                mac.update(&body);
                mac.verify_slice(&tag).is_ok()
            })
        };
        if matches(&self.current) || matches(&self.previous) {
            Ok((Cow::Owned(body), Seal::Verified))
        } else {
            Err(Refused::BadMac)
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 32 bytes from 64 lowercase hex digits.
fn unhex(digits: &[u8]) -> Option<[u8; 32]> {
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        *out.get_mut(i)? = (value(pair[0])? << 4) | value(pair[1])?;
    }
    (digits.len() == MAC_HEX).then_some(out)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
