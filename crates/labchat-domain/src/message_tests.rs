//! The message decisions: receipts, restore, edit and delete.

use super::*;

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}
fn rid(n: u8) -> RequestId {
    RequestId::parse(&format!("{n:024x}")).unwrap()
}

fn message(sender: &str) -> Message {
    Message::new(NewMessage {
        id: MessageId::parse("6751b6df1ad14eaa13a03313").unwrap(),
        request_id: rid(1),
        sender_id: uid(sender),
        sender_role: Role::Teacher,
        text: MessageText::parse("hi", 10).unwrap(),
        created_at: Timestamp::from_unix_millis(1),
        client_message_id: None,
    })
}

#[test]
fn receipt_decisions() {
    let t = Timestamp::from_unix_millis(5);
    struct Case {
        name: &'static str,
        request: RequestId,
        user: &'static str,
        kind: ReceiptKind,
        pre: fn(&mut Message),
        want: MarkOutcome,
    }
    let none = MarkOutcome::default();
    let cases = [
        Case {
            name: "deliver to other",
            request: rid(1),
            user: "b",
            kind: ReceiptKind::Delivered,
            pre: |_| {},
            want: MarkOutcome { delivered: true, read: false },
        },
        Case {
            name: "read implies delivered",
            request: rid(1),
            user: "b",
            kind: ReceiptKind::Read,
            pre: |_| {},
            want: MarkOutcome { delivered: true, read: true },
        },
        Case {
            name: "sender cannot mark own",
            request: rid(1),
            user: "a",
            kind: ReceiptKind::Read,
            pre: |_| {},
            want: none,
        },
        Case {
            name: "other request untouched",
            request: rid(2),
            user: "b",
            kind: ReceiptKind::Read,
            pre: |_| {},
            want: none,
        },
        Case {
            name: "already delivered",
            request: rid(1),
            user: "b",
            kind: ReceiptKind::Delivered,
            pre: |m| {
                m.mark(rid(1), &uid("b"), ReceiptKind::Delivered, Timestamp::from_unix_millis(1));
            },
            want: none,
        },
        Case {
            name: "read after delivered",
            request: rid(1),
            user: "b",
            kind: ReceiptKind::Read,
            pre: |m| {
                m.mark(rid(1), &uid("b"), ReceiptKind::Delivered, Timestamp::from_unix_millis(1));
            },
            want: MarkOutcome { delivered: false, read: true },
        },
        Case {
            name: "already read",
            request: rid(1),
            user: "b",
            kind: ReceiptKind::Read,
            pre: |m| {
                m.mark(rid(1), &uid("b"), ReceiptKind::Read, Timestamp::from_unix_millis(1));
            },
            want: none,
        },
    ];
    for c in cases {
        let mut m = message("a");
        (c.pre)(&mut m);
        let before = m.clone();
        let got = m.mark(c.request, &uid(c.user), c.kind, t);
        assert_eq!(got, c.want, "{}", c.name);
        assert_eq!(m.delivered_to.len(), before.delivered_to.len() + usize::from(got.delivered), "{}", c.name);
        assert_eq!(m.read_by.len(), before.read_by.len() + usize::from(got.read), "{}", c.name);
    }
}

#[test]
fn idempotency_key_only_with_client_id() {
    let mut m = message("a");
    assert_eq!(m.idempotency_key(), None);
    m.client_message_id = Some(ClientMessageId::parse("c1").unwrap());
    let k = m.idempotency_key().unwrap();
    assert_eq!((k.request_id, k.sender_id.as_str(), k.client_message_id.as_str()), (rid(1), "a", "c1"));
}

#[test]
fn restore_repairs_receipts_so_counts_cannot_break() {
    let at = Timestamp::from_unix_millis(3);
    let r = |u: &str| Receipt { user: uid(u), at };
    let record = MessageRecord {
        delivered_to: vec![r("b"), r("b"), r("a")],
        read_by: vec![r("c"), r("c")],
        ..message("a").to_record()
    };
    let m = Message::restore(record).unwrap();
    let users = |l: &[Receipt]| l.iter().map(|r| r.user.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(users(m.delivered_to()), ["b", "c"], "one each, never the sender, every reader delivered");
    assert_eq!(users(m.read_by()), ["c"]);
}

#[test]
fn edit_and_delete_decisions() {
    let window = std::time::Duration::from_secs(60);
    let text = || MessageText::parse("fixed", 10).unwrap();
    let at = |ms| Timestamp::from_unix_millis(ms);
    let lab = User::new(uid("lab-1"), Role::Lab);
    let other_teacher = User::new(uid("t-2"), Role::Teacher);
    let sender = User::new(uid("a"), Role::Teacher);

    let mut m = message("a");
    assert_eq!(m.edit(rid(2), &uid("a"), text(), at(2), window), Err(EditRefused::NotInRoom));
    assert_eq!(m.edit(rid(1), &uid("lab-1"), text(), at(2), window), Err(EditRefused::NotSender));
    assert_eq!(m.edit(rid(1), &uid("a"), text(), at(60_002), window), Err(EditRefused::WindowPassed { window }));
    assert_eq!(m, message("a"), "a refused edit changes nothing");
    m.edit(rid(1), &uid("a"), text(), at(60_001), window).unwrap();
    assert_eq!((m.text().map(MessageText::as_str), m.edited_at()), (Some("fixed"), Some(at(60_001))));

    assert_eq!(m.delete(rid(1), &other_teacher, at(5)), Err(DeleteRefused::NotAllowed));
    assert_eq!(m.delete(rid(2), &lab, at(5)), Err(DeleteRefused::NotInRoom));
    assert_eq!(m.delete(rid(1), &lab, at(5)), Ok(true), "LAB moderates");
    assert_eq!((m.text(), m.edited_at()), (None, None), "the text is gone, not hidden");
    assert_eq!(m.deletion(), Some(&Deletion { at: at(5), by: uid("lab-1") }));
    assert_eq!(m.delete(rid(1), &sender, at(6)), Ok(false), "a retried delete succeeds and changes nothing");
    assert_eq!(m.deletion().map(|d| d.at), Some(at(5)));
    assert_eq!(m.edit(rid(1), &uid("a"), text(), at(7), window), Err(EditRefused::Deleted));
    assert_eq!(
        m.mark(rid(1), &uid("b"), ReceiptKind::Read, at(8)),
        MarkOutcome::default(),
        "a tombstone takes no receipt"
    );
    assert_eq!(Message::restore(m.to_record()), Ok(m.clone()));
}

#[test]
fn a_repeat_has_the_same_key_and_exactly_the_same_text() {
    let with_id = |text: &str, cid: Option<&str>| {
        let record = MessageRecord {
            text: Some(MessageText::parse(text, 100).unwrap()),
            client_message_id: cid.map(|c| ClientMessageId::parse(c).unwrap()),
            ..message("a").to_record()
        };
        Message::restore(record).unwrap()
    };
    let stored = with_id("hello", Some("c1"));
    assert!(with_id("hello", Some("c1")).repeats(&stored));
    assert!(!with_id("hello ", Some("c1")).repeats(&stored), "untrimmed: a space differs");
    assert!(!with_id("Hello", Some("c1")).repeats(&stored));
    assert!(!with_id("hello", Some("c2")).repeats(&stored), "another key is no repeat");
    assert!(!with_id("hello", None).repeats(&with_id("hello", None)), "no key, no repeat");
    let mut edited = stored.clone();
    let window = std::time::Duration::from_secs(60);
    edited
        .edit(rid(1), &uid("a"), MessageText::parse("fixed", 10).unwrap(), Timestamp::from_unix_millis(2), window)
        .unwrap();
    assert!(with_id("hello", Some("c1")).repeats(&edited), "a retry after an edit is a repeat");
}
