//! The Redis presence against a real redis-server: several nodes (several `RedisPresence` on one
//! Redis), the typing throttle across them, the entries of a node that stops refreshing swept
//! and announced once, and a Redis restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::{PresenceSettings, RedisPresence};
use labchat_core::{Broadcaster, Member, Presence};
use labchat_domain::{RequestId, Role, RoomEvent, User, UserId};
use labchat_memory::LocalBroadcaster;
use support::{Recorder, Redis, room, settings, wait_for};

/// Short enough for a test; a dead node is announced within `ttl + refresh`.
const FAST: PresenceSettings =
    PresenceSettings { ttl: Duration::from_millis(1200), refresh: Duration::from_millis(300) };

/// A node's presence, publishing through a local broadcaster whose recorder listens to `room`.
async fn node(redis: &Redis, id: &str, room: RequestId, tune: PresenceSettings) -> (Arc<RedisPresence>, Arc<Recorder>) {
    let broadcaster = Arc::new(LocalBroadcaster::new());
    let recorder = Recorder::new(1);
    broadcaster.subscribe(room, recorder.clone()).await.unwrap();
    (RedisPresence::start(&settings(redis, id), tune, broadcaster).unwrap(), recorder)
}

fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}

fn left(recorder: &Recorder, who: &str) -> usize {
    recorder
        .events()
        .iter()
        .filter(|e| matches!(e, RoomEvent::MemberLeft { user_id, .. } if user_id.as_str() == who))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_entry_and_the_last_exit_over_all_nodes_are_reported() {
    let Some(redis) = Redis::start().await else { return };
    let room = room();
    let (a, _) = node(&redis, "a", room, PresenceSettings::default()).await;
    let (b, _) = node(&redis, "b", room, PresenceSettings::default()).await;
    let lab = user("lab|1", Role::Lab);
    assert!(a.enter(room, &lab).await.unwrap(), "first anywhere");
    assert!(!a.enter(room, &lab).await.unwrap(), "entering twice is once");
    assert!(!b.enter(room, &lab).await.unwrap(), "present on a already");
    assert!(b.enter(room, &user("t1", Role::Teacher)).await.unwrap());
    let page = a.members(room, None, 100).await.unwrap();
    assert_eq!((page.count, page.has_more), (2, false));
    assert_eq!(
        page.members,
        [
            Member { user_id: UserId::parse("lab|1").unwrap(), role: Role::Lab },
            Member { user_id: UserId::parse("t1").unwrap(), role: Role::Teacher },
        ],
        "each user once"
    );
    assert!(!a.exit(room, lab.id()).await.unwrap(), "still on b");
    assert!(b.exit(room, lab.id()).await.unwrap(), "gone everywhere");
    assert!(!b.exit(room, lab.id()).await.unwrap(), "exiting a room not entered");
    assert_eq!(b.members(room, None, 100).await.unwrap().count, 1);
    assert!(a.members(support::room(), None, 100).await.unwrap().members.is_empty(), "another room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_throttled_per_user_and_room_across_nodes() {
    let Some(redis) = Redis::start().await else { return };
    let (room, other_room) = (room(), room());
    let (a, _) = node(&redis, "a", room, PresenceSettings::default()).await;
    let (b, _) = node(&redis, "b", room, PresenceSettings::default()).await;
    let (t1, t2) = (UserId::parse("t1").unwrap(), UserId::parse("t2").unwrap());
    let started = tokio::time::Instant::now();
    assert!(a.may_type(room, &t1).await.unwrap());
    assert!(!b.may_type(room, &t1).await.unwrap(), "the same user on another node");
    assert!(!a.may_type(room, &t1).await.unwrap());
    assert!(b.may_type(room, &t2).await.unwrap(), "another user");
    assert!(b.may_type(other_room, &t1).await.unwrap(), "another room");
    assert!(started.elapsed() < Duration::from_secs(2), "too slow a machine for this test");
    tokio::time::sleep_until(started + Duration::from_millis(2100)).await;
    assert!(b.may_type(room, &t1).await.unwrap(), "after the interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_refreshing_has_its_members_announced_gone_once() {
    let Some(redis) = Redis::start().await else { return };
    let room = room();
    let (dead, _) = node(&redis, "dead", room, FAST).await;
    let (b, on_b) = node(&redis, "b", room, FAST).await;
    let (c, on_c) = node(&redis, "c", room, FAST).await;
    assert!(dead.enter(room, &user("gone", Role::Lab)).await.unwrap());
    assert!(dead.enter(room, &user("both", Role::Lab)).await.unwrap());
    assert!(!b.enter(room, &user("both", Role::Lab)).await.unwrap());
    assert!(b.enter(room, &user("t1", Role::Teacher)).await.unwrap());
    assert!(c.enter(room, &user("t2", Role::Teacher)).await.unwrap());
    // As a node killed with `kill -9`: no exit, no more refreshes.
    dead.shutdown();
    wait_for("memberLeft for the dead node's user", Duration::from_secs(10), || async {
        left(&on_b, "gone") + left(&on_c, "gone") >= 1
    })
    .await;
    // A few more sweeps: still exactly one announcement, by one node.
    tokio::time::sleep(FAST.refresh * 4).await;
    assert_eq!(left(&on_b, "gone") + left(&on_c, "gone"), 1, "b: {:?}\nc: {:?}", on_b.events(), on_c.events());
    assert_eq!(left(&on_b, "both") + left(&on_c, "both"), 0, "still present on b");
    let mut members: Vec<String> =
        c.members(room, None, 100).await.unwrap().members.into_iter().map(|m| m.user_id.to_string()).collect();
    members.sort();
    assert_eq!(members, ["both", "t1", "t2"], "the live nodes' entries are refreshed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_entry_swept_while_its_node_was_away_is_written_and_listed_again_once() {
    let Some(redis) = Redis::start().await else { return };
    let room = room();
    let (a, on_a) = node(&redis, "a", room, FAST).await;
    let (b, _) = node(&redis, "b", room, FAST).await;
    assert!(a.enter(room, &user("t1", Role::Teacher)).await.unwrap());
    assert!(a.enter(room, &user("lab", Role::Lab)).await.unwrap());
    // What another node's sweep does to an entry that expired while its node could not reach
    // Redis: the entry removed, and its user unlisted (no other live entry).
    let hex = room.to_hex();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::pipe()
        .cmd("ZREM")
        .arg(format!("labchat:presence:{hex}"))
        .arg("2:t1|TEACHER|a")
        .ignore()
        .cmd("ZREM")
        .arg(format!("labchat:presence-users:{hex}"))
        .arg("t1")
        .ignore()
        .cmd("HDEL")
        .arg(format!("labchat:presence-roles:{hex}"))
        .arg("t1")
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(b.members(room, None, 100).await.unwrap().count, 1, "the sweep as another node does it");
    // The node's next refresh finds its entry missing: written, listed and announced again.
    wait_for("t1 listed again", Duration::from_secs(10), || async {
        b.members(room, None, 100).await.is_ok_and(|p| p.count == 2)
    })
    .await;
    let page = b.members(room, None, 100).await.unwrap();
    let listed: Vec<(String, Role)> = page.members.iter().map(|m| (m.user_id.to_string(), m.role)).collect();
    assert_eq!(listed, [("lab".to_owned(), Role::Lab), ("t1".to_owned(), Role::Teacher)]);
    // A few more refreshes find both entries there: nobody is announced again.
    tokio::time::sleep(FAST.refresh * 4).await;
    let joined: Vec<String> = on_a
        .events()
        .iter()
        .filter_map(|e| if let RoomEvent::MemberJoined { user_id, .. } = e { Some(user_id.to_string()) } else { None })
        .collect();
    assert_eq!(joined, ["t1"], "only the entry written again is announced, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_the_calls_and_a_restart_gets_the_entries_written_again() {
    let Some(mut redis) = Redis::start().await else { return };
    let room = room();
    let (a, on_a) = node(&redis, "a", room, FAST).await;
    assert!(a.enter(room, &user("t1", Role::Teacher)).await.unwrap());
    redis.kill().await;
    assert!(a.enter(room, &user("lab", Role::Lab)).await.is_err());
    assert!(a.members(room, None, 100).await.is_err());
    assert!(a.may_type(room, &UserId::parse("t1").unwrap()).await.is_err());
    // Restarted empty (no persistence): the refresh writes both entries again and announces them
    // (the announcements follow the script's write: wait for both, not for the entries alone).
    redis.restart().await;
    let joined = || -> Vec<String> {
        on_a.events()
            .iter()
            .filter_map(
                |e| if let RoomEvent::MemberJoined { user_id, .. } = e { Some(user_id.to_string()) } else { None },
            )
            .collect()
    };
    wait_for("both entries written again and announced", Duration::from_secs(10), || async {
        let announced = joined();
        a.members(room, None, 100).await.is_ok_and(|m| m.count == 2)
            && announced.contains(&"t1".to_owned())
            && announced.contains(&"lab".to_owned())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_paged_in_user_id_order_over_every_node_and_swept_users_leave_the_pages() {
    let Some(redis) = Redis::start().await else { return };
    let room = room();
    let (a, _) = node(&redis, "a", room, FAST).await;
    let (b, _) = node(&redis, "b", room, FAST).await;
    let (dead, _) = node(&redis, "dead", room, FAST).await;
    let ids: Vec<String> = (0..25).map(|n| format!("u{n:02}")).collect();
    for (n, id) in ids.iter().enumerate() {
        let on = if n % 2 == 0 { &a } else { &b };
        on.enter(room, &user(id, Role::Lab)).await.unwrap();
    }
    // Present on two nodes: listed once.
    assert!(!a.enter(room, &user("u01", Role::Lab)).await.unwrap());
    assert!(dead.enter(room, &user("zz-dead", Role::Teacher)).await.unwrap());
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = b.members(room, after.clone(), 10).await.unwrap();
        assert_eq!(page.count, 26);
        assert!(page.members.len() <= 10);
        seen.extend(page.members.iter().map(|m| m.user_id.to_string()));
        match page.next() {
            Some(next) => after = Some(next.clone()),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.push("zz-dead".to_owned());
    assert_eq!(seen, expected, "every member once, in byte order");
    let count_only = a.members(room, None, 0).await.unwrap();
    assert_eq!((count_only.members.len(), count_only.count, count_only.has_more), (0, 26, true));
    // A dead node's member is swept by a live node's (batched) refresh: gone from the pages.
    dead.shutdown();
    wait_for("the dead node's member swept", Duration::from_secs(10), || async {
        a.members(room, None, 100).await.is_ok_and(|p| p.count == 25)
    })
    .await;
    assert!(a.exit(room, &UserId::parse("u00").unwrap()).await.unwrap());
    let page = b.members(room, None, 100).await.unwrap();
    assert_eq!(page.count, 24);
    assert!(!page.members.iter().any(|m| m.user_id.as_str() == "u00" || m.user_id.as_str() == "zz-dead"));
}
