//! Envelope versions and authentication on a real redis-server: nodes writing the previous
//! version and this one read each other; envelopes published straight into Redis, as a node of
//! the previous release or a forger would, are delivered or refused (and counted) as
//! docs/deployment.md and docs/security.md say. One Prometheus recorder serves every test of
//! this binary; each test reads the counters of its own node ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use labchat_broadcast_redis::{BackplaneSecrets, EnvelopeVersion, RedisBroadcaster, RedisSettings};
use labchat_core::{Broadcaster, ChatStore, Inserted};
use labchat_domain::{MessageText, RequestId, Role, RoomEvent, UserId};
use labchat_memory::MemoryStore;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use support::{Recorder, Redis, message, read_receipt, room, settings, wait_for};

const LIMIT: Duration = Duration::from_secs(10);
const SECRET: &[u8] = b"the-backplane-secret-of-the-test";
const OLD_SECRET: &[u8] = b"the-secret-before-the-rotation";

fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

/// The value of the counter `name` whose labels include every one of `labels`, if rendered.
fn counter(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics().render().lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels.iter().all(|(k, v)| set.contains(&format!("{k}=\"{v}\""))).then(|| value.trim().parse().unwrap())
    })
}

fn node(
    redis: &Redis,
    store: &Arc<MemoryStore>,
    id: &str,
    tune: impl FnOnce(&mut RedisSettings),
) -> Arc<RedisBroadcaster> {
    let mut s = RedisSettings { check_interval: Duration::from_secs(60), ..settings(redis, id) };
    tune(&mut s);
    RedisBroadcaster::start(s, store.clone() as Arc<dyn ChatStore>).unwrap()
}

fn secrets(current: &[u8], previous: Option<&[u8]>) -> BackplaneSecrets {
    BackplaneSecrets { current: Some(current.to_vec()), previous: previous.map(<[u8]>::to_vec) }
}

async fn connected(node: &RedisBroadcaster) {
    wait_for("the backplane connected", LIMIT, || async { node.backplane().unwrap().connected }).await;
}

/// An envelope of version `v` as a node writes it, unsealed.
fn envelope(v: u64, origin: &str, event: &RoomEvent) -> Vec<u8> {
    let seq = event.seq().map(|s| s.get());
    let mut json = json!({"v": v, "origin": origin, "event": event});
    if let Some(seq) = seq {
        json["seq"] = seq.into();
    }
    serde_json::to_vec(&json).unwrap()
}

/// `payload` sealed as docs/security.md describes: `{"mac":"<hex HMAC-SHA256 of payload>",…`.
fn seal(secret: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(payload);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    [format!("{{\"mac\":\"{hex}\",").as_bytes(), &payload[1..]].concat()
}

/// PUBLISH straight into Redis, on one connection (so in order).
struct Raw(redis::aio::MultiplexedConnection);

impl Raw {
    async fn connect(redis: &Redis) -> Self {
        Self(redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap())
    }

    async fn publish(&mut self, room: RequestId, payload: &[u8]) {
        let channel = format!("labchat:room:{}", room.to_hex());
        let _: i64 = redis::cmd("PUBLISH").arg(channel).arg(payload).query_async(&mut self.0).await.unwrap();
    }
}

/// A message stored (so the store assigns its seq) with `text`, as its event.
async fn stored(store: &MemoryStore, room: RequestId, text: &str) -> RoomEvent {
    let m = with_text(message(room), text);
    let m = match store.insert_message(&m).await.unwrap() {
        Inserted::New(seq) => m.with_seq(seq),
        Inserted::Duplicate(_) => panic!("unexpected duplicate"),
    };
    RoomEvent::MessagePosted(m)
}

fn texts(r: &Recorder) -> Vec<String> {
    r.events()
        .iter()
        .filter_map(
            |e| if let RoomEvent::MessagePosted(m) = e { m.text().map(|t| t.as_str().to_owned()) } else { None },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_writing_the_previous_version_and_one_writing_this_one_get_every_event_of_each_other() {
    metrics();
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let old = node(&redis, &store, "mixed-old", |s| s.secrets = secrets(SECRET, None));
    let new = node(&redis, &store, "mixed-new", |s| {
        s.envelope_version = EnvelopeVersion::NEWEST;
        s.secrets = secrets(SECRET, None);
    });
    connected(&old).await;
    connected(&new).await;
    let r = room();
    let (on_old, on_new) = (Recorder::new(1), Recorder::new(2));
    old.subscribe(r, on_old.clone()).await.unwrap();
    new.subscribe(r, on_new.clone()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let event = stored(&store, r, &format!("m{i}")).await;
        if let RoomEvent::MessagePosted(m) = &event {
            ids.push(m.id);
        }
        (if i % 2 == 0 { &old } else { &new }).publish(event).await.unwrap();
    }
    let lab = UserId::parse("lab-1").unwrap();
    let others = [
        read_receipt(r, &ids[..5]),
        RoomEvent::MemberJoined { request_id: r, user_id: lab.clone(), role: Role::Lab },
        RoomEvent::Typing { request_id: r, user_id: lab.clone(), role: Role::Lab },
        RoomEvent::MemberLeft { request_id: r, user_id: lab },
    ];
    for (i, event) in others.into_iter().enumerate() {
        (if i % 2 == 0 { &new } else { &old }).publish(event).await.unwrap();
    }
    for (who, rec) in [("the node writing 2", &on_old), ("the node writing 3", &on_new)] {
        rec.expect_seqs(who, 10, LIMIT).await;
        wait_for(&format!("{who}: 14 events"), LIMIT, || async { rec.events().len() >= 14 }).await;
        let kinds: Vec<&str> = rec.events()[10..].iter().map(|e| e.kind().as_str()).collect();
        assert_eq!(kinds.len(), 4, "{who}: {kinds:?}");
    }
    for id in ["mixed-old", "mixed-new"] {
        assert_eq!(counter("labchat_backplane_rejected_total", &[("node", id)]), None, "{id} refused nothing");
    }
    old.shutdown();
    new.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_of_the_previous_release_published_into_redis_are_delivered_until_a_node_writes_3() {
    metrics();
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let plain = node(&redis, &store, "prev-plain", |_| {});
    let keyed = node(&redis, &store, "prev-keyed", |s| s.secrets = secrets(SECRET, None));
    let strict = node(&redis, &store, "prev-strict", |s| {
        s.envelope_version = EnvelopeVersion::NEWEST;
        s.secrets = secrets(SECRET, None);
    });
    for n in [&plain, &keyed, &strict] {
        connected(n).await;
    }
    let r = room();
    let recorders = [Recorder::new(1), Recorder::new(2), Recorder::new(3)];
    for (n, rec) in [&plain, &keyed, &strict].into_iter().zip(&recorders) {
        n.subscribe(r, rec.clone()).await.unwrap();
    }
    let mut raw = Raw::connect(&redis).await;
    // As a node of the previous release publishes: version 2, no MAC.
    let first = stored(&store, r, "from the previous release").await;
    raw.publish(r, &envelope(2, "previous-release", &first)).await;
    // As a node of this release writing version 2 with the secret publishes: sealed.
    let second = stored(&store, r, "sealed version 2").await;
    raw.publish(r, &seal(SECRET, &envelope(2, "this-release", &second))).await;
    for (who, rec) in [("no secret", &recorders[0]), ("secret, writing 2", &recorders[1])] {
        rec.expect_seqs(who, 2, LIMIT).await;
        assert_eq!(texts(rec), ["from the previous release", "sealed version 2"], "{who}");
    }
    // The node writing 3 refused the unsealed one; the sealed one waits for it (seq 2 after a
    // hole), so the store fills seq 1 after the gap wait: nothing forged, nothing lost.
    recorders[2].expect_seqs("secret, writing 3", 2, LIMIT).await;
    assert_eq!(
        counter("labchat_backplane_rejected_total", &[("node", "prev-strict"), ("reason", "unsigned")]),
        Some(1.0)
    );
    for id in ["prev-plain", "prev-keyed"] {
        assert_eq!(counter("labchat_backplane_rejected_total", &[("node", id)]), None, "{id}");
    }
    for n in [&plain, &keyed, &strict] {
        n.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_is_counted_per_version_and_the_node_goes_on() {
    metrics();
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let n = node(&redis, &store, "unknown-v", |_| {});
    connected(&n).await;
    let r = room();
    let rec = Recorder::new(1);
    n.subscribe(r, rec.clone()).await.unwrap();
    let mut raw = Raw::connect(&redis).await;
    let ahead = stored(&store, r, "written as version 4").await;
    for v in [4, 4, 1, 1_000_000] {
        raw.publish(r, &envelope(v, "newer", &ahead)).await;
    }
    let next = stored(&store, r, "next").await;
    raw.publish(r, &envelope(2, "older", &next)).await;
    // Seq 1 came only in versions this node does not read: the gap is filled from the store.
    rec.expect_seqs("the node", 2, LIMIT).await;
    let unknown = |v: &str| {
        counter("labchat_backplane_envelopes_unknown_version_total", &[("node", "unknown-v"), ("version", v)])
    };
    assert_eq!((unknown("4"), unknown("1"), unknown("other")), (Some(2.0), Some(1.0), Some(1.0)));
    assert_eq!(
        counter("labchat_backplane_rejected_total", &[("node", "unknown-v"), ("reason", "unknown_version")]),
        Some(4.0)
    );
    assert!(n.backplane().unwrap().connected);
    n.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_envelopes_reach_no_sink_and_sealed_ones_do_with_the_current_or_previous_secret() {
    metrics();
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let n = node(&redis, &store, "forged", |s| {
        s.envelope_version = EnvelopeVersion::NEWEST;
        s.secrets = secrets(SECRET, Some(OLD_SECRET));
    });
    connected(&n).await;
    let r = room();
    let rec = Recorder::new(1);
    n.subscribe(r, rec.clone()).await.unwrap();
    let mut raw = Raw::connect(&redis).await;
    // A forger's next message (never stored) and a receipt, without a MAC and with a wrong one.
    let forged = {
        let m = with_text(message(r), "forged").with_seq(labchat_domain::Seq::new(1).unwrap());
        RoomEvent::MessagePosted(m)
    };
    let receipt = read_receipt(r, &[message(r).id]);
    for event in [&forged, &receipt] {
        raw.publish(r, &envelope(3, "forger", event)).await;
        raw.publish(r, &seal(b"a-secret-the-forger-guessed!", &envelope(3, "forger", event))).await;
        let mut tampered = seal(SECRET, &envelope(3, "forger", &receipt));
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        raw.publish(r, &tampered).await;
    }
    let genuine = stored(&store, r, "genuine").await;
    raw.publish(r, &seal(SECRET, &envelope(3, "peer", &genuine))).await;
    let rotated = stored(&store, r, "sealed with the previous secret").await;
    raw.publish(r, &seal(OLD_SECRET, &envelope(3, "peer", &rotated))).await;
    rec.expect_seqs("the node", 2, LIMIT).await;
    assert_eq!(texts(&rec), ["genuine", "sealed with the previous secret"]);
    assert_eq!(rec.events().len(), 2, "no forged receipt: {:?}", rec.events());
    let rejected =
        |reason: &str| counter("labchat_backplane_rejected_total", &[("node", "forged"), ("reason", reason)]);
    assert_eq!((rejected("unsigned"), rejected("bad_mac")), (Some(2.0), Some(4.0)));
    n.shutdown();
}

/// `m` with another text.
fn with_text(m: labchat_domain::Message, text: &str) -> labchat_domain::Message {
    let record = labchat_domain::MessageRecord { text: Some(MessageText::parse(text, 100).unwrap()), ..m.to_record() };
    labchat_domain::Message::restore(record).unwrap()
}
