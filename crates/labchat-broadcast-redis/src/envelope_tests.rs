use labchat_domain::{MessageText, Role};

use super::*;

fn room() -> RequestId {
    RequestId::parse("6751b6df1ad14eaa13a03313").unwrap()
}

fn message() -> Message {
    Message {
        id: MessageId::parse("6751b6df1ad14eaa13a03399").unwrap(),
        request_id: room(),
        seq: Some(Seq::new(42).unwrap()),
        sender_id: UserId::parse("teacher-1").unwrap(),
        sender_role: Role::Teacher,
        text: MessageText::parse("secret text", 100).unwrap(),
        created_at: Timestamp::from_unix_millis(1_700_000_000_123),
        client_message_id: Some(ClientMessageId::parse("c-1").unwrap()),
        delivered_to: vec![Receipt { user: UserId::parse("lab-1").unwrap(), at: Timestamp::from_unix_millis(5) }],
        read_by: vec![],
    }
}

#[test]
fn every_event_kind_round_trips_with_its_origin() {
    let events = [
        RoomEvent::MessagePosted(message()),
        RoomEvent::Delivered {
            request_id: room(),
            user_id: UserId::parse("lab-1").unwrap(),
            messages: vec![message().id],
            at: Timestamp::from_unix_millis(7),
        },
        RoomEvent::Read {
            request_id: room(),
            user_id: UserId::parse("lab-1").unwrap(),
            messages: vec![message().id],
            at: Timestamp::from_unix_millis(8),
        },
        RoomEvent::Typing { request_id: room(), user_id: UserId::parse("lab-1").unwrap(), role: Role::Lab },
        RoomEvent::MemberJoined { request_id: room(), user_id: UserId::parse("t|1").unwrap(), role: Role::Teacher },
        RoomEvent::MemberLeft { request_id: room(), user_id: UserId::parse("lab-1").unwrap() },
    ];
    for event in events {
        let bytes = encode("node-a", &event).unwrap();
        assert_eq!(decode(&bytes).unwrap(), Received { origin: "node-a".to_owned(), event });
    }
}

#[test]
fn the_envelope_is_versioned_and_carries_the_seq_of_messages() {
    let bytes = encode("n", &RoomEvent::MessagePosted(message())).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["origin"], "n");
    assert_eq!(json["seq"], 42);
    assert_eq!(json["event"]["type"], "message");
    assert_eq!(channel(room()), "labchat:room:6751b6df1ad14eaa13a03313");
}

#[test]
fn bad_envelopes_are_refused_without_quoting_the_payload() {
    let good: serde_json::Value =
        serde_json::from_slice(&encode("n", &RoomEvent::MessagePosted(message())).unwrap()).unwrap();
    let mut other_version = good.clone();
    other_version["v"] = 2.into();
    assert!(matches!(decode(other_version.to_string().as_bytes()), Err(EnvelopeError::Version(2))));
    let mut wrong_seq = good.clone();
    wrong_seq["seq"] = 41.into();
    assert!(matches!(decode(wrong_seq.to_string().as_bytes()), Err(EnvelopeError::Field("seq", _))));
    let mut bad_role = good.clone();
    bad_role["event"]["message"]["senderRole"] = "ADMIN".into();
    assert!(matches!(decode(bad_role.to_string().as_bytes()), Err(EnvelopeError::Field(_, _))));
    let mut no_ids = serde_json::to_value(serde_json::json!({
        "v": 1, "origin": "n",
        "event": {"type": "read", "requestId": room().to_hex(), "userId": "u", "messages": [], "at": 0}
    }))
    .unwrap();
    assert!(matches!(decode(no_ids.to_string().as_bytes()), Err(EnvelopeError::Field("messages", _))));
    no_ids["event"]["messages"] = serde_json::json!(["zz"]);
    assert!(matches!(decode(no_ids.to_string().as_bytes()), Err(EnvelopeError::Field("messages", _))));
    let mut text_as_number = good;
    text_as_number["event"]["message"]["text"] = serde_json::json!(["secret text"]);
    let e = decode(text_as_number.to_string().as_bytes()).unwrap_err();
    assert!(!e.to_string().contains("secret"), "{e}");
    assert!(decode(b"not json").is_err());
}
