//! The check of the catch-up read, `changed`: exactly the messages up to a seq that were marked,
//! edited or deleted since an instant ([`CatchUp::includes`]), the newest up to a limit, with
//! their receipts, never another room's.

use labchat_core::ChatStore;
use labchat_domain::{CatchUp, HistoryLimit, HistoryPage, ReceiptKind, RequestId, Role, Timestamp, User};

use super::edits::{delete, edit};
use super::{Creator, Gen, Model, StoreFixture, insert_new, mark, rid, seq, uid};

/// What the model says `changed` must give.
fn expected(model: &Model, room: RequestId, catch_up: CatchUp, n: usize) -> HistoryPage {
    let picked: Vec<_> = model.room(room).into_iter().filter(|m| catch_up.includes(m)).collect();
    let has_more = picked.len() > n;
    HistoryPage { messages: picked[picked.len().saturating_sub(n)..].to_vec(), has_more }
}

async fn changed(store: &dyn ChatStore, room: RequestId, catch_up: CatchUp, n: usize) -> HistoryPage {
    let limit = HistoryLimit::new(n).unwrap_or_else(|e| panic!("{e}"));
    store.changed(room, catch_up, limit).await.unwrap_or_else(|e| panic!("changed {catch_up:?} limit {n}: {e:?}"))
}

/// Receipts, edits and deletions before and after an instant, in two rooms: `changed` agrees with
/// the model for every cut-off, every last held message and several limits.
pub async fn the_catch_up_reads_exactly_what_changed<F: StoreFixture>(f: &F) {
    let (room, other) = (rid(1), rid(2));
    f.add_request(room, Creator::Text("t1".into())).await;
    f.add_request(other, Creator::Text("t1".into())).await;
    let (store, mk, mut model) = (f.store(), Gen::new(), Model::default());
    let mut ids = Vec::new();
    for i in 0..7 {
        let m = mk.message(room, if i % 3 == 1 { "lab1" } else { "t1" }, &format!("m{i}"), None);
        ids.push(m.id);
        insert_new(&*store, &mut model, m).await;
    }
    let elsewhere = mk.message(other, "t1", "elsewhere", None);
    let elsewhere_id = elsewhere.id;
    insert_new(&*store, &mut model, elsewhere).await;
    let store_mark = |user: &'static str, kind, which: Vec<usize>, at: Timestamp| {
        let (store, wanted) = (store.clone(), which.iter().map(|&i| ids[i]).collect::<Vec<_>>());
        async move {
            mark(&*store, room, user, kind, &wanted, at).await;
            (user, kind, wanted, at)
        }
    };
    let mut marks = Vec::new();
    // Early changes: m0 read, m1 delivered.
    marks.push(store_mark("lab1", ReceiptKind::Read, vec![0], mk.now()).await);
    marks.push(store_mark("t1", ReceiptKind::Delivered, vec![1], mk.now()).await);
    let first_cut = mk.now();
    // Later: m2 read (with m0 again: not newly marked), m3 edited, m5 deleted, m6 read.
    marks.push(store_mark("lab1", ReceiptKind::Read, vec![0, 2], mk.now()).await);
    edit(&*store, &mut model, room, ids[3], "t1", "m3, edited", mk.now()).await;
    let second_cut = mk.now();
    delete(&*store, &mut model, room, ids[5], &User::new(uid("lab1"), Role::Lab), mk.now().unix_millis()).await;
    marks.push(store_mark("lab2", ReceiptKind::Read, vec![6, 4], mk.now()).await);
    // Another room's change, never picked.
    let at = mk.now();
    mark(&*store, other, "lab1", ReceiptKind::Read, &[elsewhere_id], at).await;
    model.mark(other, &uid("lab1"), ReceiptKind::Read, &[elsewhere_id], at);
    for (user, kind, wanted, at) in marks {
        model.mark(room, &uid(user), kind, &wanted, at);
    }

    let since_all = Timestamp::from_unix_millis(0);
    let late = mk.now();
    for since in [since_all, first_cut, second_cut, late] {
        for up_to in 1..=7 {
            for n in [1, 2, 7] {
                let catch_up = CatchUp { up_to: seq(up_to), since };
                let want = expected(&model, room, catch_up, n);
                assert_eq!(
                    changed(&*store, room, catch_up, n).await,
                    want,
                    "changed since {since:?} up to seq {up_to}, limit {n}"
                );
            }
        }
    }
    // The model itself: the cut-offs separate what they should.
    let at_first = expected(&model, room, CatchUp { up_to: seq(7), since: first_cut }, 7);
    let seqs: Vec<u64> = at_first.messages.iter().filter_map(|m| m.seq.map(|s| s.get())).collect();
    assert_eq!(seqs, [3, 4, 5, 6, 7], "the messages changed after the first cut-off");
    let at_second = expected(&model, room, CatchUp { up_to: seq(7), since: second_cut }, 7);
    let seqs: Vec<u64> = at_second.messages.iter().filter_map(|m| m.seq.map(|s| s.get())).collect();
    assert_eq!(seqs, [5, 6, 7], "the messages changed after the second cut-off");
    // Another room, and a room with no messages, give nothing.
    let empty = HistoryPage::default();
    assert_eq!(changed(&*store, rid(3), CatchUp { up_to: seq(7), since: since_all }, 7).await, empty);
    let other_page = changed(&*store, other, CatchUp { up_to: seq(7), since: since_all }, 7).await;
    assert_eq!(other_page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [elsewhere_id]);
}
