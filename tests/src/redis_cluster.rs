//! A Redis Cluster of one test: six `redis-server` processes (three masters, three replicas) on
//! 127.0.0.1, created with `redis-cli --cluster create`, that a test may fail over (`CLUSTER
//! FAILOVER`), break (`kill -9` of a master, its replica promoted) and mend (the killed server
//! restarted, rejoining as a replica). Every wait is bounded and panics with what it last saw;
//! everything started is killed, and its files removed, when the handle drops.
//!
//! The programs are `redis-server` and `redis-cli` on the PATH, or `REDIS_SERVER` and
//! `REDIS_CLI`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use redis::FromRedisValue;
use tokio::process::{Child, Command};

use crate::process::{START_WAIT, spawn_redis_server};

mod topology;
use topology::{NodeEntry, info_field, parse_nodes};

/// How many slots a Redis Cluster has.
pub const SLOTS: u16 = 16384;

/// How many servers: three masters, each with one replica.
const SERVERS: usize = 6;

/// How long one command may take to be answered.
const COMMAND_WAIT: Duration = Duration::from_secs(2);

/// One server of the cluster: its port, and its process while it runs.
#[derive(Debug)]
struct Server {
    port: u16,
    child: Option<Child>,
}

/// Six redis-servers forming one cluster, on ports of their own (each port + 10000, the cluster
/// bus, free too), their files in a directory of their own.
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<Server>,
    dir: PathBuf,
}

/// Sends one command to the server on `port` (a connection of its own), waiting at most 2 s.
///
/// # Errors
///
/// When the server does not answer in time, or answers an error.
pub async fn query<T: FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    let exchange = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let mut con = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut con).await
    };
    match tokio::time::timeout(COMMAND_WAIT, exchange).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("127.0.0.1:{port}: {e}")),
        Err(_) => Err(format!("127.0.0.1:{port}: no answer within {COMMAND_WAIT:?}")),
    }
}

/// Runs `check` every 100 ms until it returns `Ok`, for at most `wait`.
///
/// # Panics
///
/// When `wait` passes first, naming `what` and the last `Err` (what was seen).
async fn settle<T, F, Fut>(what: &str, wait: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let seen = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {wait:?}; last seen: {seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `SERVERS` distinct free ports of 127.0.0.1 whose port + 10000 (the cluster bus) is free too.
fn free_cluster_ports() -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..200 {
        if ports.len() == SERVERS {
            break;
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let bus = port.checked_add(10000).and_then(|bus| std::net::TcpListener::bind(("127.0.0.1", bus)).ok());
        if let Some(bus) = bus {
            ports.push(port);
            held.push(bus);
        }
        held.push(l);
    }
    assert_eq!(ports.len(), SERVERS, "no {SERVERS} free ports with free cluster bus ports (port + 10000)");
    ports
}

impl RedisCluster {
    /// The hash slot of `key`, as the cluster computes it (`CLUSTER KEYSLOT`).
    ///
    /// # Panics
    ///
    /// When no live server answers.
    pub async fn slot_of(&self, key: &str) -> u16 {
        let port = *self.live_ports().first().expect("a live server");
        query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT {key}: {e}"))
    }

    /// Starts six redis-servers in cluster mode, creates the cluster (`redis-cli --cluster
    /// create ... --cluster-replicas 1`) and waits until it is healthy: every node says
    /// `cluster_state:ok`, sees all 16384 slots served, and every master has one replica,
    /// linked.
    ///
    /// # Panics
    ///
    /// When a server does not start (install them with `scripts/redis-test-server.sh start`),
    /// the cluster cannot be created, or does not become healthy within 30 s.
    pub async fn start() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique =
            format!("labchat-redis-cluster-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(unique);
        let servers = free_cluster_ports().into_iter().map(|port| Server { port, child: None }).collect();
        let mut cluster = Self { servers, dir };
        for i in 0..SERVERS {
            cluster.launch(i).await;
        }
        let program = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let mut create = Command::new(&program);
        create.args(["--cluster", "create"]);
        create.args(cluster.servers.iter().map(|s| format!("127.0.0.1:{}", s.port)));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]).stdin(Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(START_WAIT, create.output())
            .await
            .unwrap_or_else(|_| panic!("{program} --cluster create: not done within {START_WAIT:?}"))
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} --cluster create failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_healthy("the new cluster healthy").await;
        cluster
    }

    /// Starts server `i` (again) on its port, with its `nodes.conf`, and waits until it answers
    /// PING.
    async fn launch(&mut self, i: usize) {
        let port = self.servers[i].port;
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let nodes_conf = self.dir.join(format!("nodes-{port}.conf"));
        let mut args: Vec<OsString> =
            ["--bind", "127.0.0.1", "--port", &port.to_string(), "--cluster-enabled", "yes"].map(OsString::from).into();
        args.extend([OsString::from("--cluster-config-file"), nodes_conf.into_os_string()]);
        args.extend(["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"].map(OsString::from));
        // A replica syncs at once (by default a master waits 5 s for more replicas to sync too).
        args.extend(["--repl-diskless-sync-delay", "0"].map(OsString::from));
        args.extend([OsString::from("--dir"), dir.into_os_string()]);
        let child = spawn_redis_server(args);
        self.servers[i].child = Some(child);
        settle(&format!("redis-server on {port} answering PING"), START_WAIT, || async move {
            query::<String>(port, &redis::cmd("PING")).await.map(drop)
        })
        .await;
    }

    /// Every server's URL, `redis://127.0.0.1:PORT/`, killed ones included.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| format!("redis://127.0.0.1:{}/", s.port)).collect()
    }

    /// [`RedisCluster::urls`] joined with commas (one flag's value).
    pub fn urls_arg(&self) -> String {
        self.urls().join(",")
    }

    /// The ports of the servers that run.
    fn live_ports(&self) -> Vec<u16> {
        self.servers.iter().filter(|s| s.child.is_some()).map(|s| s.port).collect()
    }

    /// `CLUSTER NODES` as the first live server sees it.
    async fn nodes(&self) -> Vec<NodeEntry> {
        let port = *self.live_ports().first().expect("a server of the cluster runs");
        let text: String = query(port, redis::cmd("CLUSTER").arg("NODES")).await.unwrap_or_else(|e| panic!("{e}"));
        parse_nodes(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The port of the master serving `slot`.
    ///
    /// # Panics
    ///
    /// When no master serves it.
    pub async fn master_of_slot(&self, slot: u16) -> u16 {
        let nodes = self.nodes().await;
        let master = nodes.iter().find(|n| n.is_master() && !n.has("fail") && n.serves(slot));
        master.unwrap_or_else(|| panic!("no master serves slot {slot}: {nodes:?}")).port
    }

    /// The port of the replica of the master on `master_port`.
    ///
    /// # Panics
    ///
    /// When that master has no healthy replica.
    pub async fn replica_of(&self, master_port: u16) -> u16 {
        let nodes = self.nodes().await;
        let master = nodes.iter().find(|n| n.port == master_port && n.is_master());
        let master = master.unwrap_or_else(|| panic!("no master on port {master_port}: {nodes:?}"));
        let replica = nodes.iter().find(|n| n.master.as_ref() == Some(&master.id) && n.is_healthy());
        replica.unwrap_or_else(|| panic!("the master on {master_port} has no healthy replica: {nodes:?}")).port
    }

    /// Whether every live server sees `cluster_state:ok`, every slot served by one healthy
    /// master, the slot of `slot_owner` served by the port it names (when given), and (when
    /// `replicas`) one healthy replica of each master, its replication link up. `Err` says
    /// what was seen instead.
    async fn check(&self, slot_owner: Option<(u16, u16)>, replicas: bool) -> Result<(), String> {
        for port in self.live_ports() {
            let info: String = query(port, redis::cmd("CLUSTER").arg("INFO")).await?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!("{port}: CLUSTER INFO:\n{info}"));
            }
            let nodes = parse_nodes(&query::<String>(port, redis::cmd("CLUSTER").arg("NODES")).await?)?;
            let masters: Vec<&NodeEntry> = nodes.iter().filter(|n| n.is_master() && !n.slots.is_empty()).collect();
            let served: u32 = masters.iter().flat_map(|m| &m.slots).map(|&(a, b)| u32::from(b - a) + 1).sum();
            let all_healthy = masters.iter().all(|m| m.has("myself") || m.is_healthy());
            if served != u32::from(SLOTS) || !all_healthy {
                return Err(format!("{port}: {served} slots served, masters {masters:?}"));
            }
            if let Some((slot, owner)) = slot_owner
                && !masters.iter().any(|m| m.port == owner && m.serves(slot))
            {
                return Err(format!("{port}: slot {slot} not on {owner}: {masters:?}"));
            }
            for master in masters.iter().filter(|_| replicas) {
                let of_it: Vec<&NodeEntry> = nodes.iter().filter(|n| n.master.as_ref() == Some(&master.id)).collect();
                if of_it.len() != 1 || !of_it.iter().all(|r| r.has("myself") || r.is_healthy()) {
                    return Err(format!("{port}: master {} has replicas {of_it:?}", master.port));
                }
            }
            let me = nodes.iter().find(|n| n.has("myself")).ok_or_else(|| format!("{port}: no myself"))?;
            if replicas && !me.is_master() {
                let replication: String = query(port, redis::cmd("INFO").arg("replication")).await?;
                if info_field(&replication, "master_link_status") != Some("up") {
                    return Err(format!("{port}: INFO replication:\n{replication}"));
                }
            }
        }
        Ok(())
    }

    /// Waits until [`RedisCluster::check`] passes with every master replicated.
    async fn wait_healthy(&self, what: &str) {
        settle(what, START_WAIT, || self.check(None, true)).await;
    }

    /// `CLUSTER FAILOVER` on the replica of `slot`'s master; waits until every server sees that
    /// replica as the slot's master and the cluster healthy again (the old master its replica).
    ///
    /// # Panics
    ///
    /// When the slot's master has no replica, the replica refuses, or the cluster does not
    /// settle within 30 s.
    pub async fn failover(&self, slot: u16) {
        let master = self.master_of_slot(slot).await;
        let replica = self.replica_of(master).await;
        let reply: String =
            query(replica, redis::cmd("CLUSTER").arg("FAILOVER")).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply, "OK", "CLUSTER FAILOVER on {replica}");
        let what = format!("slot {slot} moved from {master} to {replica} by CLUSTER FAILOVER");
        settle(&what, START_WAIT, || self.check(Some((slot, replica)), true)).await;
    }

    /// `kill -9` of `slot`'s master; waits until every live server sees its replica promoted
    /// as the slot's master and says `cluster_state:ok`. Returns the killed server's port.
    ///
    /// # Panics
    ///
    /// When the slot's master has no replica, or the replica is not promoted within 30 s.
    pub async fn kill_master(&mut self, slot: u16) -> u16 {
        let master = self.master_of_slot(slot).await;
        let replica = self.replica_of(master).await;
        let server = self.servers.iter_mut().find(|s| s.port == master).expect("the master is one of ours");
        if let Some(mut child) = server.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(START_WAIT, child.wait()).await;
        }
        let what = format!("slot {slot}'s replica {replica} promoted after its master {master} was killed");
        settle(&what, START_WAIT, || self.check(Some((slot, replica)), false)).await;
        master
    }

    /// Starts the killed server on `port` again, with its `nodes.conf`: it rejoins as a replica
    /// of the master that took its slots. Waits until the cluster is healthy again.
    ///
    /// # Panics
    ///
    /// When `port` is not a killed server of this cluster, or it does not rejoin within 30 s.
    pub async fn restart(&mut self, port: u16) {
        let i = self.servers.iter().position(|s| s.port == port && s.child.is_none());
        let i = i.unwrap_or_else(|| panic!("{port} is not a killed server of this cluster"));
        self.launch(i).await;
        self.wait_healthy(&format!("the server on {port} rejoined as a replica")).await;
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if let Some(child) = server.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
