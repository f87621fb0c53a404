//! The checks of the inbox: unread counts follow posts and reads (own posts never unread), pages
//! follow the inbox order with the cursor, and only the rooms a user may act on now are listed.

use labchat_core::ChatStore;
use labchat_domain::{
    InboxLimit, InboxPage, InboxQuery, InboxRow, Message, MessageId, ReceiptKind, RequestId, Role, Timestamp, User,
    UserId, select_page,
};

use super::{Creator, Gen, Model, StoreFixture, insert_new, rid, uid};

fn teacher(id: &str) -> User {
    User::new(uid(id), Role::Teacher)
}

fn lab(id: &str) -> User {
    User::new(uid(id), Role::Lab)
}

async fn page(
    store: &dyn ChatStore,
    viewer: &User,
    limit: usize,
    before: Option<labchat_domain::InboxCursor>,
) -> InboxPage {
    let limit = InboxLimit::new(limit as u64).unwrap_or_else(|e| panic!("{e}"));
    store.inbox(viewer, InboxQuery { limit, before }).await.unwrap_or_else(|e| panic!("inbox of {viewer:?}: {e:?}"))
}

/// Every room of `viewer`'s inbox, page after page of `limit` (at most 50 pages).
async fn all_pages(store: &dyn ChatStore, viewer: &User, limit: usize) -> Vec<Vec<InboxRow>> {
    let mut pages = Vec::new();
    let mut before = None;
    for _ in 0..50 {
        let p = page(store, viewer, limit, before).await;
        pages.push(p.rows);
        match p.next {
            Some(next) => before = Some(next),
            None => return pages,
        }
    }
    panic!("the inbox of {viewer:?} never ended");
}

fn rooms_of(rows: &[InboxRow]) -> Vec<RequestId> {
    rows.iter().map(InboxRow::request_id).collect()
}

/// Whether the domain counts `m` as unread for `user`: not deleted, neither sent nor read by them.
fn unread_for(m: &Message, user: &UserId) -> bool {
    m.deletion().is_none() && &m.sender_id != user && !m.has_receipt(ReceiptKind::Read, user)
}

/// The unread count the domain gives: the room's messages unread for `user`.
pub(super) fn unread_in(model: &Model, room: RequestId, user: &UserId) -> u64 {
    let n = model.room(room).iter().filter(|m| unread_for(m, user)).count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn first_unread_in(model: &Model, room: RequestId, user: &UserId) -> Option<MessageId> {
    model.room(room).iter().find(|m| unread_for(m, user)).map(|m| m.id)
}

/// The row the domain gives for `user` in `room`.
fn row_in(model: &Model, room: RequestId, user: &UserId) -> InboxRow {
    let last = model.room(room).last().cloned().unwrap_or_else(|| panic!("room {room} has no message"));
    InboxRow { last_message: last, unread: unread_in(model, room, user) }
}

/// Asserts every way the store tells `user`'s unread messages of `room` agrees with the model.
pub(super) async fn assert_unread(store: &dyn ChatStore, model: &Model, room: RequestId, user: &str, what: &str) {
    let u = uid(user);
    let want = row_in(model, room, &u);
    let count = store.unread_count(room, &u).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(count, want.unread, "{what}: unread_count of {user}");
    let first = store.first_unread(room, &u).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(first, first_unread_in(model, room, &u), "{what}: first_unread of {user}");
    let rows = store.inbox_rows(room, std::slice::from_ref(&u)).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rows, vec![want], "{what}: inbox_rows of {user}");
}

async fn read(store: &dyn ChatStore, model: &mut Model, room: RequestId, user: &str, ids: &[MessageId], at: Timestamp) {
    let got = store.mark(room, &uid(user), ReceiptKind::Read, ids, at).await.unwrap_or_else(|e| panic!("{e:?}"));
    let n = u64::try_from(got.read.len()).unwrap_or(u64::MAX);
    store.count_read(room, &uid(user), n).await.unwrap_or_else(|e| panic!("{e:?}"));
    let want = model.mark(room, &uid(user), ReceiptKind::Read, ids, at);
    assert_eq!(got, want, "{user} reads {ids:?}");
}

/// Unread counts after posts and reads by several users: a post counts for everyone but its
/// sender, a read lowers only the reader's count, once per message (marking again, delivering,
/// or marking an own message changes nothing); the inbox row, the count, `inbox_rows` and
/// `first_unread` agree with the domain, and the row holds the last message with its receipts.
pub async fn unread_counts_follow_posts_and_reads<F: StoreFixture>(f: &F) {
    let room = rid(1);
    f.add_request(room, Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let mut sent: Vec<Message> = Vec::new();
    for (i, who) in ["t1", "lab1", "lab1", "t1", "lab2", "lab1"].into_iter().enumerate() {
        let m = mk.message(room, who, &format!("m{i}"), None);
        sent.push(m.clone());
        insert_new(&*store, &mut model, m).await;
    }
    for who in ["t1", "lab1", "lab2", "lab3"] {
        assert_unread(&*store, &model, room, who, "after the posts").await;
    }
    let ids: Vec<MessageId> = sent.iter().map(|m| m.id).collect();
    // lab1 reads t1's first message and lab2's, and (ignored) its own.
    read(&*store, &mut model, room, "lab1", &[ids[0], ids[4], ids[1]], mk.now()).await;
    // Delivered is not read.
    let at = mk.now();
    store.mark(room, &uid("t1"), ReceiptKind::Delivered, &ids, at).await.unwrap_or_else(|e| panic!("{e:?}"));
    model.mark(room, &uid("t1"), ReceiptKind::Delivered, &ids, at);
    // t1 reads two of lab1's, then the same again with one more: counted once each.
    read(&*store, &mut model, room, "t1", &[ids[1], ids[2]], mk.now()).await;
    read(&*store, &mut model, room, "t1", &[ids[2], ids[1], ids[5]], mk.now()).await;
    for who in ["t1", "lab1", "lab2", "lab3"] {
        assert_unread(&*store, &model, room, who, "after the reads").await;
    }
    assert_eq!(unread_in(&model, room, &uid("t1")), 1, "the model itself: only lab2's message is unread for t1");
    let rows = page(&*store, &teacher("t1"), 10, None).await;
    assert_eq!(rows, InboxPage { rows: vec![row_in(&model, room, &uid("t1"))], next: None }, "t1's inbox");
    let rows = page(&*store, &lab("lab2"), 10, None).await;
    assert_eq!(rows.rows, vec![row_in(&model, room, &uid("lab2"))], "lab2's inbox");
    // A room without messages is in nobody's inbox, and has nothing unread.
    f.add_request(rid(2), Creator::Text("t1".into())).await;
    assert_eq!(store.unread_count(rid(2), &uid("t1")).await.unwrap_or_else(|e| panic!("{e:?}")), 0);
    assert_eq!(store.inbox_rows(rid(2), &[uid("t1")]).await.unwrap_or_else(|e| panic!("{e:?}")), vec![]);
    assert_eq!(rooms_of(&page(&*store, &teacher("t1"), 10, None).await.rows), vec![room]);
}

/// A user's own posts are never unread to them, however many, in every room they post in.
pub async fn own_posts_are_never_unread<F: StoreFixture>(f: &F) {
    let rooms = [rid(1), rid(2)];
    for r in rooms {
        f.add_request(r, Creator::Text("t1".into())).await;
    }
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    for i in 0..5 {
        for r in rooms {
            insert_new(&*store, &mut model, mk.message(r, "t1", &format!("m{i}"), None)).await;
        }
    }
    for r in rooms {
        assert_unread(&*store, &model, r, "t1", "own posts").await;
        assert_unread(&*store, &model, r, "lab1", "someone else's posts").await;
    }
    let rows = page(&*store, &teacher("t1"), 10, None).await.rows;
    assert_eq!(rows.iter().map(|r| r.unread).collect::<Vec<_>>(), [0, 0]);
}

/// Pages follow the inbox order (latest activity first, ties by request id descending) and the
/// cursor: paging through with any limit lists every room once, exactly as the domain's
/// [`select_page`] picks them, and a post moves its room to the front.
pub async fn inbox_pages_follow_activity_and_the_cursor<F: StoreFixture>(f: &F) {
    let rooms: Vec<RequestId> = (1..=7).map(rid).collect();
    for r in &rooms {
        f.add_request(*r, Creator::Text("t1".into())).await;
    }
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    for (i, r) in [3, 1, 4, 1, 5, 2, 6, 7].into_iter().enumerate() {
        insert_new(&*store, &mut model, mk.message(rid(r), "lab1", &format!("m{i}"), None)).await;
    }
    // Two rooms whose last messages have the same time: ordered by request id, descending.
    let tie = mk.now();
    for r in [rid(2), rid(6)] {
        let mut m = mk.message(r, "lab1", "tie", None);
        m.created_at = tie;
        insert_new(&*store, &mut model, m).await;
    }
    let viewer = teacher("t1");
    let every: Vec<InboxRow> = rooms.iter().map(|r| row_in(&model, *r, viewer.id())).collect();
    for limit in [1, 2, 3, 7, 100] {
        let pages = all_pages(&*store, &viewer, limit).await;
        let mut want_before = None;
        for (n, p) in pages.iter().enumerate() {
            let want = select_page(
                every.clone(),
                InboxQuery { limit: InboxLimit::new(limit as u64).unwrap_or_default(), before: want_before },
            );
            assert_eq!(p, &want.rows, "limit {limit}, page {n}");
            want_before = want.next;
        }
        let listed: Vec<RequestId> = pages.iter().flat_map(|p| rooms_of(p)).collect();
        assert_eq!(listed.len(), 7, "limit {limit}: every room once");
        assert_eq!(&listed[..3], [rid(6), rid(2), rid(7)], "limit {limit}: the tie and the latest first");
    }
    insert_new(&*store, &mut model, mk.message(rid(3), "t1", "back to the top", None)).await;
    let first = page(&*store, &viewer, 1, None).await;
    assert_eq!(rooms_of(&first.rows), [rid(3)], "a post moves its room first");
    assert!(first.next.is_some());
}

/// A teacher's inbox lists, counts and pages only the requests they created (stored as a string
/// or an ObjectId), never another teacher's; LAB lists every existing request with messages; a
/// room whose request does not exist is listed to nobody.
pub async fn a_teacher_sees_only_their_own_requests<F: StoreFixture>(f: &F) {
    let oid_teacher = labchat_domain::ObjectIdBytes::from_bytes([0x65, 0x51, 0xb6, 0xdf, 1, 2, 3, 4, 5, 6, 7, 8]);
    let t_oid = teacher(&oid_teacher.to_hex());
    f.add_request(rid(1), Creator::Text("t1".into())).await;
    f.add_request(rid(2), Creator::Text("t2".into())).await;
    f.add_request(rid(3), Creator::ObjectId(oid_teacher)).await;
    f.add_request(rid(4), Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    for r in [1, 2, 3, 4, 2, 9] {
        insert_new(&*store, &mut model, mk.message(rid(r), "lab1", "hello", None)).await;
    }
    let listed = |rows: &[Vec<InboxRow>]| rows.iter().flat_map(|p| rooms_of(p)).collect::<Vec<_>>();
    assert_eq!(listed(&all_pages(&*store, &teacher("t1"), 1).await), [rid(4), rid(1)], "t1");
    assert_eq!(listed(&all_pages(&*store, &teacher("t2"), 1).await), [rid(2)], "t2");
    assert_eq!(listed(&all_pages(&*store, &t_oid, 1).await), [rid(3)], "the teacher of an ObjectId creator");
    assert_eq!(listed(&all_pages(&*store, &teacher("nobody"), 1).await), Vec::<RequestId>::new());
    assert_eq!(listed(&all_pages(&*store, &lab("lab2"), 2).await), [rid(2), rid(4), rid(3), rid(1)], "lab");
    let rows = page(&*store, &teacher("t2"), 10, None).await.rows;
    assert_eq!(rows, vec![row_in(&model, rid(2), &uid("t2"))], "t2's count of its own room");
}

/// The requests as stored now decide: a request reassigned to another teacher leaves the old
/// teacher's inbox and enters the new one's; a deleted request leaves every inbox, LAB's too.
pub async fn reassigned_and_deleted_requests_leave_the_inbox<F: StoreFixture>(f: &F) {
    for r in [1, 2, 3] {
        f.add_request(rid(r), Creator::Text("t1".into())).await;
    }
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    for r in [1, 2, 3] {
        insert_new(&*store, &mut model, mk.message(rid(r), "lab1", "hello", None)).await;
    }
    let listed = |p: InboxPage| rooms_of(&p.rows);
    assert_eq!(listed(page(&*store, &teacher("t1"), 10, None).await), [rid(3), rid(2), rid(1)]);
    f.reassign_request(rid(2), Creator::Text("t2".into())).await;
    f.remove_request(rid(3)).await;
    assert_eq!(listed(page(&*store, &teacher("t1"), 10, None).await), [rid(1)], "the old teacher");
    assert_eq!(listed(page(&*store, &teacher("t2"), 10, None).await), [rid(2)], "the new teacher");
    assert_eq!(listed(page(&*store, &lab("lab1"), 10, None).await), [rid(2), rid(1)], "lab: the deleted one is gone");
    // Deleted rooms in the way of a page are skipped, and paging still ends.
    for r in 10..20 {
        f.add_request(rid(r), Creator::Text("t1".into())).await;
        insert_new(&*store, &mut model, mk.message(rid(r), "lab1", "hello", None)).await;
        f.remove_request(rid(r)).await;
    }
    let rooms: Vec<RequestId> = all_pages(&*store, &lab("lab1"), 1).await.iter().flat_map(|p| rooms_of(p)).collect();
    assert_eq!(rooms, [rid(2), rid(1)], "lab, one room a page, past deleted rooms");
    // No page's cursor names a deleted request, however many stand in the way.
    for r in 20..40 {
        f.add_request(rid(r), Creator::Text("t1".into())).await;
        insert_new(&*store, &mut model, mk.message(rid(r), "lab1", "hello", None)).await;
        if r != 30 {
            f.remove_request(rid(r)).await;
        }
    }
    let mut before = None;
    let mut listed = Vec::new();
    for _ in 0..50 {
        let p = page(&*store, &lab("lab1"), 1, before).await;
        listed.extend(rooms_of(&p.rows));
        let Some(next) = p.next else { break };
        let named = store.find_request(next.key().request_id).await.unwrap_or_else(|e| panic!("{e:?}"));
        assert!(named.is_some(), "a next cursor names deleted request {}", next.key().request_id);
        before = Some(next);
    }
    assert_eq!(listed, [rid(30), rid(2), rid(1)], "lab, past deleted rooms again");
}

/// A count write that was missed (a failed [`ChatStore::count_posted`] or
/// [`ChatStore::count_read`]) or that counted twice (one that took effect though it failed, then
/// repeated) leaves counts off; [`ChatStore::recount`] of the room and a user makes the user's
/// count and the room's last message exact again, and repeating it changes nothing.
pub async fn recount_makes_missed_or_doubled_counts_exact<F: StoreFixture>(f: &F) {
    let room = rid(1);
    f.add_request(room, Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let mut sent = Vec::new();
    for (i, who) in ["lab1", "t1", "lab1", "lab2"].into_iter().enumerate() {
        let m = mk.message(room, who, &format!("m{i}"), None);
        sent.push(m.id);
        insert_new(&*store, &mut model, m).await;
    }
    let stored = |m: &Message| {
        let m = m.clone();
        let store = &store;
        async move {
            match store.insert_message(&m).await.unwrap_or_else(|e| panic!("{e:?}")) {
                labchat_core::Inserted::New(seq) => seq,
                other => panic!("{other:?}"),
            }
        }
    };
    // lab1's post is counted twice, then t1's last post is stored and never counted.
    let doubled = mk.message(room, "lab1", "doubled", None);
    let seq = stored(&doubled).await;
    assert_eq!(seq, model.add(doubled.clone()));
    for _ in 0..2 {
        store.count_posted(&doubled, seq).await.unwrap_or_else(|e| panic!("{e:?}"));
    }
    let missed = mk.message(room, "t1", "missed", None);
    assert_eq!(stored(&missed).await, model.add(missed));
    // t1's read is counted twice; lab2's reads are never counted.
    let at = mk.now();
    let got = store.mark(room, &uid("t1"), ReceiptKind::Read, &sent[..1], at).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(got, model.mark(room, &uid("t1"), ReceiptKind::Read, &sent[..1], at));
    for _ in 0..2 {
        store.count_read(room, &uid("t1"), 1).await.unwrap_or_else(|e| panic!("{e:?}"));
    }
    let got =
        store.mark(room, &uid("lab2"), ReceiptKind::Read, &sent[..2], at).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(got, model.mark(room, &uid("lab2"), ReceiptKind::Read, &sent[..2], at));
    let off = store.unread_count(room, &uid("lab2")).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_ne!(off, unread_in(&model, room, &uid("lab2")), "the check's premise: lab2's count is off");

    for who in ["t1", "lab1", "lab2", "lab3"] {
        for _ in 0..2 {
            store.recount(room, &uid(who)).await.unwrap_or_else(|e| panic!("recount {who}: {e:?}"));
        }
    }
    for who in ["t1", "lab1", "lab2", "lab3"] {
        assert_unread(&*store, &model, room, who, "after the recounts").await;
    }
    let rows = page(&*store, &teacher("t1"), 10, None).await;
    assert_eq!(rows.rows, vec![row_in(&model, room, &uid("t1"))], "t1's inbox");
    let rows = page(&*store, &lab("lab2"), 10, None).await;
    assert_eq!(rows.rows, vec![row_in(&model, room, &uid("lab2"))], "lab2's inbox");
    // A room without messages: nothing to recount.
    f.add_request(rid(2), Creator::Text("t1".into())).await;
    store.recount(rid(2), &uid("t1")).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(store.unread_count(rid(2), &uid("t1")).await.unwrap_or_else(|e| panic!("{e:?}")), 0);
}
