//! `docs/asyncapi.yaml`, the wire contract, compiled for the tests that hold the server to it.
//!
//! [`Schemas::load`] reads the document, registers it as one JSON Schema resource (draft 7)
//! under [`BASE`], so that its `#/components/...` references resolve, and walks its
//! `operations`: every message of a `receive` operation is a client event (the server receives
//! it), every message of a `send` operation a server event. Each event name maps to the
//! validator of its frame's payload schema. Loading fails the test when the document does not
//! document exactly the server's events ([`CLIENT_EVENTS`] and [`SERVER_EVENTS`]).
//!
//! The frame checks panic with the frame and the document's complaints, so a test reads as a
//! session and fails at the first frame that drifts from the contract.

#![allow(clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jsonschema::{Draft, Registry, Validator};
use labchat_transport_ws::protocol::{CLIENT_EVENTS, ServerEvent};
use serde_json::{Value, json};

/// The URI the document is registered under, so that its `#/components/...` references resolve.
pub const BASE: &str = "urn:labchat:asyncapi";

/// The server's events, by name, from their one home ([`ServerEvent::ALL`]).
pub const SERVER_EVENTS: [&str; ServerEvent::ALL.len()] = {
    let mut names = [""; ServerEvent::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = ServerEvent::ALL[i].as_str();
        i += 1;
    }
    names
};

/// `docs/asyncapi.yaml`, parsed.
pub fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

/// Follows `{"$ref": "#/..."}` objects inside `doc` from `pointer`; returns the JSON pointer
/// reached (a node that is not a reference).
pub fn deref_pointer(doc: &Value, mut pointer: String) -> String {
    for _ in 0..16 {
        let node = doc.pointer(&pointer).unwrap_or_else(|| panic!("dangling reference #{pointer}"));
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}")).to_owned(),
            None => return pointer,
        }
    }
    panic!("reference loop at #{pointer}")
}

/// Every complaint of `v` about `instance`, each with the place in the instance.
pub fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// The document and its frame validators: client events and server events apart, by event name.
pub struct Schemas {
    /// The whole document, as parsed.
    pub doc: Value,
    registry: Registry<'static>,
    /// Client event name -> validator of its frame.
    pub client: BTreeMap<String, Validator>,
    /// Server event name -> validator of its frame.
    pub server: BTreeMap<String, Validator>,
}

impl fmt::Debug for Schemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schemas")
            .field("client", &self.client.keys().collect::<Vec<_>>())
            .field("server", &self.server.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Schemas {
    /// Reads and compiles the document. Panics when it is not AsyncAPI 3.0.0, when an operation
    /// has no action or messages, when a message's payload has no `properties.event.const`, when
    /// an event is documented twice on one side, or when the events documented are not exactly
    /// [`CLIENT_EVENTS`] and [`SERVER_EVENTS`].
    pub fn load() -> Self {
        let doc = document();
        assert_eq!(doc["asyncapi"], "3.0.0");
        let registry = Registry::new()
            .draft(Draft::Draft7)
            .add(BASE, Draft::Draft7.create_resource(doc.clone()))
            .expect("register the document")
            .prepare()
            .expect("prepare the registry");
        let mut schemas = Self { doc, registry, client: BTreeMap::new(), server: BTreeMap::new() };
        // Every message of every operation: the server receives client events, sends server events.
        let ops = schemas.doc["operations"].as_object().expect("operations").clone();
        for (name, op) in &ops {
            let action = op["action"].as_str().unwrap_or_else(|| panic!("operation {name} has no action"));
            for m in op["messages"].as_array().unwrap_or_else(|| panic!("operation {name} has no messages")) {
                let r = m["$ref"].as_str().expect("message $ref");
                let r = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}")).to_owned();
                let msg = deref_pointer(&schemas.doc, r);
                let payload = deref_pointer(&schemas.doc, format!("{msg}/payload"));
                let event = schemas.doc.pointer(&format!("{payload}/properties/event/const")).and_then(Value::as_str);
                let event = event.unwrap_or_else(|| panic!("{msg}: payload has no properties.event.const")).to_owned();
                let validator = schemas.validator(&payload);
                let map = match action {
                    "receive" => &mut schemas.client,
                    "send" => &mut schemas.server,
                    other => panic!("operation {name}: unknown action {other}"),
                };
                assert!(map.insert(event.clone(), validator).is_none(), "{action} event {event} documented twice");
            }
        }
        assert_eq!(schemas.client.keys().map(String::as_str).collect::<BTreeSet<_>>(), CLIENT_EVENTS.into());
        assert_eq!(schemas.server.keys().map(String::as_str).collect::<BTreeSet<_>>(), SERVER_EVENTS.into());
        schemas
    }

    /// A validator for the schema at `pointer` (a JSON pointer resolved inside the whole document).
    pub fn validator(&self, pointer: &str) -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_registry(&self.registry)
            .build(&json!({ "$ref": format!("{BASE}#{pointer}") }))
            .unwrap_or_else(|e| panic!("schema #{pointer} does not compile: {e}"))
    }

    /// A validator for the named schema `#/components/schemas/<name>`.
    pub fn named(&self, name: &str) -> Validator {
        self.validator(&format!("/components/schemas/{name}"))
    }

    /// The validator of a client frame's event; panics when the frame has no event or the
    /// event is not documented.
    pub fn client_validator(&self, frame: &Value) -> &Validator {
        let event = frame["event"].as_str().unwrap_or_else(|| panic!("client frame without event: {frame}"));
        self.client.get(event).unwrap_or_else(|| panic!("client event {event} is not documented"))
    }

    /// The validator of a server frame's event; panics when the frame has no event or the
    /// event is not documented.
    pub fn server_validator(&self, frame: &Value) -> &Validator {
        let event = frame["event"].as_str().unwrap_or_else(|| panic!("server frame without event: {frame}"));
        self.server.get(event).unwrap_or_else(|| panic!("the server sent undocumented event {event}: {frame}"))
    }

    /// The document's complaints about a client frame (none: valid).
    pub fn client_errors(&self, frame: &Value) -> Vec<String> {
        errors(self.client_validator(frame), frame)
    }

    /// The document's complaints about a server frame (none: valid).
    pub fn server_errors(&self, frame: &Value) -> Vec<String> {
        errors(self.server_validator(frame), frame)
    }

    /// Whether the document accepts a client frame.
    pub fn client_ok(&self, frame: &Value) -> bool {
        self.client_validator(frame).is_valid(frame)
    }

    /// Whether the document accepts a server frame.
    pub fn server_ok(&self, frame: &Value) -> bool {
        self.server_validator(frame).is_valid(frame)
    }
}

/// `frame` with the member at `pointer` set to `value`, or removed when `value` is `None`:
/// the mutations the tests prove the schemas refuse.
pub fn mutated(frame: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut f = frame.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap_or_else(|| panic!("not a JSON pointer: {pointer}"));
    let obj = f.pointer_mut(parent).and_then(Value::as_object_mut);
    let obj = obj.unwrap_or_else(|| panic!("no object at {parent} in {frame}"));
    match value {
        Some(v) => obj.insert(key.to_owned(), v),
        None => obj.remove(key),
    };
    f
}
