//! Measures the backplane traffic of posts: Redis publishes, bytes and deliveries to nodes per
//! message, from Redis's own `INFO commandstats` and `INFO stats` and the nodes'
//! `labchat_backplane_deliveries_total`, with six nodes (each with its own Redis connections, as
//! separate processes would have) over one in-memory store. Run by scripts/backplane-traffic.sh:
//!
//! `cargo run --release -p labchat-broadcast-redis --example inbox_traffic -- <redis url> <version 2|3>`
//!
//! The deployment it models: 120 rooms, each created by one of 30 teachers and with members on two
//! nodes; one LAB user with an open inbox on node 0; 10 of the teachers with an open inbox, on
//! nodes 0 to 5 in turn. One message is posted in every room, from one of its members' nodes.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::{BackplaneSecrets, EnvelopeVersion, RedisBroadcaster, RedisSettings};
use labchat_core::{Broadcaster, ChatStore, Inserted, Published, RoomSink, SinkId};
use labchat_domain::{Request, RequestId, Role, RoomEvent, User, UserId};
use labchat_memory::MemoryStore;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::{message, room};

#[path = "../tests/support/mod.rs"]
mod support;

const NODES: usize = 6;
const ROOMS: u32 = 120;
const TEACHERS: u32 = 30;
const TEACHERS_ONLINE: u32 = 10;

/// A room member that ignores what it gets.
struct Member(u64);

impl RoomSink for Member {
    fn id(&self) -> SinkId {
        SinkId(self.0)
    }
    fn deliver(&self, _event: Arc<Published>) {}
}

fn teacher(n: u32) -> UserId {
    UserId::parse(format!("teacher-{n}")).unwrap()
}

/// `INFO <section>` as `field -> value`.
async fn info(c: &mut redis::aio::MultiplexedConnection, section: &str) -> Vec<(String, String)> {
    let text: String = redis::cmd("INFO").arg(section).query_async(c).await.unwrap();
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_owned(), v.trim().to_owned())).collect()
}

fn field(info: &[(String, String)], key: &str, sub: Option<&str>) -> f64 {
    let v = info.iter().find(|(k, _)| k == key).map_or("0", |(_, v)| v.as_str());
    let v = match sub {
        Some(s) => v.split(',').find_map(|kv| kv.strip_prefix(&format!("{s}="))).unwrap_or("0"),
        None => v,
    };
    v.parse().unwrap()
}

/// Publishes, bytes into Redis, bytes out of Redis.
async fn redis_counts(c: &mut redis::aio::MultiplexedConnection) -> [f64; 3] {
    let commands = info(c, "commandstats").await;
    let stats = info(c, "stats").await;
    [
        field(&commands, "cmdstat_publish", Some("calls")),
        field(&stats, "total_net_input_bytes", None),
        field(&stats, "total_net_output_bytes", None),
    ]
}

/// The deliveries to every node, by channel kind.
fn deliveries(handle: &PrometheusHandle) -> Vec<(String, f64)> {
    let mut by_kind: Vec<(String, f64)> = Vec::new();
    for line in handle.render().lines().filter(|l| l.starts_with("labchat_backplane_deliveries_total{")) {
        let kind = line.split("channel=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?").to_owned();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        match by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, v)) => *v += value,
            None => by_kind.push((kind, value)),
        }
    }
    by_kind.sort_by(|a, b| a.0.cmp(&b.0));
    by_kind
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: inbox_traffic <redis url> <envelope version>");
    let version = EnvelopeVersion::new(args.next().map_or(3, |v| v.parse().unwrap())).unwrap();
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let store = Arc::new(MemoryStore::new());
    let nodes: Vec<Arc<RedisBroadcaster>> = (0..NODES)
        .map(|i| {
            let s = RedisSettings {
                url: url.clone(),
                node_id: format!("traffic-{i}"),
                check_interval: Duration::from_secs(600),
                envelope_version: version,
                secrets: BackplaneSecrets {
                    current: Some(b"a-backplane-secret-of-32-bytes!!".to_vec()),
                    previous: None,
                },
                ..RedisSettings::default()
            };
            RedisBroadcaster::start(s, store.clone() as Arc<dyn ChatStore>).unwrap()
        })
        .collect();
    for node in &nodes {
        while !node.backplane().unwrap().connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let rooms: Vec<RequestId> = (0..ROOMS).map(|_| room()).collect();
    for (n, room) in (0..).zip(&rooms) {
        store.add_request(Request::new(*room, teacher(n % TEACHERS)));
        let at = n as usize % NODES;
        nodes[at].subscribe(*room, Arc::new(Member(u64::from(n) * 2))).await.unwrap();
        nodes[(at + 1) % NODES].subscribe(*room, Arc::new(Member(u64::from(n) * 2 + 1))).await.unwrap();
    }
    nodes[0].inbox_interest(&User::new(UserId::parse("lab-1").unwrap(), Role::Lab), true).await;
    for t in 0..TEACHERS_ONLINE {
        nodes[t as usize % NODES].inbox_interest(&User::new(teacher(t), Role::Teacher), true).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let before = redis_counts(&mut c).await;
    let delivered_before = deliveries(&handle);
    for (n, room) in (0..).zip(&rooms) {
        let mut m = message(*room);
        let Inserted::New(seq) = store.insert_message(&m).await.unwrap() else { panic!("a duplicate") };
        m.seq = Some(seq);
        nodes[n as usize % NODES].publish(RoomEvent::MessagePosted(m)).await.unwrap();
    }
    // Everything published is delivered by now on loopback.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = redis_counts(&mut c).await;
    let delivered_after = deliveries(&handle);
    // The INFO commands of this measurement themselves: two before, two after, on one connection.
    let per = |i: usize| (after[i] - before[i]) / f64::from(ROOMS);
    println!("envelope version {}: {NODES} nodes, {ROOMS} messages", version.get());
    println!("  publishes per message:          {:.2}", per(0));
    println!("  bytes into redis per message:   {:.0}", per(1));
    println!("  bytes out of redis per message: {:.0} (the INFO replies of this measurement included)", per(2));
    let mut total = 0.0;
    for (kind, value) in &delivered_after {
        let was = delivered_before.iter().find(|(k, _)| k == kind).map_or(0.0, |(_, v)| *v);
        total += value - was;
        println!("  deliveries to nodes per message, {kind} channels: {:.2}", (value - was) / f64::from(ROOMS));
    }
    println!("  deliveries to nodes per message, all:  {:.2}", total / f64::from(ROOMS));
    for node in &nodes {
        node.shutdown();
    }
}
