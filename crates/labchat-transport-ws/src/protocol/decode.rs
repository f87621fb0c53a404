//! Client frames to commands, in two stages: the envelope `{event, id, data}` (here), then the
//! event's own parse (`client/`, a file per event). Never panics: any input is a [`Command`] or a
//! [`BadFrame`], whose message names the first field that is wrong.
//!
//! [`Command`]: super::Command

use labchat_domain::RequestId;
use serde_json::{Map, Value};

use super::client::command;
use super::client::parse::DecodeLimits;
use super::{BadFrame, ClientEvent, Inbound};

/// The longest correlation id string, in characters.
pub const MAX_CORRELATION_ID_CHARS: usize = 64;

/// Decodes one text frame. Never panics: any input is either a command or a [`BadFrame`].
pub fn decode(text: &str, limits: &DecodeLimits) -> Result<Inbound, Box<BadFrame>> {
    let Envelope { event, id, data } = Envelope::parse(text)?;
    let bad = |message: String, request_id: Option<RequestId>| {
        Box::new(BadFrame { message, event: Some(event.clone()), id: id.clone(), request_id })
    };
    let client_event = event.parse::<ClientEvent>().map_err(|e| bad(e.to_string(), None))?;
    let command = command(client_event, data, limits).map_err(|(message, rid)| bad(message, rid))?;
    Ok(Inbound { event: client_event, id, command })
}

impl BadFrame {
    fn boxed(message: String) -> Box<Self> {
        Box::new(Self { message, event: None, id: None, request_id: None })
    }
}

/// The first stage: a frame's envelope, its `data` still untyped.
struct Envelope {
    event: String,
    id: Option<Value>,
    data: Map<String, Value>,
}

impl Envelope {
    fn parse(text: &str) -> Result<Self, Box<BadFrame>> {
        let value: Value = serde_json::from_str(text).map_err(|e| Self::unreadable(text, &e))?;
        let Value::Object(mut frame) = value else {
            return Err(BadFrame::boxed("frame must be a JSON object".into()));
        };
        // The event and the id are read independently, so an error names whichever is valid.
        let event = match frame.remove("event") {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err("field event must be a string"),
            None => Err("missing field event"),
        };
        let id = correlation_id(frame.remove("id"));
        let (event, id) = match (event, id) {
            (Ok(event), Ok(id)) => (event, id),
            (event, id) => {
                let message = match (&event, &id) {
                    (_, Err(m)) => m.clone(),
                    (Err(m), _) => (*m).to_owned(),
                    (Ok(_), Ok(_)) => String::new(),
                };
                return Err(Box::new(BadFrame { message, event: event.ok(), id: id.ok().flatten(), request_id: None }));
            }
        };
        let data = match frame.remove("data") {
            Some(Value::Object(m)) => m,
            other => {
                let message = if other.is_some() { "field data must be an object" } else { "missing field data" };
                return Err(Box::new(BadFrame { message: message.into(), event: Some(event), id, request_id: None }));
            }
        };
        Ok(Self { event, id, data })
    }
}

impl Envelope {
    /// The error for a frame that is not JSON as a whole (a number out of range, such as
    /// `1e400`, makes valid JSON syntax unreadable), naming the frame's event and id when those
    /// two can still be read: a client waiting for the answer to that id gets it.
    fn unreadable(text: &str, e: &serde_json::Error) -> Box<BadFrame> {
        /// Only `event` and `id`; every other member is skipped unread.
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(default)]
            event: Option<Value>,
            #[serde(default)]
            id: Option<Value>,
        }
        let mut bad = BadFrame::boxed(format!("frame is not valid JSON: {e}"));
        if let Ok(head) = serde_json::from_str::<Head>(text) {
            bad.event = match head.event {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            bad.id = correlation_id(head.id).ok().flatten();
        }
        bad
    }
}

fn correlation_id(id: Option<Value>) -> Result<Option<Value>, String> {
    match id {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_CORRELATION_ID_CHARS => Ok(Some(Value::String(s))),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(Value::Number(n))),
        Some(_) => {
            Err(format!("field id must be a string of at most {MAX_CORRELATION_ID_CHARS} characters or an integer"))
        }
    }
}
