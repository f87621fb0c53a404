//! Every `BAD_REQUEST` text the decoder produces, word for word: clients and tests match on them.

use serde_json::{Value, json};

use super::{MID, RID, dec};
use crate::protocol::{DecodeLimits, decode};

fn message_of(frame: &Value) -> String {
    match dec(frame.clone()) {
        Ok(i) => panic!("{frame} decoded to {i:?}"),
        Err(bad) => bad.message,
    }
}

#[test]
fn every_bad_frame_message_word_for_word() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([1]), "frame must be a JSON object"),
        (json!("x"), "frame must be a JSON object"),
        (json!({"data":{}}), "missing field event"),
        (json!({"event":7,"data":{}}), "field event must be a string"),
        (json!({"event":null,"data":{}}), "field event must be a string"),
        (
            json!({"event":"joinRoom","data":{},"id":1.5}),
            "field id must be a string of at most 64 characters or an integer",
        ),
        (
            json!({"event":"joinRoom","data":{},"id":"x".repeat(65)}),
            "field id must be a string of at most 64 characters or an integer",
        ),
        (json!({"event":3,"id":[1]}), "field id must be a string of at most 64 characters or an integer"),
        (json!({"event":"joinRoom"}), "missing field data"),
        (json!({"event":"joinRoom","data":null}), "field data must be an object"),
        (json!({"event":"nope"}), "missing field data"),
        (
            json!({"event":"nope","data":{}}),
            r#"unknown event "nope" (expected joinRoom, leaveRoom, message, ackMessages, readMessages, history, refreshToken, inbox, subscribeInbox, unsubscribeInbox, typing, members, editMessage or deleteMessage)"#,
        ),
        (
            json!({"event":"a\"b","data":{}}),
            r#"unknown event "a\"b" (expected joinRoom, leaveRoom, message, ackMessages, readMessages, history, refreshToken, inbox, subscribeInbox, unsubscribeInbox, typing, members, editMessage or deleteMessage)"#,
        ),
        (json!({"event":"refreshToken","data":{}}), "field data.token must be a non-empty string"),
        (json!({"event":"inbox","data":{"limit":0}}), "field data.limit must be an integer from 1 to 100"),
        (json!({"event":"inbox","data":{"limit":101}}), "field data.limit must be an integer from 1 to 100"),
        (json!({"event":"inbox","data":{"limit":2.5}}), "field data.limit must be an integer from 1 to 100"),
        (json!({"event":"inbox","data":{"limit":"5"}}), "field data.limit must be an integer from 1 to 100"),
        (
            json!({"event":"inbox","data":{"before":"abc"}}),
            "field data.before must be the `next` cursor of an earlier inbox reply",
        ),
        (
            json!({"event":"inbox","data":{"before":5}}),
            "field data.before must be the `next` cursor of an earlier inbox reply",
        ),
        (json!({"event":"refreshToken","data":{"token":""}}), "field data.token must be a non-empty string"),
        (json!({"event":"refreshToken","data":{"token":5}}), "field data.token must be a non-empty string"),
        (json!({"event":"leaveRoom","data":{}}), "missing field data.requestId"),
        (json!({"event":"typing","data":{}}), "missing field data.requestId"),
        (
            json!({"event":"typing","data":{"requestId":"xyz"}}),
            "field data.requestId: an id must be 24 hexadecimal characters, got 3 characters",
        ),
        (json!({"event":"leaveRoom","data":{"requestId":null}}), "field data.requestId must be a 24-hex string"),
        (json!({"event":"leaveRoom","data":{"resquestId":12}}), "field data.requestId must be a 24-hex string"),
        (
            json!({"event":"leaveRoom","data":{"requestId":"abc"}}),
            "field data.requestId: an id must be 24 hexadecimal characters, got 3 characters",
        ),
        (
            json!({"event":"leaveRoom","data":{"requestId":"z".repeat(24)}}),
            "field data.requestId: an id must be 24 hexadecimal characters, found a non-hex character",
        ),
        (
            json!({"event":"leaveRoom","data":{"requestId":RID,"resquestId":MID}}),
            "fields data.requestId and data.resquestId disagree; send one of them",
        ),
        (
            json!({"event":"leaveRoom","data":{"requestId":RID,"resquestId":null}}),
            "fields data.requestId and data.resquestId disagree; send one of them",
        ),
        (json!({"event":"joinRoom","data":{"requestId":RID,"after":7}}), "field data.after must be a 24-hex string"),
        (
            json!({"event":"joinRoom","data":{"requestId":RID,"after":"x"}}),
            "field data.after: an id must be 24 hexadecimal characters, got 1 characters",
        ),
        (json!({"event":"message","data":{"requestId":RID}}), "missing field data.message"),
        (json!({"event":"message","data":{"requestId":RID,"message":null}}), "field data.message must be a string"),
        (json!({"event":"message","data":{"requestId":RID,"message":["hi"]}}), "field data.message must be a string"),
        (
            json!({"event":"message","data":{"requestId":RID,"message":" \n"}}),
            "field data.message: message must not be empty",
        ),
        (
            json!({"event":"message","data":{"requestId":RID,"message":"é".repeat(4001)}}),
            "field data.message: message must be at most 4000 characters, got 4001",
        ),
        (
            json!({"event":"message","data":{"requestId":RID,"message":"x","clientMessageId":1}}),
            "field data.clientMessageId must be a string",
        ),
        (
            json!({"event":"message","data":{"requestId":RID,"message":"x","clientMessageId":""}}),
            "field data.clientMessageId: clientMessageId must not be empty",
        ),
        (
            json!({"event":"message","data":{"requestId":RID,"message":"x","clientMessageId":"c".repeat(65)}}),
            "field data.clientMessageId: clientMessageId must be at most 64 characters, got 65",
        ),
        (
            json!({"event":"ackMessages","data":{"requestId":RID}}),
            "field data.messages must be an array of message ids",
        ),
        (
            json!({"event":"ackMessages","data":{"requestId":RID,"messages":MID}}),
            "field data.messages must be an array of message ids",
        ),
        (
            json!({"event":"ackMessages","data":{"requestId":RID,"messages":[]}}),
            "field data.messages must hold 1 to 500 ids, got 0",
        ),
        (
            json!({"event":"readMessages","data":{"requestId":RID,"messages":vec![MID; 501]}}),
            "field data.messages must hold 1 to 500 ids, got 501",
        ),
        (
            json!({"event":"readMessages","data":{"requestId":RID,"messages":[MID, 4]}}),
            "field data.messages[1] must be a 24-hex string",
        ),
        (
            json!({"event":"ackMessages","data":{"requestId":RID,"messages":["nope"]}}),
            "field data.messages[0]: an id must be 24 hexadecimal characters, got 4 characters",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"before":false}}),
            "field data.before must be a 24-hex string",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"before":"0"}}),
            "field data.before: an id must be 24 hexadecimal characters, got 1 characters",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"limit":"20"}}),
            "field data.limit must be a positive integer",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"limit":0}}),
            "field data.limit: a history limit must be between 1 and 10000, got 0",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"limit":-3}}),
            "field data.limit: a history limit must be between 1 and 10000, got 0",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"limit":2.5}}),
            "field data.limit: a history limit must be between 1 and 10000, got 0",
        ),
        (
            json!({"event":"history","data":{"requestId":RID,"limit":10_001}}),
            "field data.limit: a history limit must be between 1 and 10000, got 10001",
        ),
    ];
    for (frame, want) in cases {
        assert_eq!(message_of(&frame), want, "{frame}");
    }
    let not_json = decode("{\"event\":", &DecodeLimits::default()).unwrap_err().message;
    assert_eq!(not_json, "frame is not valid JSON: EOF while parsing a value at line 1 column 9");
}

#[test]
fn the_first_invalid_field_is_named_in_a_fixed_order() {
    // The room is checked before the other fields, and its error carries no room.
    let err = dec(json!({"event":"message","data":{"requestId":"x","message":""}})).unwrap_err();
    assert_eq!(
        (err.message.as_str(), err.request_id),
        ("field data.requestId: an id must be 24 hexadecimal characters, got 1 characters", None)
    );
    let cases = [
        (json!({"event":"message","data":{"requestId":RID,"message":"","clientMessageId":""}}), "field data.message"),
        (json!({"event":"history","data":{"requestId":RID,"before":1,"limit":0}}), "field data.before"),
        (json!({"event":"joinRoom","data":{},"id":[]}), "field id"),
        (json!({"event":1,"id":[]}), "field id"),
    ];
    for (frame, prefix) in cases {
        let msg = message_of(&frame);
        assert!(msg.starts_with(prefix), "{frame}: {msg}");
    }
}

#[test]
fn absent_and_null_optional_fields_are_the_same() {
    for frame in [
        json!({"event":"joinRoom","data":{"requestId":RID,"after":null},"id":null}),
        json!({"event":"message","data":{"requestId":RID,"message":"x","clientMessageId":null}}),
        json!({"event":"history","data":{"requestId":RID,"before":null,"limit":null}}),
    ] {
        let inbound = dec(frame.clone()).unwrap();
        let mut without = frame.clone();
        let obj = without.as_object_mut().unwrap();
        obj.remove("id");
        obj["data"].as_object_mut().unwrap().retain(|_, v| !v.is_null());
        assert_eq!(Ok(inbound), dec(without), "{frame}");
    }
}
