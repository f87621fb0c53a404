//! The server's edge before the websocket upgrade, over real sockets: the handshake deadline
//! (silent sockets and slow senders are cut), the cap on pending connections, and the separate
//! operations listener for probes and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use labchat::app::{self, Settings};
use labchat_tests::client::{Client, WAIT};
use labchat_tests::harness::{TestServer, settings, token};
use labchat_transport_ws::ServerStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A handshake deadline no test run reaches: for tests that only need pending sockets to stay
/// open, whatever the machine's load.
const LONG_DEADLINE: Duration = Duration::from_secs(600);

/// Settings with the given handshake deadline.
fn with_deadline(deadline: Duration) -> Settings {
    let mut s = settings();
    s.ws.handshake_timeout = deadline;
    s
}

/// Reads until the server closes the socket (EOF or reset) and returns what it sent; panics if
/// it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or_else(|_| panic!("the socket is still open after {within:?}"));
    got
}

/// `GET path` on `addr` over raw HTTP/1.1: the status line and the body, bounded by [`WAIT`].
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    };
    let text = tokio::time::timeout(WAIT, exchange).await.unwrap_or_else(|_| panic!("GET {path}: no answer"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// A websocket upgrade request for `/ws` with a valid bearer token.
fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n\r\n",
        token("lab", "LAB")
    )
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_handshake_deadline() {
    let server = TestServer::start_with(with_deadline(Duration::from_millis(500))).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let got = read_until_closed(&mut silent, WAIT).await;
    assert!(got.is_empty(), "a silent socket gets no response, got {:?}", String::from_utf8_lossy(&got));
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before the deadline: {:?}", started.elapsed());
    wait_for("no pending connection", || server.stats.pending_connections() == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn a_request_sent_one_byte_at_a_time_is_cut_at_the_deadline_and_never_upgraded() {
    let server = TestServer::start_with(with_deadline(Duration::from_millis(500))).await;
    let request = upgrade_request(server.addr);
    let stream = TcpStream::connect(server.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_by_writer = Arc::clone(&sent);
    let bytes = request.clone().into_bytes();
    // 30 ms a byte: the whole request would take several seconds, far past the deadline.
    let writer = tokio::spawn(async move {
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            sent_by_writer.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        wr
    });
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let cut = tokio::time::timeout(Duration::from_secs(20), read).await;
    writer.abort();
    assert!(cut.is_ok(), "the slow request's socket was not closed");
    let text = String::from_utf8_lossy(&got);
    assert!(!text.starts_with("HTTP/1.1 101"), "a slow request was upgraded: {text:?}");
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < request.len(), "the whole request ({} bytes) went through before the cut", request.len());
    server.stop().await;
}

#[tokio::test]
async fn over_the_pending_cap_sockets_get_503_at_once() {
    // The idle sockets hold the cap until this test drops them.
    let mut s = with_deadline(LONG_DEADLINE);
    s.ws.max_pending_connections = 3;
    let server = TestServer::start_with(s).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    wait_for("3 pending connections", || server.stats.pending_connections() == 3).await;

    // Over the cap: refused at once, with a 503, not queued.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    // No slot frees before the idle sockets' (long) deadline: a refusal that came is immediate.
    let got = read_until_closed(&mut extra, WAIT).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    // A well-formed response: the declared length is the length of the body that came.
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of head: {text:?}"));
    let declared: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .unwrap_or_else(|| panic!("no content-length: {head:?}"))
        .1
        .trim()
        .parse()
        .unwrap();
    assert_eq!(declared, body.len(), "content-length vs the body received: {text:?}");
    assert!(body.contains("\"code\":\"UNAVAILABLE\""), "{text:?}");

    assert_eq!(server.stats.pending_connections(), 3, "the idle sockets still hold the cap");

    // Their peers leaving frees the cap; then probes work again.
    drop(idle);
    wait_for("no pending connection", || server.stats.pending_connections() == 0).await;
    let (status, body) = get(server.addr, "/healthz").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    server.stop().await;
}

#[tokio::test]
async fn the_deadline_frees_the_pending_cap_and_others_get_through() {
    let mut s = with_deadline(Duration::from_millis(500));
    s.ws.max_pending_connections = 3;
    let server = TestServer::start_with(s).await;
    // Twice the cap's worth of silent sockets, a cap's worth at a time: each is cut by the
    // deadline without a response (a 503 in the second round would be a slot never freed).
    for round in 0..2 {
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(server.addr).await.unwrap());
        }
        for s in &mut idle {
            let got = read_until_closed(s, WAIT).await;
            assert!(got.is_empty(), "round {round}: cut with a response {:?}", String::from_utf8_lossy(&got));
        }
        wait_for("no pending connection", || server.stats.pending_connections() == 0).await;
    }
    // Then probes and valid handshakes work again.
    let (status, body) = get(server.addr, "/healthz").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    let room = server.add_request("t").await.to_hex();
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    c.join(&room).await;
    server.stop().await;
}

#[tokio::test]
async fn pending_connections_show_in_stats_and_metrics() {
    let server = TestServer::start_with(with_deadline(LONG_DEADLINE)).await;
    let idle: Vec<TcpStream> =
        vec![TcpStream::connect(server.addr).await.unwrap(), TcpStream::connect(server.addr).await.unwrap()];
    wait_for("2 pending connections", || server.stats.pending_connections() == 2).await;
    let (status, body) = get(server.addr, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // The gauge is process-wide (other tests' servers add to it): at least these 2 and the
    // metrics request itself.
    let pending = body
        .lines()
        .find_map(|l| l.strip_prefix("labchat_connections_pending "))
        .unwrap_or_else(|| panic!("no labchat_connections_pending in {body}"));
    let pending: f64 = pending.trim().parse().unwrap();
    assert!(pending >= 3.0, "labchat_connections_pending {pending}");
    // Upgraded connections are no longer pending.
    let _c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    wait_for("the websocket counted as open, not pending", || {
        server.stats.open_connections() == 1 && server.stats.pending_connections() == 2
    })
    .await;
    drop(idle);
    server.stop().await;
}

/// A server with a chat listener and an operations listener.
struct OpsServer {
    chat: SocketAddr,
    ops: SocketAddr,
    stats: Arc<ServerStats>,
    shutdown: oneshot::Sender<()>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl OpsServer {
    async fn start() -> Self {
        let app = app::build(settings()).await.unwrap();
        let chat = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (chat_addr, ops_addr) = (chat.local_addr().unwrap(), ops.local_addr().unwrap());
        let (shutdown, rx) = oneshot::channel::<()>();
        let stats = app.server.stats();
        let handle = tokio::spawn(labchat_transport_ws::run_with_ops(chat, Some(ops), app.server, async {
            let _ = rx.await;
        }));
        Self { chat: chat_addr, ops: ops_addr, stats, shutdown, handle }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(WAIT, self.handle).await.unwrap().unwrap().unwrap();
    }
}

#[tokio::test]
async fn with_an_ops_listener_metrics_leave_the_chat_port_and_probes_answer_on_both() {
    let server = OpsServer::start().await;
    let (status, body) = get(server.ops, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("labchat_connections_pending"), "{body}");
    let (status, body) = get(server.chat, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status} {body}");
    assert!(body.contains("operations listener"), "{body}");
    for addr in [server.chat, server.ops] {
        for probe in ["/healthz", "/readyz"] {
            let (status, body) = get(addr, probe).await;
            assert!(status.starts_with("HTTP/1.1 200"), "{probe} on {addr}: {status} {body}");
        }
    }
    // The operations listener serves nothing else: no page, no websocket.
    let (status, _) = get(server.ops, "/").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    let mut s = TcpStream::connect(server.ops).await.unwrap();
    s.write_all(upgrade_request(server.ops).as_bytes()).await.unwrap();
    let mut head = vec![0u8; 12];
    tokio::time::timeout(WAIT, s.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(&head, b"HTTP/1.1 404");
    assert_eq!(server.stats.open_connections(), 0);
    // The chat port still chats.
    let c = Client::connect(&format!("ws://{}/ws", server.chat), &token("lab", "LAB")).await;
    wait_for("the websocket counted as open", || server.stats.open_connections() == 1).await;
    drop(c);
    server.stop().await;
}
