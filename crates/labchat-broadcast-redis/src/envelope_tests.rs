//! Tests of the envelope format: every room event kind round trips with its origin, and bad
//! envelopes are refused with a reason.

use labchat_domain::{
    ClientMessageId, Message, MessageId, MessageRecord, MessageText, Receipt, RequestId, Role, Timestamp, UserId,
};
use serde_json::error::Category;

use super::*;

fn room() -> RequestId {
    RequestId::parse("6751b6df1ad14eaa13a03313").unwrap()
}

fn message() -> Message {
    Message::restore(MessageRecord {
        id: MessageId::parse("6751b6df1ad14eaa13a03399").unwrap(),
        request_id: room(),
        seq: Some(Seq::new(42).unwrap()),
        sender_id: UserId::parse("teacher-1").unwrap(),
        sender_role: Role::Teacher,
        text: Some(MessageText::parse("secret text", 100).unwrap()),
        created_at: Timestamp::from_unix_millis(1_700_000_000_123),
        client_message_id: Some(ClientMessageId::parse("c-1").unwrap()),
        delivered_to: vec![Receipt { user: UserId::parse("lab-1").unwrap(), at: Timestamp::from_unix_millis(5) }],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

fn read() -> RoomEvent {
    RoomEvent::Read {
        request_id: room(),
        user_id: UserId::parse("lab-1").unwrap(),
        messages: vec![message().id],
        at: Timestamp::from_unix_millis(8),
    }
}

const V2: EnvelopeVersion = EnvelopeVersion::OLDEST;
const V3: EnvelopeVersion = EnvelopeVersion::NEWEST;

fn good(event: RoomEvent) -> serde_json::Value {
    serde_json::from_slice(&encode(V2, "n", &event).unwrap()).unwrap()
}

fn decode_value(json: &serde_json::Value) -> Result<Received, EnvelopeError> {
    decode(json.to_string().as_bytes(), Seal::None)
}

#[test]
fn every_event_kind_round_trips_with_its_origin() {
    let events = [
        RoomEvent::MessagePosted(message()),
        RoomEvent::MessagePosted(Message::restore(MessageRecord { seq: None, ..message().to_record() }).unwrap()),
        RoomEvent::Delivered {
            request_id: room(),
            user_id: UserId::parse("lab-1").unwrap(),
            messages: vec![message().id],
            at: Timestamp::from_unix_millis(7),
        },
        read(),
        RoomEvent::Typing { request_id: room(), user_id: UserId::parse("lab-1").unwrap(), role: Role::Lab },
        RoomEvent::MemberJoined { request_id: room(), user_id: UserId::parse("t|1").unwrap(), role: Role::Teacher },
        RoomEvent::MemberLeft { request_id: room(), user_id: UserId::parse("lab-1").unwrap() },
    ];
    for event in events {
        for version in [V2, V3] {
            let bytes = encode(version, "node-a", &event).unwrap();
            let event = event.clone();
            assert_eq!(decode(&bytes, Seal::Verified).unwrap(), Received { origin: "node-a".to_owned(), event });
        }
    }
}

#[test]
fn the_envelope_is_versioned_and_carries_the_seq_of_messages() {
    let json = good(RoomEvent::MessagePosted(message()));
    assert_eq!(json["v"], 2);
    assert_eq!(json["origin"], "n");
    assert_eq!(json["seq"], 42);
    assert_eq!(json["event"]["type"], "messagePosted");
    assert_eq!(json["event"]["data"]["seq"], 42);
    let receipts = good(read());
    assert_eq!(receipts["event"]["type"], "read");
    assert!(receipts.get("seq").is_none(), "{receipts}");
}

#[test]
fn the_window_is_the_previous_version_and_this_one() {
    assert_eq!((V2.get(), V3.get()), (2, 3));
    assert_eq!(EnvelopeVersion::default(), V2, "the previous release reads what a node writes by default");
    assert_eq!(EnvelopeVersion::new(3), Ok(V3));
    for v in [0, 1, 4] {
        assert_eq!(EnvelopeVersion::new(v), Err(UnknownVersion(v)));
    }
    assert!(V3.is_authenticated() && !V2.is_authenticated());
    let json: serde_json::Value = serde_json::from_slice(&encode(V3, "n", &read()).unwrap()).unwrap();
    assert_eq!(json["v"], 3);
}

#[test]
fn the_previous_releases_envelope_is_read_sealed_or_not() {
    // Exactly the bytes a node of the previous release publishes for message().
    let previous = concat!(
        r#"{"v":2,"origin":"old","seq":42,"event":{"type":"messagePosted","data":{"id":"6751b6df1ad14eaa13a03399","#,
        r#""requestId":"6751b6df1ad14eaa13a03313","seq":42,"senderId":"teacher-1","senderRole":"TEACHER","#,
        r#""text":"secret text","createdAt":1700000000123,"clientMessageId":"c-1","deliveredTo":[{"user":"lab-1","at":5}]}}}"#
    )
    .as_bytes();
    let expected = Received { origin: "old".to_owned(), event: RoomEvent::MessagePosted(message()) };
    assert_eq!(decode(previous, Seal::None).unwrap(), expected);
    assert_eq!(decode(previous, Seal::Verified).unwrap(), expected);
    assert_eq!(&encode(V2, "old", &RoomEvent::MessagePosted(message())).unwrap()[..], previous);
}

#[test]
fn a_version_3_envelope_needs_a_mac() {
    let bytes = encode(V3, "n", &read()).unwrap();
    assert!(matches!(decode(&bytes, Seal::None), Err(EnvelopeError::Unsigned)));
    assert!(decode(&bytes, Seal::Unchecked).is_ok());
}

#[test]
fn other_versions_are_refused_before_their_event_is_read() {
    // A version 1 envelope exactly as a node of the previous release wrote it.
    let v1 = serde_json::json!({
        "v": 1, "origin": "old", "seq": 42,
        "event": {"type": "message", "message": {
            "id": "6751b6df1ad14eaa13a03399", "requestId": "6751b6df1ad14eaa13a03313", "seq": 42,
            "senderId": "teacher-1", "senderRole": "TEACHER", "text": "secret text", "createdAt": 1,
            "clientMessageId": null, "deliveredTo": [], "readBy": []
        }}
    });
    assert!(matches!(decode_value(&v1), Err(EnvelopeError::Version(1))));
    for v in [0, 4, u64::from(u32::MAX), u64::MAX] {
        let mut other = good(RoomEvent::MessagePosted(message()));
        other["v"] = v.into();
        assert!(matches!(decode_value(&other), Err(EnvelopeError::Version(got)) if got == v), "{v}");
    }
    let mut no_version = good(read());
    no_version.as_object_mut().unwrap().remove("v");
    assert!(matches!(decode_value(&no_version), Err(EnvelopeError::Json(Category::Data, ..))));
}

#[test]
fn the_seq_beside_the_event_must_be_the_messages() {
    let mut wrong_seq = good(RoomEvent::MessagePosted(message()));
    wrong_seq["seq"] = 41.into();
    assert!(matches!(decode_value(&wrong_seq), Err(EnvelopeError::Field("seq", _))));
    let mut missing_seq = good(RoomEvent::MessagePosted(message()));
    missing_seq.as_object_mut().unwrap().remove("seq");
    assert!(matches!(decode_value(&missing_seq), Err(EnvelopeError::Field("seq", _))));
    let mut seq_on_receipts = good(read());
    seq_on_receipts["seq"] = 1.into();
    assert!(matches!(decode_value(&seq_on_receipts), Err(EnvelopeError::Field("seq", _))));
}

#[test]
fn bad_envelopes_are_refused_without_quoting_the_payload() {
    let message = || good(RoomEvent::MessagePosted(message()));
    let data = |mut json: serde_json::Value, key: &str, value: serde_json::Value| {
        json["event"]["data"][key] = value;
        json
    };
    let refused = [
        ("bad role", data(message(), "senderRole", "ADMIN".into())),
        ("blank text", data(message(), "text", " ".into())),
        ("bad message id", data(message(), "id", "zz".into())),
        ("bad user id", data(message(), "senderId", "".into())),
        ("seq 0", data(message(), "seq", 0.into())),
        ("text not a string", data(message(), "text", serde_json::json!(["secret text"]))),
        ("no receipts", data(good(read()), "messages", serde_json::json!([]))),
        ("bad receipt id", data(good(read()), "messages", serde_json::json!(["zz"]))),
        ("unknown event", {
            let mut json = good(read());
            json["event"]["type"] = "secret text".into();
            json
        }),
        ("no event", {
            let mut json = good(read());
            json.as_object_mut().unwrap().remove("event");
            json
        }),
    ];
    for (case, json) in refused {
        let e = decode_value(&json).unwrap_err();
        assert!(matches!(e, EnvelopeError::Json(Category::Data, ..)), "{case}: {e:?}");
        assert!(!e.to_string().contains("secret"), "{case}: {e}");
    }
    assert!(matches!(decode(b"not json", Seal::None), Err(EnvelopeError::Json(Category::Syntax, ..))));
    let cut = b"{\"v\":2,\"origin\":\"n\",\"event\":";
    assert!(matches!(decode(cut, Seal::None), Err(EnvelopeError::Json(Category::Eof, ..))));
}

#[test]
fn the_previous_release_reads_a_sealed_version_2_envelope_as_an_unsealed_one() {
    // The previous release knows no seal: it decodes the payload as it comes, `mac` key included,
    // with this same version 2 decoder (whose fields ignore keys they do not know).
    let secrets = crate::auth::BackplaneSecrets { current: Some(b"0123456789abcdef".to_vec()), previous: None };
    let keys = crate::auth::Keys::new(&secrets, false).unwrap();
    let plain = encode(V2, "n", &RoomEvent::MessagePosted(message())).unwrap();
    let sealed = keys.seal(&plain).into_owned();
    assert!(sealed.starts_with(b"{\"mac\":\""), "{}", String::from_utf8_lossy(&sealed));
    assert_eq!(decode(&sealed, Seal::None).unwrap(), decode(&plain, Seal::None).unwrap());
}
