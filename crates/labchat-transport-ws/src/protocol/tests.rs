//! Tests of the wire format: every client event decodes, bad frames say what is wrong, and the
//! encoders' frames.

use labchat_domain::{
    ClientMessageId, Cursor, HistoryLimit, InboxCursor, InboxLimit, InboxQuery, MessageId, MessageText, Timestamp,
};
use proptest::prelude::*;
use serde_json::json;

use super::*;

mod events;
mod history;
mod messages;

const RID: &str = "6751b6df1ad14eaa13a03313";
const MID: &str = "6751b5e11ad14eaa13a032fa";

fn dec(v: Value) -> Result<Inbound, Box<BadFrame>> {
    decode(&v.to_string(), &DecodeLimits::default())
}

/// A cursor the server could have issued.
const INBOX_CURSOR: &str = "i1.0000019383b0a1236751b6df1ad14eaa13a03313";

#[test]
fn decodes_every_event() {
    let rid = RequestId::parse(RID).unwrap();
    let mid = MessageId::parse(MID).unwrap();
    let cases = [
        (
            json!({"event":"joinRoom","data":{"requestId":RID}}),
            Command::JoinRoom(JoinRoom { request_id: rid, after: None }),
        ),
        (
            json!({"event":"joinRoom","data":{"requestId":RID,"after":MID}}),
            Command::JoinRoom(JoinRoom { request_id: rid, after: Some(mid) }),
        ),
        (json!({"event":"leaveRoom","data":{"resquestId":RID}}), Command::LeaveRoom(LeaveRoom { request_id: rid })),
        (
            json!({"event":"message","data":{"requestId":RID,"message":"hi","clientMessageId":"c-1","senderId":"x"}}),
            Command::Message(Message {
                request_id: rid,
                text: MessageText::parse("hi", 10).unwrap(),
                client_message_id: Some(ClientMessageId::parse("c-1").unwrap()),
            }),
        ),
        (
            json!({"event":"ackMessages","data":{"requestId":RID,"messages":[MID]}}),
            Command::AckMessages(Receipts { request_id: rid, ids: vec![mid] }),
        ),
        (
            json!({"event":"readMessages","data":{"requestId":RID,"messages":[MID]}}),
            Command::ReadMessages(Receipts { request_id: rid, ids: vec![mid] }),
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"before":MID,"limit":20}}),
            Command::History(History {
                request_id: rid,
                cursor: Cursor::Before(mid),
                limit: Some(HistoryLimit::new(20).unwrap()),
            }),
        ),
        (
            json!({"event":"refreshToken","data":{"token":"a.b.c"}}),
            Command::RefreshToken(RefreshToken { token: "a.b.c".into() }),
        ),
        (json!({"event":"inbox","data":{}}), Command::Inbox(Inbox { query: InboxQuery::default() })),
        (
            json!({"event":"inbox","data":{"limit":7,"before":INBOX_CURSOR}}),
            Command::Inbox(Inbox {
                query: InboxQuery {
                    limit: InboxLimit::new(7).unwrap(),
                    before: Some(InboxCursor::parse(INBOX_CURSOR).unwrap()),
                },
            }),
        ),
        (json!({"event":"subscribeInbox","data":{}}), Command::SubscribeInbox(SubscribeInbox)),
        (json!({"event":"unsubscribeInbox","data":{"x":1}}), Command::UnsubscribeInbox(UnsubscribeInbox)),
        (json!({"event":"typing","data":{"requestId":RID}}), Command::Typing(Typing { request_id: rid })),
        (
            json!({"event":"members","data":{"requestId":RID}}),
            Command::Members(Members { request_id: rid, after: None }),
        ),
        (
            json!({"event":"members","data":{"requestId":RID,"after":"lab|1"}}),
            Command::Members(Members { request_id: rid, after: Some(labchat_domain::UserId::parse("lab|1").unwrap()) }),
        ),
    ];
    for (frame, want) in cases {
        assert_eq!(dec(frame.clone()).map(|i| i.command), Ok(want), "{frame}");
    }
}

#[test]
fn correlation_ids_are_strings_or_integers() {
    let f = |id: Value| dec(json!({"event":"leaveRoom","data":{"requestId":RID},"id":id}));
    assert_eq!(f(json!("abc")).unwrap().id, Some(json!("abc")));
    assert_eq!(f(json!(42)).unwrap().id, Some(json!(42)));
    assert_eq!(f(json!(-1)).unwrap().id, Some(json!(-1)));
    for bad in [json!(1.5), json!({}), json!([1]), json!(true), json!("x".repeat(65))] {
        let err = f(bad.clone()).unwrap_err();
        assert_eq!((err.id, err.event.as_deref()), (None, Some("leaveRoom")), "{bad}");
    }
}

#[test]
fn bad_frames_say_what_is_wrong() {
    let cases = [
        (json!([1]), "must be a JSON object"),
        (json!({"data":{}}), "missing field event"),
        (json!({"event":7,"data":{}}), "event must be a string"),
        (json!({"event":"nope","data":{}}), "unknown event"),
        (json!({"event":"joinRoom"}), "missing field data"),
        (json!({"event":"joinRoom","data":[]}), "data must be an object"),
        (json!({"event":"joinRoom","data":{}}), "missing field data.requestId"),
        (json!({"event":"joinRoom","data":{"requestId":"xyz"}}), "24 hexadecimal"),
        (json!({"event":"joinRoom","data":{"requestId":12}}), "must be a 24-hex string"),
        (json!({"event":"joinRoom","data":{"requestId":RID,"resquestId":MID}}), "disagree"),
        (json!({"event":"message","data":{"requestId":RID}}), "missing field data.message"),
        (json!({"event":"message","data":{"requestId":RID,"message":"   "}}), "must not be empty"),
        (json!({"event":"message","data":{"requestId":RID,"message":"x".repeat(4001)}}), "at most 4000"),
        (
            json!({"event":"message","data":{"requestId":RID,"message":"x","clientMessageId":"c".repeat(65)}}),
            "at most 64",
        ),
        (json!({"event":"ackMessages","data":{"requestId":RID,"messages":[]}}), "1 to 500"),
        (json!({"event":"ackMessages","data":{"requestId":RID,"messages":vec![MID; 501]}}), "1 to 500"),
        (json!({"event":"readMessages","data":{"requestId":RID,"messages":["nope"]}}), "messages[0]"),
        (json!({"event":"readMessages","data":{"requestId":RID}}), "must be an array"),
        (json!({"event":"history","data":{"requestId":RID,"limit":0}}), "limit"),
        (json!({"event":"refreshToken","data":{}}), "token"),
    ];
    for (frame, needle) in cases {
        let err = dec(frame.clone()).unwrap_err();
        assert!(err.message.contains(needle), "{frame}: {}", err.message);
    }
    assert!(decode("not json", &DecodeLimits::default()).unwrap_err().message.contains("not valid JSON"));
    let nested = "[".repeat(100_000);
    assert!(decode(&nested, &DecodeLimits::default()).is_err());
}

#[test]
fn a_number_out_of_range_is_refused_naming_the_frames_id_and_event() {
    let limits = DecodeLimits::default();
    for (text, id, event) in [
        (r#"{"event":"history","data":{"requestId":"x","limit":1e400},"id":7}"#, Some(json!(7)), Some("history")),
        (r#"{"id":"a-1","data":{"n":-1e400},"event":"typing"}"#, Some(json!("a-1")), Some("typing")),
        // The id itself out of range: nothing can be named.
        (r#"{"event":"typing","data":{},"id":1e400}"#, None, None),
    ] {
        let err = decode(text, &limits).unwrap_err();
        assert!(err.message.contains("not valid JSON"), "{text}: {}", err.message);
        assert_eq!((err.id, err.event.as_deref()), (id, event), "{text}");
    }
    let err = decode(r#"{"event":"typing","id":3,"data":{"#, &limits).unwrap_err();
    assert_eq!((err.id, err.event), (None, None), "a frame cut short names nothing");
}

#[test]
fn a_valid_id_is_kept_even_when_the_event_is_bad() {
    let err = dec(json!({"id": 9, "data": {}})).unwrap_err();
    assert_eq!((err.id, err.event), (Some(json!(9)), None));
    let err = dec(json!({"id": 9, "event": 3})).unwrap_err();
    assert_eq!(err.id, Some(json!(9)));
    let err = dec(json!({"id": [9], "event": "joinRoom"})).unwrap_err();
    assert_eq!((err.id, err.event.as_deref()), (None, Some("joinRoom")));
}

#[test]
fn bad_frame_keeps_the_context_it_could_read() {
    let err = dec(json!({"event":"message","id":"q1","data":{"requestId":RID,"message":""}})).unwrap_err();
    assert_eq!(err.event.as_deref(), Some("message"));
    assert_eq!(err.id, Some(json!("q1")));
    assert_eq!(err.request_id, Some(RequestId::parse(RID).unwrap()));
}

#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(rfc3339(Timestamp::from_unix_millis(0)), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(Timestamp::from_unix_millis(1_733_407_391_120)), "2024-12-05T14:03:11.120Z");
    assert_eq!(rfc3339(Timestamp::from_unix_millis(-1)), "1969-12-31T23:59:59.999Z");
}

/// What `retryable` tells a client to do, per code and failed frame.
#[test]
fn retryable_means_send_the_frame_again() {
    let rid = RequestId::parse(RID).unwrap();
    let send = |cid: Option<&str>| {
        Command::Message(super::Message {
            request_id: rid,
            text: MessageText::parse("hi", 10).unwrap(),
            client_message_id: cid.map(|c| ClientMessageId::parse(c).unwrap()),
        })
    };
    let (with_id, without_id) = (send(Some("0b6c0a1e-5b7e-4d0c-9a57-2f1d0c7e9b11")), send(None));
    let join = Command::JoinRoom(super::JoinRoom { request_id: rid, after: None });
    use ErrorCode::*;
    let cases: [(ErrorCode, Option<&Command>, bool); 14] = [
        (Unavailable, Some(&with_id), true),
        (Unavailable, Some(&without_id), false),
        (Unavailable, Some(&join), true),
        (Internal, Some(&with_id), true),
        (Internal, Some(&without_id), false),
        (Internal, Some(&join), false),
        (RateLimited, Some(&without_id), true),
        (RateLimited, None, true),
        (Unauthorized, Some(&Command::RefreshToken(super::RefreshToken { token: "t".into() })), true),
        (BadRequest, Some(&with_id), false),
        (Forbidden, Some(&with_id), false),
        (TokenExpired, None, false),
        (UnknownAfter, Some(&join), false),
        (ClientMessageIdReused, Some(&with_id), false),
    ];
    for (code, command, want) in cases {
        assert_eq!(code.retryable(command), want, "{code:?} on {command:?}");
    }
}

#[test]
fn error_frames_carry_code_context_and_retryability() {
    let id = json!(7);
    let text = error(&ErrorFrame {
        code: ErrorCode::Unavailable,
        message: "store down",
        event: Some("message"),
        request_id: Some(RequestId::parse(RID).unwrap()),
        id: Some(&id),
        retry_after_ms: None,
        retryable: true,
    });
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"event":"error","id":7,"data":{"code":"UNAVAILABLE","message":"store down","event":"message","requestId":RID,"retryable":true}})
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,30}".prop_map(Value::String),
        Just(json!(RID)),
        Just(json!(MID)),
        prop::sample::select(CLIENT_EVENTS.to_vec()).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "event",
                    "data",
                    "id",
                    "requestId",
                    "resquestId",
                    "message",
                    "messages",
                    "after",
                    "before",
                    "limit",
                    "clientMessageId",
                    "token",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode(&text, &DecodeLimits::default());
    }

    #[test]
    fn arbitrary_json_is_a_command_or_a_bad_request(v in arb_json()) {
        match dec(v.clone()) {
            Ok(inbound) => {
                // A command was only produced from an object with a known event and an object data.
                let obj = v.as_object().unwrap();
                prop_assert_eq!(obj.get("event"), Some(&json!(inbound.event.as_str())));
                prop_assert_eq!(inbound.event, inbound.command.event());
                prop_assert!(obj.get("data").is_some_and(Value::is_object));
            }
            Err(bad) => prop_assert!(!bad.message.is_empty()),
        }
    }
}
