//! The feature `serde`: the documented representation, round trips, and a refusal for every rule a
//! constructor enforces.

use serde_json::{Value, json};

use crate::{
    ClientMessageId, Message, MessageId, MessageRecord, MessageText, ObjectIdBytes, Receipt, RequestId, Role,
    RoomEvent, Seq, Timestamp, User, UserId,
};

const ROOM: &str = "6751b6df1ad14eaa13a03313";
const MSG: &str = "6751b6df1ad14eaa13a03399";

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn record() -> MessageRecord {
    MessageRecord {
        id: MessageId::parse(MSG).unwrap(),
        request_id: RequestId::parse(ROOM).unwrap(),
        seq: Some(Seq::new(42).unwrap()),
        sender_id: uid("teacher-7"),
        sender_role: Role::Teacher,
        text: Some(MessageText::parse(" hello ", 100).unwrap()),
        created_at: Timestamp::from_unix_millis(1_700_000_000_123),
        client_message_id: Some(ClientMessageId::parse("c-1").unwrap()),
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
        delivered_to: vec![Receipt { user: uid("lab-7"), at: Timestamp::from_unix_millis(5) }],
        read_by: vec![Receipt { user: uid("lab-7"), at: Timestamp::from_unix_millis(-6) }],
    }
}

fn message() -> Message {
    Message::restore(record()).unwrap()
}

fn read() -> RoomEvent {
    RoomEvent::Read {
        request_id: RequestId::parse(ROOM).unwrap(),
        user_id: uid("lab-7"),
        messages: vec![MessageId::parse(MSG).unwrap()],
        at: Timestamp::from_unix_millis(1_700_000_000_123),
    }
}

fn events() -> Vec<RoomEvent> {
    let bare = Message::restore(MessageRecord {
        seq: None,
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        sender_role: Role::Lab,
        ..record()
    })
    .unwrap();
    let edited =
        Message::restore(MessageRecord { edited_at: Some(Timestamp::from_unix_millis(9)), ..record() }).unwrap();
    let tombstone = Message::restore(MessageRecord {
        text: None,
        deleted_at: Some(Timestamp::from_unix_millis(10)),
        deleted_by: Some(uid("lab-7")),
        ..record()
    })
    .unwrap();
    vec![
        RoomEvent::MessagePosted(message()),
        RoomEvent::MessagePosted(bare),
        RoomEvent::MessagePosted(edited),
        RoomEvent::MessagePosted(tombstone),
        RoomEvent::Delivered {
            request_id: RequestId::parse(ROOM).unwrap(),
            user_id: uid("teacher-7"),
            messages: vec![MessageId::parse(MSG).unwrap(), MessageId::parse(ROOM).unwrap()],
            at: Timestamp::from_unix_millis(0),
        },
        read(),
    ]
}

#[test]
fn every_event_round_trips() {
    for event in events() {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<RoomEvent>(&json).unwrap(), event, "{json}");
    }
}

#[test]
fn the_representation_is_the_documented_one() {
    assert_eq!(
        serde_json::to_value(read()).unwrap(),
        json!({"type": "read", "data": {
            "requestId": ROOM, "userId": "lab-7", "messages": [MSG], "at": 1_700_000_000_123_i64
        }})
    );
    assert_eq!(
        serde_json::to_value(RoomEvent::MessagePosted(message())).unwrap(),
        json!({"type": "messagePosted", "data": {
            "id": MSG, "requestId": ROOM, "seq": 42, "senderId": "teacher-7", "senderRole": "TEACHER",
            "text": " hello ", "createdAt": 1_700_000_000_123_i64, "clientMessageId": "c-1",
            "deliveredTo": [{"user": "lab-7", "at": 5}], "readBy": [{"user": "lab-7", "at": -6}]
        }})
    );
    let Some(RoomEvent::MessagePosted(bare)) = events().into_iter().nth(1) else { panic!("the bare message") };
    // Sorted: the key order depends on serde_json's `preserve_order` feature, which another
    // crate of the workspace may turn on.
    let mut keys: Vec<String> = match serde_json::to_value(&bare).unwrap() {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    };
    keys.sort();
    assert_eq!(keys, ["createdAt", "id", "requestId", "senderId", "senderRole", "text"]);
    assert_eq!(
        serde_json::to_value(User::new(uid("lab-7"), Role::Lab)).unwrap(),
        json!({"id": "lab-7", "role": "LAB"})
    );
    assert_eq!(serde_json::to_value(Role::Teacher).unwrap(), json!("TEACHER"));
}

#[test]
fn values_are_read_as_the_constructors_read_them() {
    let upper: RequestId = serde_json::from_value(json!(ROOM.to_uppercase())).unwrap();
    assert_eq!(upper.to_hex(), ROOM);
    let bytes: ObjectIdBytes = serde_json::from_value(json!(MSG)).unwrap();
    assert_eq!(serde_json::to_value(bytes).unwrap(), json!(MSG));
    // Stored texts are not held to today's length limit, as `MessageText::restore`.
    let long = "é".repeat(MessageText::DEFAULT_MAX_CHARS + 1);
    let text: MessageText = serde_json::from_value(json!(long)).unwrap();
    assert_eq!(text.as_str(), long);
    let user: User = serde_json::from_value(json!({"id": "lab-7", "role": "LAB"})).unwrap();
    assert_eq!(user, User::new(uid("lab-7"), Role::Lab));
    // Absent optional fields and empty lists may be left out; unknown fields are ignored.
    let mut json = serde_json::to_value(RoomEvent::MessagePosted(message())).unwrap();
    let data = json["data"].as_object_mut().unwrap();
    for key in ["seq", "clientMessageId", "deliveredTo", "readBy"] {
        data.remove(key);
    }
    data.insert("later".into(), json!(true));
    let RoomEvent::MessagePosted(m) = serde_json::from_value(json).unwrap() else { panic!("a message") };
    assert_eq!((m.seq, m.client_message_id.clone(), m.delivered_to(), m.read_by()), (None, None, &[][..], &[][..]));
}

/// A valid event with one value replaced at `path` is refused, with an error naming `reason`.
fn refused(event: RoomEvent, path: &[&str], value: Value, reason: &str) {
    let mut json = serde_json::to_value(event).unwrap();
    let mut slot = &mut json;
    for key in path {
        slot = match key.parse::<usize>() {
            Ok(i) => &mut slot[i],
            Err(_) => &mut slot[*key],
        };
    }
    *slot = value;
    let e = serde_json::from_value::<RoomEvent>(json.clone()).unwrap_err().to_string();
    assert!(e.contains(reason), "{json}: {e:?} does not say {reason:?}");
}

#[test]
fn every_domain_rule_refuses_on_the_way_in() {
    let m = || RoomEvent::MessagePosted(message());
    let cases: Vec<(RoomEvent, &[&str], Value, &str)> = vec![
        (m(), &["data", "id"], json!("6751b6df1ad14eaa13a0339"), "24 hexadecimal characters, got 23"),
        (m(), &["data", "id"], json!("6751b6df1ad14eaa13a0339z"), "found a non-hex character"),
        (m(), &["data", "requestId"], json!(""), "got 0 characters"),
        (m(), &["data", "requestId"], json!(42), "invalid type"),
        (m(), &["data", "seq"], json!(0), "starts at 1, got 0"),
        (m(), &["data", "seq"], json!(-1), "invalid value"),
        (m(), &["data", "senderId"], json!("  "), "user id must not be empty"),
        (m(), &["data", "senderId"], json!("x".repeat(UserId::MAX_LEN + 1)), "at most 256 bytes"),
        (m(), &["data", "senderRole"], json!("ADMIN"), "may not use labchat"),
        (m(), &["data", "senderRole"], json!("teacher"), "may not use labchat"),
        (m(), &["data", "text"], json!(""), "message must not be empty"),
        (m(), &["data", "text"], json!(" \n\t"), "message must not be empty"),
        (m(), &["data", "text"], json!(null), "has neither a text nor a deletion"),
        (m(), &["data", "text"], json!(7), "invalid type"),
        (m(), &["data", "deletedAt"], json!(5), "half a deletion"),
        (m(), &["data", "deletedBy"], json!("lab-7"), "half a deletion"),
        (m(), &["data", "createdAt"], json!("2024-01-01T00:00:00Z"), "invalid type"),
        (m(), &["data", "createdAt"], json!(1.5), "invalid type"),
        (m(), &["data", "clientMessageId"], json!(""), "clientMessageId must not be empty"),
        (m(), &["data", "clientMessageId"], json!("é".repeat(65)), "at most 64 characters"),
        (m(), &["data", "deliveredTo", "0", "user"], json!(""), "user id must not be empty"),
        (m(), &["data", "readBy", "0", "at"], json!("5"), "invalid type"),
        (m(), &["data", "senderId"], json!(null), "invalid type"),
        (read(), &["data", "messages"], json!([]), "at least one element"),
        (read(), &["data", "messages", "0"], json!("zz"), "24 hexadecimal characters, got 2"),
        (read(), &["data", "userId"], json!(""), "user id must not be empty"),
        (read(), &["data", "requestId"], json!("6751b6df1ad14eaa13a0331g"), "non-hex"),
        (read(), &["data", "at"], json!(u64::MAX), "invalid value"),
        (read(), &["type"], json!("noSuchEvent"), "unknown variant"),
        (read(), &["type"], json!("Read"), "unknown variant"),
        (read(), &["data"], json!(null), "invalid type"),
    ];
    for (event, path, value, reason) in cases {
        refused(event, path, value, reason);
    }
    let mut both = serde_json::to_value(m()).unwrap();
    both["data"]["deletedAt"] = json!(5);
    both["data"]["deletedBy"] = json!("lab-7");
    let e = serde_json::from_value::<RoomEvent>(both).unwrap_err().to_string();
    assert!(e.contains("is deleted but keeps a text"), "{e}");
    let mut missing = serde_json::to_value(read()).unwrap();
    missing["data"].as_object_mut().unwrap().remove("userId");
    let e = serde_json::from_value::<RoomEvent>(missing).unwrap_err().to_string();
    assert!(e.contains("missing field `userId`"), "{e}");
    let e = serde_json::from_value::<User>(json!({"id": "lab-7", "role": "GUEST"})).unwrap_err().to_string();
    assert!(e.contains("may not use labchat"), "{e}");
}
