//! Several real `labchat` processes (the debug binary) sharing the test MongoDB (a fresh database
//! per cluster) and a redis-server of their own: start, wait until ready on `/readyz`, `kill -9`,
//! restart; the Redis server can be killed, restarted on its port, and its pub/sub clients cut.
//! Everything started is killed when its handle drops.
//!
//! The binary is `target/debug/labchat` next to the running test (or `LABCHAT_BIN`): build it
//! first, `cargo build -p labchat --bin labchat` (`scripts/test.sh` does).
//!
//! Each cluster starts a redis-server of its own (`redis-server` on the PATH, or `REDIS_SERVER`),
//! so that a test may kill it or cut its clients without touching any other test; the shared one
//! of `scripts/test.sh` (`LABCHAT_TEST_REDIS_URL`) is for tests that leave Redis alone. With
//! [`BACKPLANE_VAR`] set to `cluster` each cluster's nodes share a Redis Cluster of their own
//! instead (`--redis-cluster`): `scripts/test.sh` runs the suite both ways.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_domain::RequestId;
use labchat_store_mongo::MongoSettings;
use mongodb::Database;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::contract::Creator;
use crate::harness::{SECRET, new_request_id};
use crate::process::{RedisServer, START_WAIT, wait_for};
use crate::redis_cluster::RedisCluster;

/// Set to `cluster`, the nodes of every [`Cluster`] use a Redis Cluster (three masters, three
/// replicas) of their own instead of one redis-server.
pub const BACKPLANE_VAR: &str = "LABCHAT_TEST_BACKPLANE";

/// Whether this run's clusters use a Redis Cluster ([`BACKPLANE_VAR`]).
pub fn on_redis_cluster() -> bool {
    std::env::var(BACKPLANE_VAR).is_ok_and(|v| v == "cluster")
}

/// Clusters run one at a time (each test's own processes; the machine is small).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `labchat` binary: `LABCHAT_BIN`, else `labchat` in the directory above this test
/// executable's `deps/` (the target's `debug/`).
///
/// # Panics
///
/// When it does not exist, saying how to build it.
pub fn labchat_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("LABCHAT_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(Path::parent).expect("the test executable is in <target>/debug/deps");
    let bin = dir.join(format!("labchat{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} does not exist: build it first with `cargo build -p labchat --bin labchat` (scripts/test.sh does), or set LABCHAT_BIN",
        bin.display()
    );
    bin
}

/// `GET path` over HTTP/1.1: the status and the body as JSON (`Null` when it is not JSON), or
/// `None` when the node does not answer within 5 s.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let (status, body) = http_get_text(addr, path).await?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// `GET path` over HTTP/1.1: the status and the body, or `None` when the node does not answer
/// within 5 s.
pub async fn http_get_text(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        Some(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange).await.ok()??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of the unlabelled metric `name` on the node's `/metrics` (0 when it is absent).
///
/// # Panics
///
/// When the node does not serve `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, text) = http_get_text(addr, "/metrics").await.expect("the node answers /metrics");
    assert_eq!(status, 200, "/metrics: {text}");
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// How a node is started (kept to restart it).
#[derive(Debug, Clone)]
struct NodeConfig {
    node_id: String,
    mongo: MongoSettings,
    /// The variable naming the backplane (`LABCHAT_REDIS_URL` or `LABCHAT_REDIS_CLUSTER`) and
    /// its value.
    redis: (&'static str, String),
    /// More `serve` flags.
    extra: Vec<String>,
}

/// One `labchat serve` process.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    child: Option<Child>,
    addr: SocketAddr,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl Node {
    async fn spawn(config: NodeConfig) -> Self {
        let mut child = Command::new(labchat_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--log", "info"])
            .args(["--shutdown-grace", "2s"])
            .args(&config.extra)
            .env("LABCHAT_JWT_SECRET", std::str::from_utf8(SECRET).expect("the test secret is text"))
            .env("LABCHAT_MONGO_URI", &config.mongo.uri)
            .env("LABCHAT_MONGO_DB", &config.mongo.database)
            .env_remove("LABCHAT_REDIS_URL")
            .env_remove("LABCHAT_REDIS_CLUSTER")
            .env(config.redis.0, &config.redis.1)
            .env("LABCHAT_NODE_ID", &config.node_id)
            .env_remove("LABCHAT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start labchat");
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let keep = |logs: &Mutex<VecDeque<String>>, line: &str| {
            let mut logs = logs.lock().unwrap();
            if logs.len() == 400 {
                logs.pop_front();
            }
            logs.push_back(line.to_owned());
        };
        let find_addr = async {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&logs, &line);
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v["fields"]["message"] == "labchat listening" {
                    return v["fields"]["addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                }
            }
            None
        };
        let addr = tokio::time::timeout(START_WAIT, find_addr).await.ok().flatten();
        let Some(addr) = addr else {
            let _ = child.start_kill();
            let logs: Vec<String> = logs.lock().unwrap().iter().cloned().collect();
            panic!("node {} did not start listening; its logs:\n{}", config.node_id, logs.join("\n"));
        };
        let drain = Arc::clone(&logs);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&drain, &line);
            }
        });
        let node = Self { config, child: Some(child), addr, logs };
        wait_for(&format!("node {} ready on /readyz", node.config.node_id), START_WAIT, || async {
            matches!(http_get(node.addr, "/readyz").await, Some((200, _))).then_some(())
        })
        .await;
        node
    }

    /// The node's name (`--node-id`).
    pub fn id(&self) -> &str {
        &self.config.node_id
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://addr/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `GET /readyz`: status and body, `None` when the node does not answer.
    pub async fn readyz(&self) -> Option<(u16, Value)> {
        http_get(self.addr, "/readyz").await
    }

    /// Waits until `/readyz` answers 200 with `backplane.connected == connected`.
    ///
    /// # Panics
    ///
    /// When it does not within `wait`, or answers anything but 200 meanwhile.
    pub async fn wait_backplane(&self, connected: bool, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            if let Some((status, body)) = self.readyz().await {
                assert_eq!(status, 200, "node {}: /readyz must stay 200 whatever the backplane: {body}", self.id());
                if body["backplane"]["connected"] == connected {
                    return;
                }
                last = Some(body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "node {}: /readyz did not report backplane.connected {connected} within {wait:?}; last body {last:?}; its logs:\n{}",
            self.id(),
            self.logs()
        );
    }

    /// `kill -9`: the process dies at once, its connections drop without a close frame.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(START_WAIT, child.wait()).await;
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process if it runs, and starts it again with the same settings (on a new port)
    /// and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill9().await;
        *self = Self::spawn(self.config.clone()).await;
    }

    /// Its latest log lines (JSON, one per line), for failure messages.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Why a test that acts on one redis-server cannot run on a cluster.
const SERVER_ONLY: &str = "this test acts on one redis-server; it does not run on a Redis Cluster (scripts/test.sh leaves it out of that run)";

/// What the nodes of a [`Cluster`] share as their backplane.
#[derive(Debug)]
pub enum Backplane {
    /// One redis-server.
    Server(RedisServer),
    /// A Redis Cluster.
    Cluster(RedisCluster),
}

/// N nodes on one fresh MongoDB database and one redis-server of their own (or a Redis Cluster,
/// see [`BACKPLANE_VAR`]).
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, `node-0` … `node-{n-1}`.
    pub nodes: Vec<Node>,
    /// Their Redis.
    pub backplane: Backplane,
    /// Their database, through a client of the test's own.
    pub db: Database,
    mongo: MongoSettings,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts a redis-server and `n` nodes on a fresh database named after `test_name`, and
    /// waits until every node is ready and connected to Redis.
    ///
    /// # Panics
    ///
    /// When `LABCHAT_TEST_MONGO_URI` is not set (run `scripts/test.sh`), or a process does not
    /// start.
    pub async fn start(test_name: &str, n: usize) -> Self {
        let cluster = Self::launch(test_name, n).await;
        for node in &cluster.nodes {
            node.wait_backplane(true, START_WAIT).await;
        }
        cluster
    }

    /// As [`Cluster::start`], but does not wait for the nodes to connect to Redis (only for
    /// `/readyz` to answer 200).
    pub async fn launch(test_name: &str, n: usize) -> Self {
        Self::launch_with(test_name, n, &[]).await
    }

    /// As [`Cluster::start`], every node started with these more `serve` flags.
    pub async fn start_with(test_name: &str, n: usize, extra: &[&str]) -> Self {
        let cluster = Self::launch_with(test_name, n, extra).await;
        for node in &cluster.nodes {
            node.wait_backplane(true, START_WAIT).await;
        }
        cluster
    }

    async fn launch_with(test_name: &str, n: usize, extra: &[&str]) -> Self {
        Self::launch_each(test_name, &vec![extra; n], on_redis_cluster()).await
    }

    /// As [`Cluster::start_with`], on a Redis Cluster whatever [`BACKPLANE_VAR`] says (for a test
    /// that fails the cluster over: see [`Cluster::redis_cluster`]).
    pub async fn start_on_redis_cluster(test_name: &str, n: usize, extra: &[&str]) -> Self {
        let cluster = Self::launch_each(test_name, &vec![extra; n], true).await;
        for node in &cluster.nodes {
            node.wait_backplane(true, START_WAIT).await;
        }
        cluster
    }

    /// As [`Cluster::start`], one node per entry of `extras`, each started with its own more
    /// `serve` flags (e.g. nodes of different settings during a rolling upgrade).
    pub async fn start_each(test_name: &str, extras: &[&[&str]]) -> Self {
        let cluster = Self::launch_each(test_name, extras, on_redis_cluster()).await;
        for node in &cluster.nodes {
            node.wait_backplane(true, START_WAIT).await;
        }
        cluster
    }

    async fn launch_each(test_name: &str, extras: &[&[&str]], redis_cluster: bool) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let mongo = crate::mongo::test_settings(test_name);
        let db = crate::mongo::database(&mongo).await;
        let backplane = match redis_cluster {
            true => Backplane::Cluster(RedisCluster::start().await),
            false => Backplane::Server(RedisServer::start().await),
        };
        let redis = match &backplane {
            Backplane::Server(server) => ("LABCHAT_REDIS_URL", server.url()),
            Backplane::Cluster(cluster) => ("LABCHAT_REDIS_CLUSTER", cluster.urls_arg()),
        };
        let mut nodes = Vec::with_capacity(extras.len());
        for (i, extra) in extras.iter().enumerate() {
            let config = NodeConfig {
                node_id: format!("node-{i}"),
                mongo: mongo.clone(),
                redis: redis.clone(),
                extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            };
            nodes.push(Node::spawn(config).await);
        }
        Self { nodes, backplane, db, mongo, _turn: turn }
    }

    /// Their redis-server, for a test that kills it or cuts its clients.
    ///
    /// # Panics
    ///
    /// On a Redis Cluster run ([`BACKPLANE_VAR`]): such a test is for one server (scripts/test.sh
    /// leaves it out of the cluster run).
    pub fn redis(&self) -> &RedisServer {
        match &self.backplane {
            Backplane::Server(server) => server,
            Backplane::Cluster(_) => panic!("{SERVER_ONLY}"),
        }
    }

    /// Their Redis Cluster, for a test that fails it over.
    ///
    /// # Panics
    ///
    /// When the nodes use one redis-server.
    pub fn redis_cluster(&mut self) -> &mut RedisCluster {
        match &mut self.backplane {
            Backplane::Cluster(cluster) => cluster,
            Backplane::Server(_) => {
                panic!("this test needs a Redis Cluster: start it with Cluster::start_on_redis_cluster")
            }
        }
    }

    /// As [`Cluster::redis`], to kill or restart it.
    ///
    /// # Panics
    ///
    /// As [`Cluster::redis`].
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        match &mut self.backplane {
            Backplane::Server(server) => server,
            Backplane::Cluster(_) => panic!("{SERVER_ONLY}"),
        }
    }

    /// Adds a request created by the teacher `creator`, as the lab system stores it.
    pub async fn add_request(&self, creator: &str) -> RequestId {
        let id = new_request_id();
        crate::mongo::insert_request(&self.db, &self.mongo, id, &Creator::Text(creator.to_owned())).await;
        id
    }

    /// Every node's latest logs, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- {} ---\n{}", n.id(), n.logs())).collect::<Vec<_>>().join("\n")
    }
}
