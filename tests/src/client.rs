//! A websocket client speaking labchat's JSON frames, with bounded waits: a test never hangs.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// The websocket stream type.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The presence events, which a [`Client`] skips unless it was made with
/// [`Client::seeing_presence`]: other users joining and leaving are not what most tests are
/// about, and would be interleaved with the frames they expect.
pub const PRESENCE_EVENTS: [&str; 3] = ["memberJoined", "memberLeft", "membersChanged"];

/// A connected client.
#[derive(Debug)]
pub struct Client {
    /// The stream, for tests that need raw access.
    pub ws: Ws,
    /// The handshake response.
    pub response: Response,
    next_id: u64,
    /// Whether [`PRESENCE_EVENTS`] are received (else skipped).
    presence: bool,
}

/// A handshake with `Authorization: Bearer <token>`.
pub async fn handshake_bearer(url: &str, token: &str) -> Result<(Ws, Response), WsError> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    tokio_tungstenite::connect_async(req).await
}

/// A handshake offering these subprotocols.
pub async fn handshake_protocols(url: &str, protocols: &[&str]) -> Result<(Ws, Response), WsError> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(&protocols.join(", ")).unwrap());
    tokio_tungstenite::connect_async(req).await
}

/// The HTTP status and JSON body of a refused handshake.
pub fn refusal(result: Result<(Ws, Response), WsError>) -> (u16, Value) {
    match result {
        Err(WsError::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_ref().map(|b| serde_json::from_slice(b).unwrap()).unwrap_or(Value::Null);
            (status, body)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got an upgrade"),
    }
}

impl Client {
    /// Connects with a bearer token; panics if refused.
    pub async fn connect(url: &str, token: &str) -> Self {
        let (ws, response) = handshake_bearer(url, token).await.expect("handshake");
        Self { ws, response, next_id: 0, presence: false }
    }

    /// The same client, receiving the [`PRESENCE_EVENTS`] too.
    #[must_use]
    pub fn seeing_presence(mut self) -> Self {
        self.presence = true;
        self
    }

    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.expect("send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.expect("send");
    }

    /// Sends `{event, data}` without an id.
    pub async fn emit(&mut self, event: &str, data: Value) {
        self.send(json!({"event": event, "data": data})).await;
    }

    /// The next frame that is not a ping/pong, as JSON; panics after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        self.try_recv(WAIT).await.unwrap_or_else(|| panic!("no frame within {WAIT:?}"))
    }

    /// The next text frame within `wait`, or `None`, skipping [`PRESENCE_EVENTS`] unless the
    /// client sees them. Panics on a close or a non-text frame.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(t.as_str()).expect("server sent JSON");
                    let presence = frame["event"].as_str().is_some_and(|e| PRESENCE_EVENTS.contains(&e));
                    if self.presence || !presence {
                        return Some(frame);
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be `event`; returns its `data`.
    pub async fn expect(&mut self, event: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["event"], event, "unexpected frame {frame}");
        frame["data"].clone()
    }

    /// Asserts no frame arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(f) = self.try_recv(wait).await {
            panic!("expected no frame, got {f}");
        }
    }

    /// Sends `{event, data, id}` with a fresh integer id and returns every frame up to and
    /// including the final `ack` or `error` carrying that id.
    pub async fn call(&mut self, event: &str, data: Value) -> Vec<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"event": event, "data": data, "id": id})).await;
        let mut frames = Vec::new();
        loop {
            let f = self.recv().await;
            let done = f["id"] == json!(id) && (f["event"] == "ack" || f["event"] == "error");
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    /// [`Client::call`], returning the final frame's `data` if it is an `ack`, panicking otherwise.
    pub async fn ok(&mut self, event: &str, data: Value) -> Value {
        let frames = self.call(event, data).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"], "ack", "{event} failed: {last}");
        last["data"].clone()
    }

    /// [`Client::call`], returning the `error` data, panicking on an `ack`.
    pub async fn err(&mut self, event: &str, data: Value) -> Value {
        let frames = self.call(event, data).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"], "error", "{event} should have failed: {last}");
        last["data"].clone()
    }

    /// Joins a room with an id; returns the `roomHistory` data.
    pub async fn join(&mut self, request_id: &str) -> Value {
        let frames = self.call("joinRoom", json!({"requestId": request_id})).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"], "ack", "join failed: {last}");
        let history = frames.iter().find(|f| f["event"] == "roomHistory").expect("roomHistory before the ack");
        history["data"].clone()
    }

    /// Posts a message with an id; returns the stored message from the ack.
    pub async fn post(&mut self, request_id: &str, text: &str) -> Value {
        self.ok("message", json!({"requestId": request_id, "message": text})).await
    }

    /// Waits for the close frame and returns its code; panics if none comes within [`WAIT`].
    pub async fn expect_close(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("no close within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(Some(f))))) => return u16::from(f.code),
                Ok(Some(Ok(Message::Close(None)))) => return 1005,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("connection failed before a close frame: {e}"),
                Ok(None) => panic!("connection ended without a close frame"),
            }
        }
    }
}
