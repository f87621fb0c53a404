//! Presence and typing in the use cases, with the ports' mockall mocks.

use std::sync::{Arc, Mutex};

use labchat_domain::{HistoryLimit, HistoryPage, Request, RequestId, Role, RoomEvent, Timestamp, User, UserId};

use crate::{
    Chat, Member, MembersPage, MockBroadcaster, MockChatStore, MockClock, MockPresence, MockRoomSink, PresenceError,
    RoomSink, SinkId,
};

fn rid(n: u32) -> RequestId {
    RequestId::parse(&format!("{n:024x}")).unwrap()
}
fn user(id: &str, role: Role) -> User {
    User::new(UserId::parse(id).unwrap(), role)
}
fn sink(id: u64) -> Arc<dyn RoomSink> {
    let mut s = MockRoomSink::new();
    s.expect_id().return_const(SinkId(id));
    Arc::new(s)
}

/// A store whose only request is `rid(1)`, created by `t1`, with an empty history.
fn store() -> MockChatStore {
    let mut s = MockChatStore::new();
    s.expect_find_request()
        .returning(|id| Ok((id == rid(1)).then(|| Request::new(rid(1), UserId::parse("t1").unwrap()))));
    s.expect_history().returning(|_, _| Ok(Some(HistoryPage::default())));
    s.expect_unread_count().returning(|_, _| Ok(0));
    s
}

/// A broadcaster that accepts every subscription and records what is published.
fn recording() -> (MockBroadcaster, Arc<Mutex<Vec<RoomEvent>>>) {
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut b = MockBroadcaster::new();
    b.expect_subscribe().returning(|_, _| Ok(()));
    b.expect_unsubscribe().returning(|_, _| Ok(()));
    b.expect_backplane().return_const(None);
    let p = Arc::clone(&published);
    b.expect_publish().returning(move |e| {
        p.lock().unwrap().push(e);
        Ok(())
    });
    (b, published)
}

fn chat(b: MockBroadcaster, presence: Option<MockPresence>) -> Chat {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(Timestamp::from_unix_millis(1));
    let chat = Chat::new(Arc::new(store()), Arc::new(b), Arc::new(clock), HistoryLimit::DEFAULT);
    match presence {
        Some(p) => chat.with_presence(Arc::new(p)),
        None => chat,
    }
}

fn names(events: &Mutex<Vec<RoomEvent>>) -> Vec<&'static str> {
    events.lock().unwrap().iter().map(|e| e.kind().as_str()).collect()
}

#[tokio::test]
async fn the_port_is_entered_on_the_first_tab_and_exited_after_the_last() {
    let lab = user("lab", Role::Lab);
    let mut p = MockPresence::new();
    p.expect_enter().withf(|r, u| *r == rid(1) && u.id().as_str() == "lab").times(1).returning(|_, _| Ok(true));
    p.expect_members()
        .withf(|r, after, limit| *r == rid(1) && after.is_none() && *limit == crate::MEMBERS_PAGE)
        .returning(|_, _, _| {
            let members = vec![Member { user_id: UserId::parse("lab").unwrap(), role: Role::Lab }];
            Ok(MembersPage { members, count: 1, has_more: false })
        });
    p.expect_exit().withf(|r, u| *r == rid(1) && u.as_str() == "lab").times(1).returning(|_, _| Ok(true));
    let (b, published) = recording();
    let chat = chat(b, Some(p));
    let joined = chat.join(&lab, rid(1), None, sink(1), false).await.unwrap();
    assert_eq!(joined.members.members, vec![Member { user_id: lab.id().clone(), role: Role::Lab }]);
    assert_eq!(joined.members.count, 1);
    drop(joined);
    drop(chat.join(&lab, rid(1), None, sink(2), false).await.unwrap());
    // A rejoin of the same connection counts nothing.
    drop(chat.join(&lab, rid(1), None, sink(2), true).await.unwrap());
    assert_eq!(names(&published), ["memberJoined"], "one memberJoined for two tabs");
    chat.leave(&lab, rid(1), SinkId(1)).await.unwrap();
    assert_eq!(names(&published), ["memberJoined"], "a tab is left: the user is still here");
    chat.disconnect(&lab, SinkId(2), [rid(1)]).await;
    let events = published.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            RoomEvent::MemberJoined { request_id: rid(1), user_id: lab.id().clone(), role: Role::Lab },
            RoomEvent::MemberLeft { request_id: rid(1), user_id: lab.id().clone() },
        ]
    );
}

#[tokio::test]
async fn a_user_present_on_another_node_is_not_announced_again() {
    let mut p = MockPresence::new();
    p.expect_enter().times(1).returning(|_, _| Ok(false));
    p.expect_members().returning(|_, _, _| Ok(MembersPage { members: Vec::new(), count: 7, has_more: true }));
    p.expect_exit().times(1).returning(|_, _| Ok(false));
    let (b, published) = recording();
    let chat = chat(b, Some(p));
    let lab = user("lab", Role::Lab);
    let joined = chat.join(&lab, rid(1), None, sink(1), false).await.unwrap();
    assert_eq!((joined.members.count, joined.members.has_more), (7, true), "the port's page: {:?}", joined.members);
    drop(joined);
    chat.leave(&lab, rid(1), SinkId(1)).await.unwrap();
    assert!(names(&published).is_empty(), "{:?}", names(&published));
}

#[tokio::test]
async fn a_failing_port_fails_no_join_and_no_leave_and_the_node_answers_from_its_own_view() {
    let mut p = MockPresence::new();
    p.expect_enter().returning(|_, _| Err(PresenceError("redis down".into())));
    p.expect_members().returning(|_, _, _| Err(PresenceError("redis down".into())));
    p.expect_exit().returning(|_, _| Err(PresenceError("redis down".into())));
    p.expect_may_type().returning(|_, _| Err(PresenceError("redis down".into())));
    let (b, published) = recording();
    let chat = chat(b, Some(p));
    let (lab, t1) = (user("lab", Role::Lab), user("t1", Role::Teacher));
    drop(chat.join(&lab, rid(1), None, sink(1), false).await.unwrap());
    let joined = chat.join(&t1, rid(1), None, sink(2), false).await.unwrap();
    let mut members: Vec<_> =
        joined.members.members.iter().map(|m| (m.user_id.as_str().to_owned(), m.role.as_str())).collect();
    members.sort();
    assert_eq!(members, [("lab".to_owned(), "LAB"), ("t1".to_owned(), "TEACHER")]);
    drop(joined);
    assert!(chat.typing(&t1, rid(1)).await.unwrap());
    chat.leave(&lab, rid(1), SinkId(1)).await.unwrap();
    assert_eq!(names(&published), ["memberJoined", "memberJoined", "typing", "memberLeft"]);
}

#[tokio::test]
async fn typing_is_authorized_then_throttled_by_the_port() {
    let mut p = MockPresence::new();
    let mut answers = vec![false, true].into_iter().rev();
    p.expect_may_type()
        .withf(|r, u| *r == rid(1) && u.as_str() == "t1")
        .times(2)
        .returning(move |_, _| Ok(answers.next().unwrap_or(false)));
    let (b, published) = recording();
    let chat = chat(b, Some(p));
    let t1 = user("t1", Role::Teacher);
    assert!(chat.typing(&t1, rid(1)).await.unwrap(), "the first typing is broadcast");
    assert!(!chat.typing(&t1, rid(1)).await.unwrap(), "a throttled one is not");
    for (who, room) in [(user("t2", Role::Teacher), rid(1)), (user("lab", Role::Lab), rid(2))] {
        let err = chat.typing(&who, room).await.unwrap_err();
        assert!(matches!(err, crate::ChatError::Forbidden), "{who:?}: {err:?}");
    }
    let events = published.lock().unwrap().clone();
    assert_eq!(events, [RoomEvent::Typing { request_id: rid(1), user_id: t1.id().clone(), role: Role::Teacher }]);
}

#[tokio::test]
async fn past_the_burst_bound_changes_are_coalesced_into_one_members_changed_per_interval() {
    let mut p = MockPresence::new();
    p.expect_enter().returning(|_, _| Ok(true));
    p.expect_exit().returning(|_, _| Ok(true));
    p.expect_members().returning(|_, _, _| Ok(MembersPage { members: Vec::new(), count: 42, has_more: true }));
    let (b, published) = recording();
    let interval = std::time::Duration::from_millis(50);
    let chat = chat(b, Some(p)).with_presence_burst(crate::PresenceBurst { limit: 3, interval });
    let users: Vec<User> = (0..10).map(|n| user(&format!("lab-{n}"), Role::Lab)).collect();
    for (n, u) in users.iter().enumerate() {
        drop(chat.join(u, rid(1), None, sink(n as u64), false).await.unwrap());
    }
    // The first one leaves again within the storm: announced as gone, not as joined.
    chat.leave(&users[3], rid(1), SinkId(3)).await.unwrap();
    assert_eq!(names(&published), ["memberJoined"; 3], "three one by one, the rest wait");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while names(&published).len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "no membersChanged: {:?}", names(&published));
        tokio::time::sleep(interval / 5).await;
    }
    let changed = published.lock().unwrap()[3].clone();
    let RoomEvent::MembersChanged { request_id, joined, left, members_count } = changed else { panic!("{changed:?}") };
    assert_eq!((request_id, members_count), (rid(1), 42));
    let joined: Vec<&str> = joined.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(joined, ["lab-4", "lab-5", "lab-6", "lab-7", "lab-8", "lab-9"]);
    assert_eq!(left, [UserId::parse("lab-3").unwrap()]);
    // Two quiet intervals end the storm: the next change is announced by itself.
    tokio::time::sleep(interval * 3).await;
    assert_eq!(names(&published).len(), 4, "nothing more to flush");
    chat.leave(&users[0], rid(1), SinkId(0)).await.unwrap();
    assert_eq!(names(&published)[4], "memberLeft");
}

#[tokio::test]
async fn members_are_paged_for_users_allowed_in_the_room_only() {
    let mut p = MockPresence::new();
    p.expect_members()
        .withf(|r, after, limit| {
            *r == rid(1) && after.as_ref().is_some_and(|a| a.as_str() == "m") && *limit == crate::MEMBERS_PAGE
        })
        .times(1)
        .returning(|_, _, _| {
            let members = vec![Member { user_id: UserId::parse("z").unwrap(), role: Role::Lab }];
            Ok(MembersPage { members, count: 101, has_more: false })
        });
    let (b, _) = recording();
    let chat = chat(b, Some(p));
    let after = UserId::parse("m").unwrap();
    let page = chat.members(&user("lab", Role::Lab), rid(1), Some(&after)).await.unwrap();
    assert_eq!((page.members.len(), page.count), (1, 101));
    for (who, room) in [(user("t2", Role::Teacher), rid(1)), (user("lab", Role::Lab), rid(2))] {
        let err = chat.members(&who, room, None).await.unwrap_err();
        assert!(matches!(err, crate::ChatError::Forbidden), "{who:?}: {err:?}");
    }
}

#[test]
fn a_user_s_tabs_in_a_room_are_counted_from_the_first_to_the_last() {
    let local = super::LocalPresence::default();
    let lab = user("lab", Role::Lab);
    assert!(local.add(rid(1), &lab, SinkId(1)), "the first tab");
    assert!(!local.add(rid(1), &lab, SinkId(2)), "a second tab");
    assert!(!local.add(rid(1), &lab, SinkId(1)), "the same tab again");
    assert!(!local.add(rid(1), &lab, SinkId(3)));
    assert!(!local.remove(rid(1), lab.id(), SinkId(9)), "a tab never added");
    assert!(!local.remove(rid(1), lab.id(), SinkId(1)));
    assert!(!local.remove(rid(1), lab.id(), SinkId(3)));
    assert_eq!(local.members(rid(1), None, 10).count, 1);
    assert!(local.remove(rid(1), lab.id(), SinkId(2)), "the last tab");
    assert!(!local.remove(rid(1), lab.id(), SinkId(2)));
    assert_eq!(local.members(rid(1), None, 10), MembersPage::default());
}
