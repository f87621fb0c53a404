//! The names of events: one home each, and every list derived from it.

use labchat_domain::RoomEventKind;
use serde_json::json;

use super::{RID, dec};
use crate::protocol::{CLIENT_EVENTS, ClientEvent, ServerEvent, UnknownEvent, known_event};

#[test]
fn client_event_names_round_trip_and_are_the_protocol_s() {
    assert_eq!(
        CLIENT_EVENTS,
        [
            "joinRoom",
            "leaveRoom",
            "message",
            "ackMessages",
            "readMessages",
            "history",
            "refreshToken",
            "inbox",
            "subscribeInbox",
            "unsubscribeInbox",
            "typing",
            "members",
            "editMessage",
            "deleteMessage"
        ]
    );
    for (event, name) in ClientEvent::ALL.into_iter().zip(CLIENT_EVENTS) {
        assert_eq!((event.as_str(), event.to_string()), (name, name.to_owned()));
        assert_eq!(name.parse::<ClientEvent>(), Ok(event));
        assert_eq!(known_event(name), name);
    }
    for other in ["", "JoinRoom", "joinroom", "ack", "roomHistory", "nope"] {
        assert_eq!(other.parse::<ClientEvent>(), Err(UnknownEvent(other.to_owned())));
        assert_eq!(known_event(other), "unknown");
    }
}

#[test]
fn the_unknown_event_message_lists_every_client_event() {
    assert_eq!(
        UnknownEvent("x".into()).to_string(),
        r#"unknown event "x" (expected joinRoom, leaveRoom, message, ackMessages, readMessages, history, refreshToken, inbox, subscribeInbox, unsubscribeInbox, typing, members, editMessage or deleteMessage)"#
    );
}

#[test]
fn a_decoded_frame_names_its_event_and_its_command_agrees() {
    let data = |event: ClientEvent| match event {
        ClientEvent::RefreshToken => json!({"token": "a.b.c"}),
        ClientEvent::Message => json!({"requestId": RID, "message": "hi"}),
        ClientEvent::EditMessage => json!({"requestId": RID, "messageId": RID, "message": "hi"}),
        ClientEvent::DeleteMessage => json!({"requestId": RID, "messageId": RID}),
        ClientEvent::AckMessages | ClientEvent::ReadMessages => json!({"requestId": RID, "messages": [RID]}),
        ClientEvent::Inbox | ClientEvent::SubscribeInbox | ClientEvent::UnsubscribeInbox => json!({}),
        _ => json!({"requestId": RID}),
    };
    for event in ClientEvent::ALL {
        let inbound = dec(json!({"event": event.as_str(), "data": data(event)})).unwrap();
        assert_eq!((inbound.event, inbound.command.event()), (event, event));
    }
}

#[test]
fn server_event_names_are_the_protocol_s_and_room_events_come_from_the_domain() {
    let names: Vec<&str> = ServerEvent::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "ack",
            "error",
            "roomHistory",
            "message",
            "messageEdited",
            "messageDeleted",
            "messagesDelivered",
            "messageReads",
            "inboxUpdate",
            "typing",
            "memberJoined",
            "memberLeft",
            "membersChanged"
        ]
    );
    for kind in RoomEventKind::ALL {
        assert!(names.contains(&kind.as_str()), "{kind} is a server event");
    }
    assert_eq!(ServerEvent::RoomHistory.to_string(), "roomHistory");
}
