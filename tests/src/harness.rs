//! A real labchat server on 127.0.0.1:0, built by the same wiring as the binary, on the
//! in-memory store or on the test MongoDB (a fresh database per test), and tokens signed with
//! real keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use labchat::app::{self, Settings, StoreSettings};
use labchat_core::{Chat, JoinAdmission, PresenceBurst, SystemClock};
use labchat_domain::{HistoryLimit, ObjectIdBytes, Request, RequestId, UserId};
use labchat_memory::MemoryStore;
use labchat_store_mongo::MongoSettings;
use labchat_transport_ws::{AuthSettings, Authenticator, JwtAlgorithm, Server, ServerStats, WsConfig};
use mongodb::Database;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::Client;

/// The HS256 secret of test servers.
pub const SECRET: &[u8] = b"labchat-test-secret-0123456789";

/// Settings of a test server: in-memory store, HS256 with [`SECRET`], default limits.
pub fn settings() -> Settings {
    Settings {
        auth: AuthSettings {
            algorithm: JwtAlgorithm::Hs256,
            key: SECRET.to_vec(),
            issuer: None,
            audience: None,
            role_claim: "role".into(),
        },
        history_limit: HistoryLimit::DEFAULT,
        ws: WsConfig::default(),
        store: StoreSettings::Memory { seed: vec![] },
        backplane: None,
        presence_burst: PresenceBurst::default(),
        join_reuse: labchat_core::DEFAULT_JOIN_REUSE,
        join_admission: JoinAdmission::default(),
    }
}

/// Settings of a test server on the test MongoDB, in a fresh database named after `test_name`
/// (see [`crate::mongo::test_settings`]); otherwise as [`settings`].
///
/// # Panics
///
/// When `LABCHAT_TEST_MONGO_URI` is not set: run the tests with `scripts/test.sh`.
pub fn mongo_settings(test_name: &str) -> Settings {
    Settings { store: StoreSettings::Mongo(crate::mongo::test_settings(test_name)), ..settings() }
}

/// The store a test server uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    /// The in-memory store.
    Memory,
    /// MongoDB: the test MongoDB, a fresh database per server.
    Mongo,
}

impl Backend {
    /// The default [`settings`] on this store; for MongoDB, in a fresh database named after
    /// `test_name` (see [`mongo_settings`]).
    ///
    /// # Panics
    ///
    /// For MongoDB, when `LABCHAT_TEST_MONGO_URI` is not set: run the tests with
    /// `scripts/test.sh`.
    pub fn settings(self, test_name: &str) -> Settings {
        match self {
            Self::Memory => settings(),
            Self::Mongo => mongo_settings(test_name),
        }
    }
}

/// The MongoDB database of a test server, through a client of its own (not the server's).
#[derive(Debug, Clone)]
pub struct MongoHandle {
    /// The database.
    pub db: Database,
    /// The server's MongoDB settings.
    pub settings: MongoSettings,
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its in-memory store, when it uses one.
    pub memory: Option<Arc<MemoryStore>>,
    /// Its MongoDB database, when it uses MongoDB.
    pub mongo: Option<MongoHandle>,
    /// Its live counters.
    pub stats: Arc<ServerStats>,
    /// Its broadcaster (room and subscription counts).
    pub broadcaster: Arc<labchat_memory::LocalBroadcaster>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// A server with the default [`settings`].
    pub async fn start() -> Self {
        Self::start_with(settings()).await
    }

    /// A server with the default settings on `backend` (for MongoDB, a fresh database named
    /// after `test_name`).
    ///
    /// # Panics
    ///
    /// As [`Backend::settings`], or when the server cannot be built.
    pub async fn start_on(backend: Backend, test_name: &str) -> Self {
        Self::start_with(backend.settings(test_name)).await
    }

    /// A server with these settings.
    pub async fn start_with(settings: Settings) -> Self {
        let mongo = match &settings.store {
            StoreSettings::Mongo(m) => Some(MongoHandle { db: crate::mongo::database(m).await, settings: m.clone() }),
            StoreSettings::Memory { .. } => None,
        };
        let app = app::build(settings).await.expect("build server");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let stats = app.server.stats();
        let handle = tokio::spawn(labchat_transport_ws::run(listener, app.server, async {
            let _ = rx.await;
        }));
        let broadcaster = app.broadcaster.expect("in-process test servers run without a backplane");
        Self { addr, memory: app.memory, mongo, stats, broadcaster, shutdown: Some(tx), handle: Some(handle) }
    }

    /// `ws://addr/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Adds a request created by `creator` to the server's store and returns its id: to the
    /// in-memory store, or into MongoDB's requests collection as the lab system stores it
    /// (`_id` an ObjectId, the creator field a string).
    pub async fn add_request(&self, creator: &str) -> RequestId {
        let id = new_request_id();
        match (&self.memory, &self.mongo) {
            (Some(mem), _) => mem.add_request(Request::new(id, UserId::parse(creator).unwrap())),
            (None, Some(m)) => {
                let creator = crate::contract::Creator::Text(creator.to_owned());
                crate::mongo::insert_request(&m.db, &m.settings, id, &creator).await;
            }
            (None, None) => panic!("this server has no store the tests can add requests to"),
        }
        id
    }

    /// `GET path` over plain HTTP/1.1: the status and the body as JSON (`Null` when it is not
    /// JSON). Bounded by [`crate::client::WAIT`].
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr).await.expect("connect for GET");
            let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
            stream.write_all(request.as_bytes()).await.expect("send GET");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("read the response");
            raw
        };
        let raw = tokio::time::timeout(crate::client::WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("GET {path}: no response within {:?}", crate::client::WAIT));
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad response {text:?}"));
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Signals shutdown and waits until `run` returns; returns how long that took.
    pub async fn stop(mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server run");
        }
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

/// A real server over use cases a test assembled itself (a hooked store, a simulated backplane),
/// with the default transport settings and [`settings`]' keys; stopped on drop.
#[derive(Debug)]
pub struct ChatServer {
    /// Where it listens.
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl ChatServer {
    /// Serves `chat` on 127.0.0.1 (any port).
    pub async fn serve(chat: Arc<Chat>) -> Self {
        let clock = Arc::new(SystemClock);
        let auth = Authenticator::new(&settings().auth).expect("test keys");
        let server = Arc::new(Server::new(chat, auth, WsConfig::default(), clock));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(labchat_transport_ws::run(listener, server, async {
            let _ = rx.await;
        }));
        Self { addr, _shutdown: tx, handle }
    }

    /// A client of `user` with `role` (a token from [`token`]).
    pub async fn client(&self, user: &str, role: &str) -> Client {
        Client::connect(&format!("ws://{}/ws", self.addr), &token(user, role)).await
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A fresh random request id.
pub fn new_request_id() -> RequestId {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let pid = std::process::id().to_be_bytes();
    RequestId::from_object_id(ObjectIdBytes::from_parts(nanos, [pid[0], pid[1], pid[2], pid[3], 0x7e], n))
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A valid HS256 token for `sub` with `role`, valid for an hour.
pub fn token(sub: &str, role: &str) -> String {
    sign(&json!({"sub": sub, "role": role, "exp": now_secs() + 3600}))
}

/// `claims` signed HS256 with [`SECRET`].
pub fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, &EncodingKey::from_secret(SECRET))
}

/// `claims` signed with any algorithm and key.
pub fn sign_with(claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign token")
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims.to_string().as_bytes()))
}

/// Reads a test key file from `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
