//! How a member reaches a node: the websocket it opens from a source address of its own, and
//! the full-jitter backoff between attempts (the rule of clients/js's `backoff.ts`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, client_async_with_config};

use crate::BenchError;
use crate::client::{STEP_TIMEOUT, Ws};

/// The first backoff window (clients/js's default `minDelayMs`).
pub(crate) const MIN_DELAY: Duration = Duration::from_secs(1);
/// The cap of the window (clients/js's default `maxDelayMs`).
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30);

/// The delay before reconnect attempt `attempt` (1-based): uniform in
/// `[0, min(MAX_DELAY, MIN_DELAY * 2^(attempt-1)))`.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let window = MIN_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(MAX_DELAY);
    window.mul_f64(random_unit())
}

fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    r
}

/// Opens a websocket to `url` from `source` (a loopback address of its own, so that many
/// connections do not exhaust one address' ports).
pub(super) async fn open(url: &str, token: &str, source: Option<IpAddr>, index: usize) -> Result<Ws, BenchError> {
    let fail = |what: String| BenchError::Protocol(format!("connection {index}: {what}"));
    let authority = url.strip_prefix("ws://").and_then(|r| r.split('/').next()).unwrap_or_default();
    let addr: SocketAddr = authority.parse().map_err(|e| fail(format!("{url}: not ws://IP:PORT/...: {e}")))?;
    let socket = TcpSocket::new_v4().map_err(|e| fail(format!("socket: {e}")))?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| fail(format!("bind {ip}: {e}")))?;
    }
    let mut req = url.into_client_request().map_err(|e| fail(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| fail(e.to_string()))?;
    req.headers_mut().insert("Authorization", bearer);
    let config = WebSocketConfig::default().read_buffer_size(256).write_buffer_size(4096);
    let connecting = async {
        let stream = socket.connect(addr).await.map_err(|e| fail(format!("connect: {e}")))?;
        let (ws, _) = client_async_with_config(req, MaybeTlsStream::Plain(stream), Some(config))
            .await
            .map_err(|e| fail(format!("handshake: {e}")))?;
        Ok::<_, BenchError>(ws)
    };
    tokio::time::timeout(STEP_TIMEOUT, connecting).await.map_err(|_| fail("handshake timed out".into()))?
}
