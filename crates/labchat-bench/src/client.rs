//! The websocket client side: tokens, connections, joins, and per-connection writers.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{BenchError, seed};

/// A client websocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one handshake, or one join, may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The server under test and how to talk to it.
#[derive(Clone)]
pub struct Target {
    /// `ws://127.0.0.1:PORT/ws` (loopback only): the first node, where every sender connects.
    pub url: String,
    /// Further nodes of the same cluster (loopback only): member `i` of a workload connects to
    /// node `i % n` of [`Target::urls`], so member 0 (a sender) always uses [`Target::url`].
    pub more_urls: Vec<String>,
    /// The server's HS256 secret (`labchat serve --jwt-secret`).
    pub secret: Vec<u8>,
    /// The claim holding the role (`--jwt-role-claim`, default `role`).
    pub role_claim: String,
    /// Request ids the server knows (its `--seed-requests` file).
    pub rooms: Vec<String>,
    /// The server's pid, to read its RSS and CPU time from /proc.
    pub server_pid: Option<u32>,
    /// The other nodes' pids: CPU time and RSS are summed over all the pids.
    pub more_server_pids: Vec<u32>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("more_urls", &self.more_urls)
            .field("secret", &"<redacted>")
            .field("rooms", &self.rooms.len())
            .field("server_pid", &self.server_pid)
            .field("more_server_pids", &self.more_server_pids)
            .finish()
    }
}

/// Whether `url` is a `ws://` URL whose host is a loopback address or `localhost`.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("ws://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_url(url: &str) -> Result<(), BenchError> {
    if is_loopback_url(url) {
        Ok(())
    } else {
        Err(BenchError::Options(format!("{url}: the bench only targets ws:// on loopback (127.0.0.0/8, ::1)")))
    }
}

impl Target {
    /// A target; refuses non-loopback URLs and secrets shorter than 16 bytes. Rooms default to
    /// the generated ids of [`seed::generate`] (`rooms` of them).
    pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>, rooms: usize) -> Result<Self, BenchError> {
        let url = url.into();
        check_url(&url)?;
        let secret = secret.into();
        if secret.len() < 16 {
            return Err(BenchError::Options("the secret must be at least 16 bytes (as the server requires)".into()));
        }
        Ok(Self {
            url,
            more_urls: Vec::new(),
            secret,
            role_claim: "role".into(),
            rooms: (0..rooms).map(seed::room_id).collect(),
            server_pid: None,
            more_server_pids: Vec::new(),
        })
    }

    /// Adds the further nodes `urls` (see [`Target::more_urls`]); refuses non-loopback URLs.
    pub fn with_more_urls(mut self, urls: Vec<String>) -> Result<Self, BenchError> {
        for url in &urls {
            check_url(url)?;
        }
        self.more_urls = urls;
        Ok(self)
    }

    /// Every node's URL, the first node first.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.more_urls.iter().map(String::as_str))
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        1 + self.more_urls.len()
    }

    /// The URL member `member` of a workload connects to: node `member % nodes`.
    pub fn url_of(&self, member: usize) -> &str {
        match member % self.nodes() {
            0 => &self.url,
            n => self.more_urls.get(n - 1).map_or(self.url.as_str(), String::as_str),
        }
    }

    /// Every server pid given ([`Target::server_pid`] first).
    pub fn server_pids(&self) -> Vec<u32> {
        self.server_pid.into_iter().chain(self.more_server_pids.iter().copied()).collect()
    }

    /// `n` room ids starting at `offset`.
    pub fn rooms(&self, offset: usize, n: usize) -> Result<Vec<String>, BenchError> {
        self.rooms.get(offset..offset + n).map(<[String]>::to_vec).ok_or_else(|| {
            BenchError::Options(format!(
                "need rooms {offset}..{} but the seed has {}: seed more requests (labchat-bench seed --rooms N)",
                offset + n,
                self.rooms.len()
            ))
        })
    }

    /// A LAB token (LAB may access every request) for user `sub`, valid for 12 hours.
    pub fn token(&self, sub: &str) -> Result<String, BenchError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut claims = json!({"sub": sub, "iat": now, "exp": now + 12 * 3600});
        if let Some(map) = claims.as_object_mut() {
            map.insert(self.role_claim.clone(), json!("LAB"));
        }
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.secret))?)
    }

    /// Opens connection `index` with `token` to the first node, with a read buffer of
    /// `read_buffer` bytes.
    pub async fn connect(&self, index: usize, token: &str, read_buffer: usize) -> Result<Ws, BenchError> {
        self.connect_member(index, 0, token, read_buffer).await
    }

    /// Opens connection `index`, the workload's member `member`, to that member's node
    /// ([`Target::url_of`]).
    pub async fn connect_member(
        &self,
        index: usize,
        member: usize,
        token: &str,
        read_buffer: usize,
    ) -> Result<Ws, BenchError> {
        let connect_err = |source: WsError| BenchError::Connect { index, source: Box::new(source) };
        let mut req = self.url_of(member).into_client_request().map_err(connect_err)?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| BenchError::Options(format!("token is not a header value: {e}")))?;
        req.headers_mut().insert("Authorization", bearer);
        let config = WebSocketConfig::default().read_buffer_size(read_buffer.max(256)).write_buffer_size(16 * 1024);
        let connecting = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
        let (ws, _) = tokio::time::timeout(STEP_TIMEOUT, connecting)
            .await
            .map_err(|_| BenchError::Timeout(format!("connection {index}: handshake")))?
            .map_err(connect_err)?;
        Ok(ws)
    }
}

/// Joins `room` and waits for the ack (the `roomHistory` before it is read and dropped). Each
/// workload uses rooms of its own (`--room-offset`), so a fresh server's rooms have no history.
pub async fn join(ws: &mut Ws, room: &str, index: usize) -> Result<(), BenchError> {
    let frame = json!({"event": "joinRoom", "data": {"requestId": room}, "id": 1});
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| BenchError::Protocol(format!("connection {index}: send joinRoom: {e}")))?;
    let wait = async {
        while let Some(msg) = ws.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(c)) => {
                    return Err(BenchError::Protocol(format!("connection {index}: closed: {c:?}")));
                }
                Ok(_) => continue,
                Err(e) => return Err(BenchError::Protocol(format!("connection {index}: {e}"))),
            };
            let v: Value = serde_json::from_str(text.as_str())
                .map_err(|e| BenchError::Protocol(format!("connection {index}: server sent non-JSON: {e}")))?;
            match (v["event"].as_str(), v["id"].as_u64()) {
                (Some("ack"), Some(1)) => return Ok(()),
                (Some("error"), _) => {
                    return Err(BenchError::Protocol(format!("connection {index}: joinRoom {room}: {}", v["data"])));
                }
                _ => {}
            }
        }
        Err(BenchError::Protocol(format!("connection {index}: closed while joining")))
    };
    tokio::time::timeout(STEP_TIMEOUT, wait)
        .await
        .map_err(|_| BenchError::Timeout(format!("connection {index}: join")))?
}

/// A `message` frame without correlation id (no ack: the sender's own copy of the broadcast
/// confirms it).
pub fn message_frame(room: &str, text: &str) -> String {
    json!({"event": "message", "data": {"requestId": room, "message": text}}).to_string()
}

/// An `ackMessages` or `readMessages` frame for one id, without correlation id.
pub fn receipt_frame(event: &str, room: &str, id: &str) -> String {
    json!({"event": event, "data": {"requestId": room, "messages": [id]}}).to_string()
}

/// The sending half of a connection: frames go to a task that writes whatever is queued and
/// flushes once.
#[derive(Clone, Debug)]
pub struct Writer(mpsc::UnboundedSender<String>);

impl Writer {
    /// Queues a text frame; false when the connection's writer has stopped.
    pub fn send(&self, frame: String) -> bool {
        self.0.send(frame).is_ok()
    }
}

/// Starts the writer task of a connection's sending half.
pub fn spawn_writer(mut sink: SplitSink<Ws, Message>) -> (Writer, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::text(first)).await.is_err() {
                return;
            }
            while let Ok(next) = rx.try_recv() {
                if sink.feed(Message::text(next)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    (Writer(tx), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in ["ws://127.0.0.1:8080/ws", "ws://127.1.2.3/", "ws://localhost:1/ws", "ws://[::1]:9/ws"] {
            assert!(is_loopback_url(ok), "{ok}");
        }
        for bad in ["ws://10.0.0.1:8080/ws", "wss://127.0.0.1/", "ws://example.com/", "http://127.0.0.1/"] {
            assert!(!is_loopback_url(bad), "{bad}");
        }
        assert!(Target::new("ws://127.0.0.1:1/ws", "short", 1).is_err());
        let t = Target::new("ws://127.0.0.1:1/ws", "0123456789abcdef", 1).unwrap();
        assert!(t.with_more_urls(vec!["ws://10.0.0.1:2/ws".into()]).is_err());
    }

    #[test]
    fn members_are_spread_round_robin_from_the_first_node() {
        let t = Target::new("ws://127.0.0.1:1/ws", "0123456789abcdef", 1)
            .unwrap()
            .with_more_urls(vec!["ws://127.0.0.1:2/ws".into(), "ws://127.0.0.1:3/ws".into()])
            .unwrap();
        let got: Vec<&str> = (0..5).map(|m| t.url_of(m)).collect();
        assert_eq!(
            got,
            [
                "ws://127.0.0.1:1/ws",
                "ws://127.0.0.1:2/ws",
                "ws://127.0.0.1:3/ws",
                "ws://127.0.0.1:1/ws",
                "ws://127.0.0.1:2/ws"
            ]
        );
        assert_eq!(t.nodes(), 3);
        let one = Target::new("ws://127.0.0.1:1/ws", "0123456789abcdef", 1).unwrap();
        assert!((0..4).all(|m| one.url_of(m) == "ws://127.0.0.1:1/ws"));
        assert!(one.server_pids().is_empty());
    }
}
