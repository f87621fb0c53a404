//! Inbox notices routed by audience, on a real redis-server: a node writing version 3 publishes a
//! room's notice once, on its creator's channel, which a node subscribes while that teacher has
//! an inbox open on it (and every teacher's channel, by a pattern, while a LAB user has), so a
//! node hears it only while it has an inbox subscriber who may see the room; a node writing version 2
//! still publishes on `labchat:inbox`, which every node hears (the rolling upgrade).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use labchat_broadcast_redis::{BackplaneSecrets, EnvelopeVersion, RedisBroadcaster, RedisSettings};
use labchat_core::{Broadcaster, ChatStore, InboxListener, InboxNotice, Inserted};
use labchat_domain::{Request, RequestId, Role, RoomEvent, User, UserId};
use labchat_memory::MemoryStore;
use support::{Redis, message, room, settings, wait_for};

const LIMIT: Duration = Duration::from_secs(10);

/// Records the rooms of the inbox notices it gets.
#[derive(Default)]
struct Notices(Mutex<Vec<RequestId>>);

impl InboxListener for Notices {
    fn notice(&self, notice: InboxNotice) {
        self.0.lock().unwrap().push(notice.request_id());
    }
}

impl Notices {
    fn rooms(&self) -> Vec<RequestId> {
        self.0.lock().unwrap().clone()
    }

    async fn expect(&self, who: &str, room: RequestId) {
        wait_for(&format!("{who} hears the notice"), LIMIT, || async { self.rooms().contains(&room) }).await;
    }
}

struct Node {
    node: Arc<RedisBroadcaster>,
    notices: Arc<Notices>,
}

async fn node(redis: &Redis, store: &Arc<MemoryStore>, id: &str, version: EnvelopeVersion) -> Node {
    let s = RedisSettings {
        check_interval: Duration::from_secs(60),
        envelope_version: version,
        secrets: BackplaneSecrets { current: Some(b"the-backplane-secret-of-the-test".to_vec()), previous: None },
        ..settings(redis, id)
    };
    let node = RedisBroadcaster::start(s, store.clone() as Arc<dyn ChatStore>).unwrap();
    let notices = Arc::new(Notices::default());
    node.listen_inbox(notices.clone());
    wait_for("the backplane connected", LIMIT, || async { node.backplane().unwrap().connected }).await;
    Node { node, notices }
}

fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}

/// A room created by `teacher`, known to the store.
fn request(store: &MemoryStore, teacher: &str) -> RequestId {
    let id = room();
    store.add_request(Request::new(id, UserId::parse(teacher).unwrap()));
    id
}

async fn post(store: &MemoryStore, node: &RedisBroadcaster, room: RequestId) {
    let mut m = message(room);
    let Inserted::New(seq) = store.insert_message(&m).await.unwrap() else { panic!("a duplicate") };
    m.seq = Some(seq);
    node.publish(RoomEvent::MessagePosted(m)).await.unwrap();
}

/// How many clients subscribe `channel` (`None`: how many patterns are subscribed).
async fn numsub(redis: &Redis, channel: Option<&str>) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    match channel {
        Some(channel) => {
            let (_, n): (String, i64) =
                redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut c).await.unwrap();
            n
        }
        None => redis::cmd("PUBSUB").arg("NUMPAT").query_async(&mut c).await.unwrap(),
    }
}

async fn wait_numsub(redis: &Redis, channel: Option<&str>, want: i64) {
    wait_for(&format!("{want} subscribers of {channel:?}"), LIMIT, || async { numsub(redis, channel).await == want })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_hears_the_notices_of_the_rooms_its_inbox_subscribers_may_see_only() {
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let publisher = node(&redis, &store, "audience-pub", EnvelopeVersion::NEWEST).await;
    let lab = node(&redis, &store, "audience-lab", EnvelopeVersion::NEWEST).await;
    let t1 = node(&redis, &store, "audience-t1", EnvelopeVersion::NEWEST).await;
    let t2 = node(&redis, &store, "audience-t2", EnvelopeVersion::NEWEST).await;
    lab.node.inbox_interest(&user("lab-1", Role::Lab), true).await;
    lab.node.inbox_interest(&user("lab-2", Role::Lab), true).await;
    t1.node.inbox_interest(&user("t1", Role::Teacher), true).await;
    t2.node.inbox_interest(&user("t2", Role::Teacher), true).await;
    // Subscribed by the time `inbox_interest` returns.
    assert_eq!(numsub(&redis, None).await, 1, "the LAB users' node holds the pattern");
    assert_eq!(numsub(&redis, Some("labchat:inbox:teacher:t1")).await, 1);
    assert_eq!(numsub(&redis, Some("labchat:inbox:teacher:t2")).await, 1);

    let (of_t1, of_t2) = (request(&store, "t1"), request(&store, "t2"));
    post(&store, &publisher.node, of_t1).await;
    post(&store, &publisher.node, of_t2).await;
    lab.notices.expect("the node of LAB users, t1's room", of_t1).await;
    lab.notices.expect("the node of LAB users, t2's room", of_t2).await;
    t1.notices.expect("t1's node", of_t1).await;
    t2.notices.expect("t2's node", of_t2).await;
    // One publisher connection: t2's node got t1's notice before t2's, if at all.
    assert_eq!(t2.notices.rooms(), [of_t2], "t2's node never hears t1's room");
    assert!(!t1.notices.rooms().contains(&of_t2), "t1's node never hears t2's room");
    assert_eq!(lab.notices.rooms(), [of_t1, of_t2], "one notice per post for the LAB users' node");
    assert_eq!(publisher.notices.rooms(), [of_t1, of_t2], "its own, handed over directly");

    // The pattern stays while one LAB user is left, and goes with the last.
    lab.node.inbox_interest(&user("lab-1", Role::Lab), false).await;
    t2.node.inbox_interest(&user("t2", Role::Teacher), false).await;
    wait_numsub(&redis, Some("labchat:inbox:teacher:t2"), 0).await;
    assert_eq!(numsub(&redis, None).await, 1);
    lab.node.inbox_interest(&user("lab-2", Role::Lab), false).await;
    wait_numsub(&redis, None, 0).await;
    for n in [&publisher, &lab, &t1, &t2] {
        n.node.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_writing_version_2_publishes_notices_on_the_shared_channel_that_every_node_hears() {
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let old = node(&redis, &store, "audience-v2", EnvelopeVersion::OLDEST).await;
    let new = node(&redis, &store, "audience-v3", EnvelopeVersion::NEWEST).await;
    let r = request(&store, "t1");
    post(&store, &old.node, r).await;
    new.notices.expect("a version 3 node with no inbox subscriber", r).await;
    // A room the store does not know (no audience to look up) goes to the shared channel too.
    let unknown = room();
    post(&store, &new.node, unknown).await;
    old.notices.expect("the version 2 node, for a room without a request", unknown).await;
    old.node.shutdown();
    new.node.shutdown();
}

/// A notice no event carries (a recount's, `Broadcaster::notify_inbox`) goes where a posted
/// message's goes: to the node's own listener, and to the other nodes whose inbox subscribers
/// may see the room, whichever version the sending node writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_without_an_event_reaches_the_nodes_that_may_see_its_room() {
    let Some(redis) = Redis::start().await else { return };
    let store = Arc::new(MemoryStore::new());
    let v2 = node(&redis, &store, "notify-v2", EnvelopeVersion::OLDEST).await;
    let v3 = node(&redis, &store, "notify-v3", EnvelopeVersion::NEWEST).await;
    let t1 = node(&redis, &store, "notify-t1", EnvelopeVersion::NEWEST).await;
    let t2 = node(&redis, &store, "notify-t2", EnvelopeVersion::NEWEST).await;
    t1.node.inbox_interest(&user("t1", Role::Teacher), true).await;
    t2.node.inbox_interest(&user("t2", Role::Teacher), true).await;
    for sender in [&v3, &v2] {
        let r = request(&store, "t1");
        sender.node.notify_inbox(InboxNotice::Posted { request_id: r });
        sender.notices.expect("the sending node's own listener", r).await;
        t1.notices.expect("the node of the room's teacher", r).await;
        if std::ptr::eq(sender, &v2) {
            // Version 2 publishes on labchat:inbox, which every node hears.
            t2.notices.expect("every node, from a version 2 node", r).await;
        }
    }
    // From the version 3 node, another teacher's node never hears t1's room.
    assert_eq!(t2.notices.rooms().len(), 1, "t2's node heard only the version 2 notice: {:?}", t2.notices.rooms());
    for n in [&v2, &v3, &t1, &t2] {
        n.node.shutdown();
    }
}
