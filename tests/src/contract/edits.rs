//! The checks of edits and deletions: `message`, `update_message` and `count_deleted`. An edit
//! or a deletion changes the text and its marks only (never the seq or the receipts), a
//! tombstone never changes again, and a deleted message is unread for no one.

use std::time::Duration;

use labchat_core::ChatStore;
use labchat_domain::{Cursor, Message, MessageId, MessageText, RequestId, Role, User};

use super::inbox::{assert_unread, unread_in};
use super::{Creator, Gen, Model, StoreFixture, history, insert_new, rid, uid};

const WINDOW: Duration = Duration::from_secs(900);

fn text(s: &str) -> MessageText {
    MessageText::parse(s, MessageText::DEFAULT_MAX_CHARS).unwrap_or_else(|e| panic!("{e}"))
}

impl Model {
    /// The model's copy of message `id`.
    fn get(&self, id: MessageId) -> Message {
        self.messages.iter().find(|m| m.id == id).cloned().unwrap_or_else(|| panic!("no message {id:?} in the model"))
    }

    /// Replaces the model's copy of `m`.
    fn put(&mut self, m: Message) {
        let at = self.messages.iter().position(|x| x.id == m.id).unwrap_or_else(|| panic!("no message {:?}", m.id));
        self.messages[at] = m;
    }
}

/// The whole room as the store and as the model give it, which must agree.
async fn assert_room(store: &dyn ChatStore, model: &Model, room: RequestId, what: &str) {
    let got = history(store, room, Cursor::Latest, 100).await;
    assert_eq!(got.messages, model.room(room), "{what}: the history of room {room}");
}

/// Deletes message `id` of `room` as `by` the way the use case does: the stored message with its
/// receipts, the domain's decision, the update, then the counts.
pub(super) async fn delete(
    store: &dyn ChatStore,
    model: &mut Model,
    room: RequestId,
    id: MessageId,
    by: &User,
    at: i64,
) {
    let mut m =
        store.message(room, id).await.unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_else(|| panic!("no {id:?}"));
    assert_eq!(m, model.get(id), "the stored message {id:?} before its deletion");
    let newly = m.delete(room, by, labchat_domain::Timestamp::from_unix_millis(at)).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(newly, "{id:?} was not deleted yet");
    assert!(store.update_message(&m).await.unwrap_or_else(|e| panic!("{e:?}")), "deleting {id:?}");
    store.count_deleted(&m).await.unwrap_or_else(|e| panic!("{e:?}"));
    model.put(m);
}

/// Edits message `id` of `room` as `by` the way the use case does: the stored message, the
/// domain's decision, the update.
pub(super) async fn edit(
    store: &dyn ChatStore,
    model: &mut Model,
    room: RequestId,
    id: MessageId,
    by: &str,
    new_text: &str,
    at: labchat_domain::Timestamp,
) {
    let mut m =
        store.message(room, id).await.unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_else(|| panic!("no {id:?}"));
    m.edit(room, &uid(by), text(new_text), at, WINDOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(store.update_message(&m).await.unwrap_or_else(|e| panic!("{e:?}")), "editing {id:?}");
    model.put(m);
}

/// An edit shows in history with its new text and `editedAt`, a deletion as a tombstone (no
/// text, who deleted it and when), both with their seq and receipts unchanged, and `message`
/// gives the same. `update_message` of a tombstone, of an unknown message or of a message under
/// another room's id returns `false` and changes nothing, and `message` of another room is `None`.
pub async fn edits_and_deletions_keep_seq_and_receipts<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    f.add_request(room, Creator::Text("t1".into())).await;
    f.add_request(other, Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let mut ids = Vec::new();
    for (i, who) in ["t1", "lab1", "t1"].into_iter().enumerate() {
        let m = mk.message(room, who, &format!("m{i}"), None);
        ids.push(m.id);
        insert_new(&*store, &mut model, m).await;
    }
    insert_new(&*store, &mut model, mk.message(other, "t1", "elsewhere", None)).await;
    let at = mk.now();
    store
        .mark(room, &uid("lab1"), labchat_domain::ReceiptKind::Read, &ids, at)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    model.mark(room, &uid("lab1"), labchat_domain::ReceiptKind::Read, &ids, at);

    // An edit.
    let mut edited = model.get(ids[0]);
    edited.edit(room, &uid("t1"), text("m0, edited"), mk.now(), WINDOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(store.update_message(&edited).await.unwrap_or_else(|e| panic!("{e:?}")), "editing m0");
    model.put(edited.clone());
    assert_room(&*store, &model, room, "after an edit").await;
    assert_eq!(store.message(room, ids[0]).await.unwrap_or_else(|e| panic!("{e:?}")), Some(edited.clone()));
    assert!(edited.edited_at().is_some() && !edited.read_by().is_empty(), "the model itself: edited, with receipts");

    // A deletion, by a LAB user moderating.
    let before = model.get(ids[2]);
    delete(&*store, &mut model, room, ids[2], &User::new(uid("lab1"), Role::Lab), mk.now().unix_millis()).await;
    assert_room(&*store, &model, room, "after a deletion").await;
    let tombstone = model.get(ids[2]);
    assert!(tombstone.text().is_none() && tombstone.deletion().is_some(), "the model itself: a tombstone");
    assert_eq!(store.message(room, ids[2]).await.unwrap_or_else(|e| panic!("{e:?}")), Some(tombstone));

    // Refused: a tombstone, an unknown message, a message under another room's id.
    let mut late = before;
    late.edit(room, &uid("t1"), text("too late"), mk.now(), WINDOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!store.update_message(&late).await.unwrap_or_else(|e| panic!("{e:?}")), "editing a tombstone");
    let tombstone = model.get(ids[2]);
    assert!(!store.update_message(&tombstone).await.unwrap_or_else(|e| panic!("{e:?}")), "a tombstone again");
    let mut unknown = mk.message(room, "t1", "never stored", None);
    unknown.edit(room, &uid("t1"), text("edited"), mk.now(), WINDOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!store.update_message(&unknown).await.unwrap_or_else(|e| panic!("{e:?}")), "an unknown message");
    let mut elsewhere = model.get(ids[1]);
    elsewhere.request_id = other;
    elsewhere.edit(other, &uid("lab1"), text("moved"), mk.now(), WINDOW).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!store.update_message(&elsewhere).await.unwrap_or_else(|e| panic!("{e:?}")), "under another room's id");
    elsewhere.delete(other, &User::new(uid("lab1"), Role::Lab), mk.now()).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!store.update_message(&elsewhere).await.unwrap_or_else(|e| panic!("{e:?}")), "deleted under another id");
    for r in [room, other] {
        assert_room(&*store, &model, r, "after the refused updates").await;
    }
    assert_eq!(store.message(other, ids[0]).await.unwrap_or_else(|e| panic!("{e:?}")), None, "another room's");
    assert_eq!(store.message(room, unknown.id).await.unwrap_or_else(|e| panic!("{e:?}")), None, "an unknown id");
}

/// A deleted message is unread for no one: the unread count (`unread_count`, `inbox_rows`, the
/// inbox row) of a user who had not read it falls by one, its sender's and its readers' stay,
/// `first_unread` skips it, and `recount` gives the same counts.
pub async fn a_deletion_is_unread_for_no_one<F: StoreFixture>(f: &F) {
    let room = rid(1);
    f.add_request(room, Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let mut ids = Vec::new();
    for (i, who) in ["t1", "lab1", "t1", "lab1"].into_iter().enumerate() {
        let m = mk.message(room, who, &format!("m{i}"), None);
        ids.push(m.id);
        insert_new(&*store, &mut model, m).await;
    }
    // lab2 reads the first message; lab3 reads nothing.
    let at = mk.now();
    let marked = store.mark(room, &uid("lab2"), labchat_domain::ReceiptKind::Read, &ids[..1], at).await;
    store.count_read(room, &uid("lab2"), 1).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(marked.unwrap_or_else(|e| panic!("{e:?}")).read, ids[..1].to_vec());
    model.mark(room, &uid("lab2"), labchat_domain::ReceiptKind::Read, &ids[..1], at);
    let users = ["t1", "lab1", "lab2", "lab3"];
    for who in users {
        assert_unread(&*store, &model, room, who, "before the deletion").await;
    }
    let counts = |model: &Model| users.map(|u| unread_in(model, room, &uid(u)));
    let was = counts(&model);
    assert_eq!(was, [2, 2, 3, 4], "the model itself, before");

    // The first message goes: sent by t1, read by lab2, unread for lab1 and lab3.
    delete(&*store, &mut model, room, ids[0], &User::new(uid("t1"), Role::Teacher), mk.now().unix_millis()).await;
    for who in users {
        assert_unread(&*store, &model, room, who, "after the deletion").await;
    }
    assert_eq!(counts(&model), [2, 1, 3, 3], "the model itself: one less for lab1 and lab3 only");
    let inbox = store.inbox(&User::new(uid("t1"), Role::Teacher), Default::default()).await;
    let rows = inbox.unwrap_or_else(|e| panic!("{e:?}")).rows;
    assert_eq!(rows.iter().map(|r| r.unread).collect::<Vec<_>>(), vec![2], "t1's inbox row");
    let inbox = store.inbox(&User::new(uid("lab3"), Role::Lab), Default::default()).await;
    let rows = inbox.unwrap_or_else(|e| panic!("{e:?}")).rows;
    assert_eq!(rows.iter().map(|r| r.unread).collect::<Vec<_>>(), vec![3], "lab3's inbox row");

    // A deleted message in the middle, which lab3 has not read either.
    delete(&*store, &mut model, room, ids[2], &User::new(uid("lab1"), Role::Lab), mk.now().unix_millis()).await;
    let at = mk.now();
    store
        .mark(room, &uid("lab3"), labchat_domain::ReceiptKind::Read, &ids[1..2], at)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    store.count_read(room, &uid("lab3"), 1).await.unwrap_or_else(|e| panic!("{e:?}"));
    model.mark(room, &uid("lab3"), labchat_domain::ReceiptKind::Read, &ids[1..2], at);
    for who in users {
        assert_unread(&*store, &model, room, who, "after a second deletion").await;
    }
    assert_eq!(store.first_unread(room, &uid("lab3")).await.unwrap_or_else(|e| panic!("{e:?}")), Some(ids[3]));
    // A tombstone takes no receipt (as `Message::accepts_receipt_from`): nothing to read any more.
    let marked = store.mark(room, &uid("lab3"), labchat_domain::ReceiptKind::Read, &ids[2..3], mk.now()).await;
    let marked = marked.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(marked.delivered.is_empty() && marked.read.is_empty(), "a tombstone was marked: {marked:?}");

    // Recounting gives the same.
    for who in users {
        store.recount(room, &uid(who)).await.unwrap_or_else(|e| panic!("{e:?}"));
    }
    for who in users {
        assert_unread(&*store, &model, room, who, "after a recount").await;
    }
}
