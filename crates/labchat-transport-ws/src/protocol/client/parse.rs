//! What every client event's parse uses: the decoder's limits, [`Field`] (a DTO field kept as
//! JSON, typed by the event's validation so that every error names its field in the protocol's
//! own words), the room under `requestId` (or its alias), optional message ids, and [`dto`].
//! The room is checked first; later errors carry it.

use labchat_domain::{MessageId, MessageText, RequestId};
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::Value;

/// Limits the decoder enforces.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Longest message text, in characters.
    pub max_message_chars: usize,
    /// Most ids in one `ackMessages`/`readMessages` frame.
    pub max_receipt_ids: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_message_chars: MessageText::DEFAULT_MAX_CHARS, max_receipt_ids: 500 }
    }
}

/// What is wrong, and the frame's room when it was valid.
pub(crate) type Fail = (String, Option<RequestId>);

/// A field of `data`: absent, or present with any JSON value (`null` included).
#[derive(Default, Debug)]
pub(crate) struct Field(pub(crate) Option<Value>);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Self(Some(v)))
    }
}

impl Field {
    /// The value, with `null` read as absent.
    pub(crate) fn non_null(self) -> Option<Value> {
        self.0.filter(|v| !v.is_null())
    }
}

/// The room, under `requestId` or its alias `resquestId`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(crate) struct Room {
    #[serde(rename = "requestId")]
    request_id: Field,
    #[serde(rename = "resquestId")]
    resquest_id: Field,
}

impl Room {
    pub(crate) fn request_id(self) -> Result<RequestId, Fail> {
        let raw = match (self.request_id.0, self.resquest_id.0) {
            (Some(a), Some(b)) if a != b => {
                return Err(("fields data.requestId and data.resquestId disagree; send one of them".into(), None));
            }
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => return Err(("missing field data.requestId".into(), None)),
        };
        match raw {
            Value::String(s) => RequestId::parse(&s).map_err(|e| (format!("field data.requestId: {e}"), None)),
            _ => Err(("field data.requestId must be a 24-hex string".into(), None)),
        }
    }
}

pub(crate) fn optional_id(field: Field, name: &str) -> Result<Option<MessageId>, String> {
    match field.non_null() {
        None => Ok(None),
        Some(Value::String(s)) => MessageId::parse(&s).map(Some).map_err(|e| format!("field data.{name}: {e}")),
        Some(_) => Err(format!("field data.{name} must be a 24-hex string")),
    }
}

/// Reads `data` into a DTO. Every DTO field is a [`Field`], so this only fails on a non-object,
/// which the envelope already refused.
pub(crate) fn dto<T: DeserializeOwned>(data: Value) -> Result<T, Fail> {
    serde_json::from_value(data).map_err(|e| (format!("field data is malformed: {e}"), None))
}
