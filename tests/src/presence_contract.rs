//! The [`Presence`] contract as one suite of checks, run against every presence: the in-process
//! [`MemoryPresence`] and the [`RedisPresence`] on the test Redis server.
//!
//! Each check is an async function of a [`PresenceFixture`], one node's presence. A check panics
//! when the presence breaks a promise of the port's documentation, which the check's own
//! documentation quotes. Rooms are fresh ones of each check, so checks share the Redis server.
//! The Redis fixture's entries live 1 s unless their node refreshes them (every 250 ms), so a
//! check that takes longer also checks the refresh.
//!
//! [`for_each_presence_check!`](crate::for_each_presence_check) lists every check (see
//! `tests/tests/e2e/presence_contract.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use labchat_broadcast_redis::{PresenceSettings, RedisPresence, RedisSettings};
use labchat_core::{Member, MembersPage, Presence, TYPING_INTERVAL};
use labchat_domain::{RequestId, Role, User, UserId};
use labchat_memory::{LocalBroadcaster, MemoryPresence};

use crate::contract::uid;
use crate::harness::new_request_id;
use crate::redis::{fresh_node_id, test_redis_url};

/// How long the Redis fixture's entries live without a refresh.
const TTL: Duration = Duration::from_secs(1);

/// Every check of the contract, as a list of names for a callback macro: `$m! { a, b, ... }`.
#[macro_export]
macro_rules! for_each_presence_check {
    ($m:ident) => {
        $m! {
            entering_reports_the_first_entry_and_exiting_the_last,
            a_member_is_listed_once_with_the_role_entered,
            rooms_are_separate,
            an_empty_room_has_no_members_and_a_count_of_zero,
            members_are_paged_in_byte_order_each_once_with_the_room_s_count,
            a_page_of_zero_gives_the_count_alone,
            paging_after_a_user_who_is_not_present_goes_on_in_byte_order,
            users_present_throughout_are_listed_once_while_others_come_and_go,
            concurrent_entries_of_different_users_are_all_counted,
            entries_live_as_long_as_their_node,
            typing_passes_once_per_interval_per_user_and_room,
        }
    };
}

/// One node's presence under test.
pub struct PresenceFixture {
    presence: Arc<dyn Presence>,
}

impl std::fmt::Debug for PresenceFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceFixture").finish_non_exhaustive()
    }
}

impl PresenceFixture {
    /// A [`MemoryPresence`].
    pub fn memory() -> Self {
        Self { presence: Arc::new(MemoryPresence::new()) }
    }

    /// A [`RedisPresence`] on the test Redis server, its entries living [`TTL`] unless
    /// refreshed; what its sweeps announce goes to a broadcaster nobody listens to.
    ///
    /// # Panics
    ///
    /// When `LABCHAT_TEST_REDIS_URL` is not set.
    pub fn redis() -> Self {
        let redis =
            RedisSettings { url: test_redis_url(), node_id: fresh_node_id("contract"), ..RedisSettings::default() };
        let settings = PresenceSettings { ttl: TTL, refresh: TTL / 4 };
        let presence = RedisPresence::start(&redis, settings, Arc::new(LocalBroadcaster::new()))
            .unwrap_or_else(|e| panic!("start the redis presence: {e}"));
        Self { presence }
    }

    async fn enter(&self, room: RequestId, user: &str, role: Role) -> bool {
        let user = User::new(uid(user), role);
        self.presence.enter(room, &user).await.unwrap_or_else(|e| panic!("enter {user:?}: {e}"))
    }

    async fn exit(&self, room: RequestId, user: &str) -> bool {
        self.presence.exit(room, &uid(user)).await.unwrap_or_else(|e| panic!("exit {user}: {e}"))
    }

    async fn page(&self, room: RequestId, after: Option<&str>, limit: usize) -> MembersPage {
        let after = after.map(uid);
        self.presence
            .members(room, after.clone(), limit)
            .await
            .unwrap_or_else(|e| panic!("members after {after:?} limit {limit}: {e}"))
    }

    /// Every page of `limit` in turn, each checked against the port's promises; the members.
    async fn all_pages(&self, room: RequestId, limit: usize) -> Vec<Member> {
        let mut all: Vec<Member> = Vec::new();
        let mut after: Option<UserId> = None;
        loop {
            let page = self.page(room, after.as_ref().map(UserId::as_str), limit).await;
            assert!(page.members.len() <= limit, "at most {limit}: {page:?}");
            all.extend(page.members.iter().cloned());
            match page.next() {
                Some(next) => after = Some(next.clone()),
                None => return all,
            }
        }
    }

    async fn may_type(&self, room: RequestId, user: &str) -> bool {
        self.presence.may_type(room, &uid(user)).await.unwrap_or_else(|e| panic!("may_type {user}: {e}"))
    }
}

fn ids(members: &[Member]) -> Vec<String> {
    members.iter().map(|m| m.user_id.to_string()).collect()
}

/// User ids that sort differently by bytes than by letters or by length.
const USERS: [&str; 9] = ["b", "B", "a|b", "a", "é", "c", "a-1", "zz", "Ω"];

fn in_byte_order(users: &[&str]) -> Vec<String> {
    let sorted: BTreeSet<String> = users.iter().map(|u| (*u).to_owned()).collect();
    sorted.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// `enter` "returns `true` when the user had none anywhere before ... Entering twice is the same
/// as once (the second returns `false`)"; `exit` "returns `true` when the user has none anywhere
/// now ...; exiting a room not entered returns `false`".
pub async fn entering_reports_the_first_entry_and_exiting_the_last(f: &PresenceFixture) {
    let room = new_request_id();
    assert!(f.enter(room, "lab-1", Role::Lab).await, "the first entry");
    assert!(!f.enter(room, "lab-1", Role::Lab).await, "entering twice is once");
    assert!(!f.exit(room, "lab-2").await, "another user, not entered");
    assert_eq!(ids(&f.page(room, None, 10).await.members), ["lab-1"], "the other user's exit removed nobody");
    assert!(f.exit(room, "lab-1").await, "the last exit");
    assert!(!f.exit(room, "lab-1").await, "exiting again");
    assert!(f.enter(room, "lab-1", Role::Lab).await, "entering after the exit is a first entry again");
}

/// A page lists "the users present", "each once", with their role.
pub async fn a_member_is_listed_once_with_the_role_entered(f: &PresenceFixture) {
    let room = new_request_id();
    f.enter(room, "teacher-1", Role::Teacher).await;
    f.enter(room, "lab-1", Role::Lab).await;
    f.enter(room, "lab-1", Role::Lab).await;
    let page = f.page(room, None, 10).await;
    let want = vec![
        Member { user_id: uid("lab-1"), role: Role::Lab },
        Member { user_id: uid("teacher-1"), role: Role::Teacher },
    ];
    assert_eq!(page, MembersPage { members: want, count: 2, has_more: false });
}

/// Presence is per room: entering one room neither lists the user in another nor counts as
/// their entry there.
pub async fn rooms_are_separate(f: &PresenceFixture) {
    let (room, other) = (new_request_id(), new_request_id());
    assert!(f.enter(room, "lab-1", Role::Lab).await);
    assert_eq!(f.page(other, None, 10).await, MembersPage::default(), "the other room");
    assert!(!f.exit(other, "lab-1").await, "exiting the room not entered");
    assert_eq!(f.page(room, None, 10).await.count, 1, "still in the room entered");
    assert!(f.enter(other, "lab-1", Role::Lab).await, "the first entry into the other room");
    assert!(f.exit(room, "lab-1").await, "the last exit of the first room");
    assert_eq!(ids(&f.page(other, None, 10).await.members), ["lab-1"]);
}

/// A room nobody entered, or everyone left, has an empty page and a count of 0.
pub async fn an_empty_room_has_no_members_and_a_count_of_zero(f: &PresenceFixture) {
    let room = new_request_id();
    for limit in [0, 1, 100] {
        assert_eq!(f.page(room, None, limit).await, MembersPage::default(), "never entered, limit {limit}");
    }
    f.enter(room, "lab-1", Role::Lab).await;
    f.exit(room, "lab-1").await;
    for limit in [0, 1, 100] {
        assert_eq!(f.page(room, None, limit).await, MembersPage::default(), "everyone left, limit {limit}");
    }
}

/// "Those whose user id comes after `after` in byte order ..., sorted that way, each once, at
/// most `limit` ..., with how many users are present in all and whether more follow the page.
/// Paging with `after` set to the last member of the previous page lists every user present
/// throughout exactly once."
pub async fn members_are_paged_in_byte_order_each_once_with_the_room_s_count(f: &PresenceFixture) {
    let room = new_request_id();
    for user in USERS {
        f.enter(room, user, Role::Lab).await;
    }
    let want = in_byte_order(&USERS);
    for limit in [1, 2, 4, USERS.len() - 1, USERS.len(), 100] {
        assert_eq!(ids(&f.all_pages(room, limit).await), want, "pages of {limit}");
    }
    let first = f.page(room, None, 4).await;
    assert_eq!((ids(&first.members), first.count, first.has_more), (want[..4].to_vec(), USERS.len(), true));
    let last = f.page(room, Some(&want[USERS.len() - 2]), 4).await;
    assert_eq!((ids(&last.members), last.count, last.has_more), (want[USERS.len() - 1..].to_vec(), USERS.len(), false));
    let whole = f.page(room, None, USERS.len()).await;
    assert!(!whole.has_more, "a page holding every member has no more after it");
}

/// "At most `limit` (zero: none, the count alone)", and still whether members follow.
pub async fn a_page_of_zero_gives_the_count_alone(f: &PresenceFixture) {
    let room = new_request_id();
    for user in ["lab-1", "lab-2", "lab-3"] {
        f.enter(room, user, Role::Lab).await;
    }
    let page = f.page(room, None, 0).await;
    assert_eq!(page, MembersPage { members: vec![], count: 3, has_more: true }, "from the start");
    let page = f.page(room, Some("lab-2"), 0).await;
    assert_eq!(page, MembersPage { members: vec![], count: 3, has_more: true }, "after lab-2: lab-3 follows");
    let page = f.page(room, Some("lab-3"), 0).await;
    assert_eq!(page, MembersPage { members: vec![], count: 3, has_more: false }, "after the last member");
}

/// `after` need not be present: the page starts after it in byte order all the same (a client
/// pages on after a member who left meanwhile).
pub async fn paging_after_a_user_who_is_not_present_goes_on_in_byte_order(f: &PresenceFixture) {
    let room = new_request_id();
    for user in ["lab-1", "lab-3", "lab-5"] {
        f.enter(room, user, Role::Lab).await;
    }
    assert_eq!(ids(&f.page(room, Some("lab-2"), 10).await.members), ["lab-3", "lab-5"], "never entered");
    f.exit(room, "lab-3").await;
    let page = f.page(room, Some("lab-3"), 10).await;
    assert_eq!((ids(&page.members), page.count), (vec!["lab-5".to_owned()], 2), "left meanwhile");
    assert_eq!(f.page(room, Some("lab-9"), 10).await, MembersPage { members: vec![], count: 2, has_more: false });
}

/// "Paging ... lists every user present throughout exactly once; a user who joins or leaves
/// meanwhile may or may not be listed."
pub async fn users_present_throughout_are_listed_once_while_others_come_and_go(f: &PresenceFixture) {
    let room = new_request_id();
    let stay: Vec<String> = (0..12).map(|i| format!("stay-{i:02}")).collect();
    for user in &stay {
        f.enter(room, user, Role::Lab).await;
    }
    for user in ["go-a", "go-m", "go-z"] {
        f.enter(room, user, Role::Teacher).await;
    }
    let mut listed: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    for turn in 0.. {
        let page = f.page(room, after.as_deref(), 3).await;
        listed.extend(ids(&page.members));
        // Between pages: someone leaves, someone new arrives (before and after the cursor).
        f.exit(room, ["go-a", "go-m", "go-z"][turn % 3]).await;
        f.enter(room, &format!("new-{turn}"), Role::Lab).await;
        f.enter(room, &format!("u-new-{turn}"), Role::Lab).await;
        match page.next() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        assert!(turn < 50, "paging does not end");
    }
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "nobody listed twice: {listed:?}");
    for user in &stay {
        assert!(listed.contains(user), "{user}, present throughout, is listed: {listed:?}");
    }
}

/// Concurrent first entries of different users are each reported as first, and all counted.
pub async fn concurrent_entries_of_different_users_are_all_counted(f: &PresenceFixture) {
    let room = new_request_id();
    let users: Vec<String> = (0..40).map(|i| format!("lab-{i:02}")).collect();
    let firsts = join_all(users.iter().map(|u| f.enter(room, u, Role::Lab))).await;
    assert!(firsts.iter().all(|first| *first), "each one's first entry: {firsts:?}");
    let page = f.page(room, None, 100).await;
    assert_eq!((page.count, ids(&page.members)), (users.len(), users.clone()));
    let lasts = join_all(users.iter().map(|u| f.exit(room, u))).await;
    assert!(lasts.iter().all(|last| *last), "each one's last exit: {lasts:?}");
    assert_eq!(f.page(room, None, 100).await, MembersPage::default());
}

/// Entries "with a time to live that their node refreshes": a user stays present, and counted,
/// for as long as their node lives, however long after their entry.
pub async fn entries_live_as_long_as_their_node(f: &PresenceFixture) {
    let room = new_request_id();
    f.enter(room, "lab-1", Role::Lab).await;
    tokio::time::sleep(TTL * 3).await;
    let page = f.page(room, None, 10).await;
    assert_eq!((ids(&page.members), page.count), (vec!["lab-1".to_owned()], 1), "three TTLs later");
    assert!(!f.enter(room, "lab-1", Role::Lab).await, "still entered");
    assert!(f.exit(room, "lab-1").await, "and their exit is the last");
}

/// "`true` at most once per [`TYPING_INTERVAL`] per user and room ... (the call that returns
/// `true` starts the interval)".
pub async fn typing_passes_once_per_interval_per_user_and_room(f: &PresenceFixture) {
    let (room, other) = (new_request_id(), new_request_id());
    assert!(f.may_type(room, "lab-1").await, "the first typing");
    assert!(!f.may_type(room, "lab-1").await, "within the interval");
    assert!(f.may_type(room, "lab-2").await, "another user");
    assert!(f.may_type(other, "lab-1").await, "another room");
    tokio::time::sleep(TYPING_INTERVAL + Duration::from_millis(100)).await;
    assert!(f.may_type(room, "lab-1").await, "after the interval");
    assert!(!f.may_type(room, "lab-1").await, "a new interval started");
}
