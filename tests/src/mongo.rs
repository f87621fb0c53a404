//! The test MongoDB: connecting to it with a fresh database per test, adding requests the way the
//! lab system stores them, and a TCP proxy that can make the server go silent.
//!
//! The server's address comes from `LABCHAT_TEST_MONGO_URI`, which `scripts/test.sh` sets after
//! starting the test server (`scripts/mongo-test-server.sh`). Without it, every MongoDB test
//! fails, saying how to run it: a MongoDB test never passes by skipping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use labchat_core::ChatStore;
use labchat_domain::{ObjectIdBytes, RequestId};
use labchat_store_mongo::{MongoSettings, MongoStore};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{Client, Database};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::contract::{Creator, StoreFixture};

/// The environment variable holding the test MongoDB's connection string.
pub const URI_VAR: &str = "LABCHAT_TEST_MONGO_URI";

/// The test MongoDB's connection string, from [`URI_VAR`].
///
/// # Panics
///
/// When the variable is not set, with a message saying how to run the MongoDB tests.
pub fn test_mongo_uri() -> String {
    match std::env::var(URI_VAR) {
        Ok(uri) if !uri.trim().is_empty() => uri,
        _ => panic!(
            "{URI_VAR} is not set, so this MongoDB test cannot run (it fails rather than skip). \
             Run the tests with `scripts/test.sh` (it starts the test MongoDB server and sets \
             {URI_VAR}), or start the server yourself: `scripts/mongo-test-server.sh start` then \
             `export {URI_VAR}=$(scripts/mongo-test-server.sh uri)`."
        ),
    }
}

/// A database name no other test uses: the test's name, this process's id and a counter.
pub fn fresh_database_name(test_name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name: String = test_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(36).collect();
    format!("lct_{name}_{}_{n}", std::process::id())
}

/// Settings for the test MongoDB with a fresh database and the default collection names.
pub fn test_settings(test_name: &str) -> MongoSettings {
    MongoSettings { uri: test_mongo_uri(), database: fresh_database_name(test_name), ..MongoSettings::default() }
}

/// A [`MongoStore`] on the test MongoDB, in a database of its own (see
/// [`fresh_database_name`]), and a handle on that database through a separate client, for
/// adding requests and looking at documents.
///
/// # Panics
///
/// When `LABCHAT_TEST_MONGO_URI` is not set, or the server does not answer.
pub async fn fresh_mongo_store(test_name: &str) -> (MongoStore, Database) {
    let (store, db, _) = connect_fresh(test_name).await;
    (store, db)
}

async fn connect_fresh(test_name: &str) -> (MongoStore, Database, MongoSettings) {
    connect_fresh_with(test_name, |_| {}).await
}

async fn connect_fresh_with(
    test_name: &str,
    tweak: impl FnOnce(&mut MongoSettings),
) -> (MongoStore, Database, MongoSettings) {
    let mut settings = test_settings(test_name);
    tweak(&mut settings);
    let db = database(&settings).await;
    let store = MongoStore::connect(settings.clone())
        .await
        .unwrap_or_else(|e| panic!("connecting to the test MongoDB at {} failed: {e:?}", settings.uri));
    (store, db, settings)
}

/// The `host:port` of the test MongoDB (the first host of [`test_mongo_uri`]).
///
/// # Panics
///
/// As [`test_mongo_uri`], or when the URI names no host.
pub fn test_mongo_host() -> String {
    let uri = test_mongo_uri();
    let rest = uri.split_once("://").map_or(uri.as_str(), |(_, r)| r);
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    match hosts.split(',').next() {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => panic!("{URI_VAR}={uri:?} names no host"),
    }
}

/// A handle on the database of `settings` through a client of its own (not the store's), for
/// adding requests and looking at documents.
///
/// # Panics
///
/// When the URI is bad.
pub async fn database(settings: &MongoSettings) -> Database {
    let client = Client::with_uri_str(&settings.uri)
        .await
        .unwrap_or_else(|e| panic!("bad test MongoDB URI {:?}: {e}", settings.uri));
    client.database(&settings.database)
}

/// Adds a request document as the lab system stores it: `_id` an ObjectId, the creator field an
/// ObjectId or a string, plus some fields labchat ignores.
pub async fn insert_request(db: &Database, settings: &MongoSettings, id: RequestId, creator: &Creator) {
    let creator = match creator {
        Creator::Text(s) => Bson::String(s.clone()),
        Creator::ObjectId(b) => Bson::ObjectId(object_id(*b)),
    };
    let mut request = doc! {"_id": object_id(id.object_id()), "title": "Microscopes for lab 3", "quantity": 4_i64};
    request.insert(settings.creator_field.as_str(), creator);
    db.collection::<Document>(&settings.requests_collection)
        .insert_one(request)
        .await
        .unwrap_or_else(|e| panic!("inserting request {id} into the test MongoDB failed: {e}"));
}

fn object_id(b: ObjectIdBytes) -> ObjectId {
    ObjectId::from_bytes(b.bytes())
}

/// The contract's fixture for [`MongoStore`] on the test MongoDB, with a fresh database.
#[derive(Debug)]
pub struct MongoFixture {
    store: Arc<MongoStore>,
    db: Database,
    settings: MongoSettings,
}

impl MongoFixture {
    /// Connects a store to a fresh database named after `test_name`.
    ///
    /// # Panics
    ///
    /// As [`fresh_mongo_store`].
    pub async fn new(test_name: &str) -> Self {
        Self::with(test_name, |_| {}).await
    }

    /// As [`MongoFixture::new`], with the settings changed by `tweak` first (e.g. to turn
    /// [`MongoSettings::batch_inserts`] off).
    ///
    /// # Panics
    ///
    /// As [`fresh_mongo_store`].
    pub async fn with(test_name: &str, tweak: impl FnOnce(&mut MongoSettings)) -> Self {
        let (store, db, settings) = connect_fresh_with(test_name, tweak).await;
        Self { store: Arc::new(store), db, settings }
    }

    /// The store's database, through a separate client.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The store's settings.
    pub fn settings(&self) -> &MongoSettings {
        &self.settings
    }
}

#[async_trait]
impl StoreFixture for MongoFixture {
    fn store(&self) -> Arc<dyn ChatStore> {
        self.store.clone()
    }

    async fn add_request(&self, id: RequestId, creator: Creator) {
        insert_request(&self.db, &self.settings, id, &creator).await;
    }

    async fn reassign_request(&self, id: RequestId, creator: Creator) {
        self.remove_request(id).await;
        insert_request(&self.db, &self.settings, id, &creator).await;
    }

    async fn remove_request(&self, id: RequestId) {
        self.db
            .collection::<Document>(&self.settings.requests_collection)
            .delete_one(doc! {"_id": object_id(id.object_id())})
            .await
            .unwrap_or_else(|e| panic!("deleting request {id} from the test MongoDB failed: {e}"));
    }
}

/// A TCP proxy on 127.0.0.1 in front of a server, which can go silent: after
/// [`TcpProxy::freeze`], it keeps every connection open (and accepts new ones) but forwards
/// nothing, like a server that hangs; [`TcpProxy::restore`] ends that. It can also go slow:
/// after [`TcpProxy::slow_down`], what a client sends reaches the server that much later, like
/// a server busy with other work. Dropping it closes every connection.
///
/// Proxies take turns within a process: [`TcpProxy::start`] waits until no other proxy lives.
/// So a store outage is the only one in the process while it lasts, and a test may count the
/// process-wide failures it causes (the store's metrics) as its own. A test holds one proxy at
/// a time.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    frozen: Arc<watch::Sender<bool>>,
    delay: Arc<watch::Sender<Duration>>,
    task: JoinHandle<()>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// The turn of the one live [`TcpProxy`] of the process.
static PROXY_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl TcpProxy {
    /// Starts a proxy to `target` (`host:port`), once no other proxy of the process lives.
    ///
    /// # Panics
    ///
    /// When no local port can be bound.
    pub async fn start(target: String) -> Self {
        let turn = PROXY_TURN.lock().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind a proxy port: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("proxy address: {e}"));
        let frozen = Arc::new(watch::Sender::new(false));
        let delay = Arc::new(watch::Sender::new(Duration::ZERO));
        let (flag, lag) = (Arc::clone(&frozen), Arc::clone(&delay));
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(client, target.clone(), flag.subscribe(), lag.subscribe()));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, frozen, delay, task, _turn: turn }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, forward nothing and answer nothing, but keep connections open.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Ends a [`TcpProxy::freeze`]: every connection that went silent is closed (what was sent
    /// through it is lost, as when a network path breaks), and connections forward again, so
    /// clients that reconnect reach the server. Connections that carried nothing while frozen
    /// are left as they were.
    pub fn restore(&self) {
        self.frozen.send_replace(false);
    }

    /// From now on, hold what each client sends for `delay` before passing it on (answers come
    /// back at once); [`Duration::ZERO`] ends that.
    pub fn slow_down(&self, delay: Duration) {
        self.delay.send_replace(delay);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    mut client: TcpStream,
    target: String,
    mut frozen: watch::Receiver<bool>,
    delay: watch::Receiver<Duration>,
) {
    // Hold the sockets open, silently, until the proxy is restored or dropped; then close them.
    let hang = |mut frozen: watch::Receiver<bool>| async move {
        if frozen.wait_for(|f| !*f).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    if *frozen.borrow_and_update() {
        return hang(frozen).await;
    }
    let Ok(mut server) = TcpStream::connect(&target).await else { return };
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        let (from_client, n) = tokio::select! {
            r = client.read(&mut up) => (true, r),
            r = server.read(&mut down) => (false, r),
        };
        let n = match n {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *frozen.borrow() {
            return hang(frozen).await;
        }
        let lag = *delay.borrow();
        if from_client && !lag.is_zero() {
            tokio::time::sleep(lag).await;
        }
        let written = if from_client { server.write_all(&up[..n]).await } else { client.write_all(&down[..n]).await };
        if written.is_err() {
            return;
        }
    }
}

/// A local port with nothing listening on it (bound, then released).
///
/// # Panics
///
/// When no local port can be bound.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind a port: {e}"));
    let port = listener.local_addr().unwrap_or_else(|e| panic!("local address: {e}")).port();
    drop(listener);
    port
}

/// A generous bound for "about the operation timeout", for tests on slow, shared machines.
pub fn generous_bound(op_timeout: Duration) -> Duration {
    op_timeout * 4 + Duration::from_secs(5)
}
