//! The stored documents and their mapping to and from domain types. Pure: no I/O.

use std::collections::HashMap;

use labchat_domain::{
    ClientMessageId, Message, MessageId, MessageRecord, MessageText, ObjectIdBytes, Receipt, ReceiptKind, Request,
    RequestId, Role, Seq, Timestamp, UserId,
};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, DateTime, Document};
use serde::{Deserialize, Serialize};

/// A message as stored (see the crate docs for the fields).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageDoc {
    #[serde(rename = "_id")]
    pub(crate) id: ObjectId,
    pub(crate) order: String,
    pub(crate) request_id: String,
    /// The message's seq in its room; absent only in documents stored before seqs existed (the
    /// start-up migration gives them one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<i64>,
    pub(crate) sender_id: String,
    pub(crate) sender_role: String,
    /// Absent exactly when the message was deleted (the text is removed, not hidden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    pub(crate) created_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_message_id: Option<String>,
    pub(crate) idem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) edited_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deleted_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deleted_by: Option<String>,
}

/// Only a message document's `seq`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
pub(crate) struct SeqOnly {
    #[serde(default)]
    pub(crate) seq: Option<i64>,
}

/// The stored form of a seq.
pub(crate) fn stored_seq(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

/// The seq of a stored `seq` field; fails on data labchat did not write.
pub(crate) fn parse_seq(stored: Option<i64>) -> Result<Seq, String> {
    let n = stored.ok_or("no seq")?;
    u64::try_from(n).ok().and_then(|n| Seq::new(n).ok()).ok_or_else(|| format!("bad seq {n}"))
}

/// Only a document's ObjectId `_id`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
pub(crate) struct IdOnly {
    #[serde(rename = "_id")]
    pub(crate) id: ObjectId,
}

/// A receipt as stored (see the crate docs for the fields).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReceiptDoc {
    #[serde(rename = "_id")]
    pub(crate) id: String,
    pub(crate) message_id: String,
    pub(crate) request_id: String,
    pub(crate) kind: String,
    pub(crate) user_id: String,
    pub(crate) at: DateTime,
}

/// The ObjectId of a domain object id.
pub(crate) fn object_id(id: ObjectIdBytes) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

/// The domain message id of a stored ObjectId.
pub(crate) fn message_id(oid: ObjectId) -> MessageId {
    MessageId::from_object_id(ObjectIdBytes::from_bytes(oid.bytes()))
}

/// The idempotency key stored in `idem`: unique per (request, sender, client message id) when the
/// message has a client message id, else the message's own id. The sender's byte length keeps
/// the key unambiguous whatever characters the ids hold, and the two forms never collide (only
/// the first has a `:`).
pub(crate) fn idem_key(m: &Message) -> String {
    match m.idempotency_key() {
        Some(k) => format!(
            "{}:{}:{}:{}",
            k.request_id.to_hex(),
            k.sender_id.as_str().len(),
            k.sender_id.as_str(),
            k.client_message_id.as_str()
        ),
        None => m.id.to_hex(),
    }
}

impl MessageDoc {
    /// The document storing `m` (receipts are stored apart and are not part of it).
    pub(crate) fn from_message(m: &Message) -> Self {
        Self {
            id: object_id(m.id.object_id()),
            order: m.id.to_hex(),
            request_id: m.request_id.to_hex(),
            seq: m.seq.map(stored_seq),
            sender_id: m.sender_id.as_str().to_owned(),
            sender_role: m.sender_role.as_str().to_owned(),
            text: m.text().map(|t| t.as_str().to_owned()),
            created_at: DateTime::from_millis(m.created_at.unix_millis()),
            client_message_id: m.client_message_id.as_ref().map(|c| c.as_str().to_owned()),
            idem: idem_key(m),
            edited_at: m.edited_at().map(|at| DateTime::from_millis(at.unix_millis())),
            deleted_at: m.deletion().map(|d| DateTime::from_millis(d.at.unix_millis())),
            deleted_by: m.deletion().map(|d| d.by.as_str().to_owned()),
        }
    }

    /// The message this document stores, with no receipts. Fails on data labchat did not write,
    /// and on a document with no seq.
    pub(crate) fn into_message(self) -> Result<Message, String> {
        let id = message_id(self.id);
        let bad = |what: &str, e: &dyn std::fmt::Display| format!("message {id}: bad {what}: {e}");
        let at = |d: DateTime| Timestamp::from_unix_millis(d.timestamp_millis());
        Message::restore(MessageRecord {
            id,
            request_id: RequestId::parse(&self.request_id).map_err(|e| bad("requestId", &e))?,
            seq: Some(parse_seq(self.seq).map_err(|e| bad("seq", &e))?),
            sender_id: UserId::parse(self.sender_id).map_err(|e| bad("senderId", &e))?,
            sender_role: Role::parse(&self.sender_role).map_err(|e| bad("senderRole", &e))?,
            text: self.text.map(MessageText::restore).transpose().map_err(|e| bad("text", &e))?,
            created_at: at(self.created_at),
            client_message_id: self
                .client_message_id
                .map(ClientMessageId::parse)
                .transpose()
                .map_err(|e| bad("clientMessageId", &e))?,
            edited_at: self.edited_at.map(at),
            deleted_at: self.deleted_at.map(at),
            deleted_by: self.deleted_by.map(UserId::parse).transpose().map_err(|e| bad("deletedBy", &e))?,
            delivered_to: Vec::new(),
            read_by: Vec::new(),
        })
        .map_err(|e| e.to_string())
    }
}

/// The stored name of a receipt kind.
pub(crate) const fn kind_name(kind: ReceiptKind) -> &'static str {
    match kind {
        ReceiptKind::Delivered => "delivered",
        ReceiptKind::Read => "read",
    }
}

fn parse_kind(s: &str) -> Option<ReceiptKind> {
    match s {
        "delivered" => Some(ReceiptKind::Delivered),
        "read" => Some(ReceiptKind::Read),
        _ => None,
    }
}

impl ReceiptDoc {
    /// The receipt of `kind` of message `id` (of `request`) for `user` at `at`. Its `_id` is the
    /// same for every attempt to mark the same message, kind and user.
    pub(crate) fn new(request: RequestId, id: MessageId, kind: ReceiptKind, user: &UserId, at: Timestamp) -> Self {
        let message_id = id.to_hex();
        Self {
            id: format!("{message_id}:{}:{}", kind_name(kind), user.as_str()),
            message_id,
            request_id: request.to_hex(),
            kind: kind_name(kind).to_owned(),
            user_id: user.as_str().to_owned(),
            at: DateTime::from_millis(at.unix_millis()),
        }
    }
}

/// Puts the receipts on their messages: each message's receipts of each kind, oldest first (ties
/// by user id). Fails on data labchat did not write.
pub(crate) fn attach_receipts(messages: &mut [Message], receipts: Vec<ReceiptDoc>) -> Result<(), String> {
    let index: HashMap<String, usize> = messages.iter().enumerate().map(|(i, m)| (m.id.to_hex(), i)).collect();
    let mut lists: Vec<(Vec<Receipt>, Vec<Receipt>)> = vec![(Vec::new(), Vec::new()); messages.len()];
    for r in receipts {
        let Some(&i) = index.get(&r.message_id) else { continue };
        let kind = parse_kind(&r.kind).ok_or_else(|| format!("receipt {}: bad kind {:?}", r.id, r.kind))?;
        let user = UserId::parse(r.user_id).map_err(|e| format!("receipt {}: bad userId: {e}", r.id))?;
        let receipt = Receipt { user, at: Timestamp::from_unix_millis(r.at.timestamp_millis()) };
        match kind {
            ReceiptKind::Delivered => lists[i].0.push(receipt),
            ReceiptKind::Read => lists[i].1.push(receipt),
        }
    }
    for (m, (mut delivered_to, mut read_by)) in messages.iter_mut().zip(lists) {
        if delivered_to.is_empty() && read_by.is_empty() {
            continue;
        }
        for list in [&mut delivered_to, &mut read_by] {
            list.sort_by(|a, b| (a.at, &a.user).cmp(&(b.at, &b.user)));
        }
        *m = Message::restore(MessageRecord { delivered_to, read_by, ..m.to_record() }).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The request `id` as its document `doc` stores it, its creator read from `field` (see
/// [`creator_of`]). A document whose creator is missing, null or malformed gives a request
/// without a creator: no teacher owns it and lab staff may still act on it (answering an error
/// instead would tell teachers which requests exist, and lock lab staff out). That is logged as a
/// warning, with the request id and what is wrong, never the document.
pub(crate) fn request_of(id: RequestId, doc: &Document, field: &str) -> Request {
    let request = request_quietly(id, doc, field);
    if request.created_by().is_none() {
        let problem = creator_of(doc, field).err().unwrap_or_default();
        tracing::warn!(request_id = %id, %problem, "request without a valid creator: only lab staff may act on it");
    }
    request
}

/// As [`request_of`], without the warning (for listing many requests).
pub(crate) fn request_quietly(id: RequestId, doc: &Document, field: &str) -> Request {
    match creator_of(doc, field) {
        Ok(creator) => Request::new(id, creator),
        Err(_) => Request::without_creator(id),
    }
}

/// The creator of a request document: the value at `field` (a dotted path reaches into
/// sub-documents), an ObjectId (as its lowercase hex) or a string.
pub(crate) fn creator_of(request: &Document, field: &str) -> Result<UserId, String> {
    let mut value: Option<&Bson> = None;
    let mut doc = Some(request);
    for part in field.split('.') {
        value = doc.and_then(|d| d.get(part));
        doc = match value {
            Some(Bson::Document(d)) => Some(d),
            _ => None,
        };
    }
    let raw = match value {
        Some(Bson::ObjectId(oid)) => oid.to_hex(),
        Some(Bson::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "creator field {field:?} holds a {:?}, not an ObjectId or string",
                other.element_type()
            ));
        }
        None => return Err(format!("creator field {field:?} is missing")),
    };
    UserId::parse(raw).map_err(|e| format!("creator field {field:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn message(client: Option<&str>, sender: &str) -> Message {
        Message::restore(MessageRecord {
            id: MessageId::parse("6751b6df1ad14eaa13a03313").unwrap(),
            request_id: RequestId::parse("00000000000000000000abcd").unwrap(),
            seq: Some(Seq::new(3).unwrap()),
            sender_id: uid(sender),
            sender_role: Role::Teacher,
            text: Some(MessageText::parse("  hello  ", 100).unwrap()),
            created_at: Timestamp::from_unix_millis(1_733_400_000_123),
            client_message_id: client.map(|c| ClientMessageId::parse(c).unwrap()),
            delivered_to: vec![],
            read_by: vec![],
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
        })
        .unwrap()
    }

    #[test]
    fn creator_may_be_an_object_id_or_a_string() {
        let oid = ObjectId::parse_str("6751B6DF1AD14EAA13A03313".to_lowercase()).unwrap();
        let cases: [(Document, &str, Result<&str, ()>); 7] = [
            (doc! {"createdBy": oid}, "createdBy", Ok("6751b6df1ad14eaa13a03313")),
            (doc! {"createdBy": "teacher-1"}, "createdBy", Ok("teacher-1")),
            (doc! {"createdBy": "6751B6DF1AD14EAA13A03313"}, "createdBy", Ok("6751B6DF1AD14EAA13A03313")),
            (doc! {"owner": {"id": oid}}, "owner.id", Ok("6751b6df1ad14eaa13a03313")),
            (doc! {"createdBy": 42}, "createdBy", Err(())),
            (doc! {"createdBy": ""}, "createdBy", Err(())),
            (doc! {"other": "x"}, "createdBy", Err(())),
        ];
        for (d, field, want) in cases {
            let got = creator_of(&d, field);
            assert_eq!(got.as_ref().map(UserId::as_str).map_err(|_| ()), want, "{d:?} {field}");
        }
    }

    #[test]
    fn a_request_without_a_valid_creator_has_none() {
        let id = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        assert_eq!(request_of(id, &doc! {"createdBy": "t1"}, "createdBy"), Request::new(id, uid("t1")));
        for d in [
            doc! {"createdBy": null},
            doc! {"createdBy": 42},
            doc! {"createdBy": ""},
            doc! {"createdBy": ["t1"]},
            doc! {"other": "t1"},
        ] {
            assert_eq!(request_of(id, &d, "createdBy"), Request::without_creator(id), "{d:?}");
        }
    }

    #[test]
    fn messages_round_trip_through_documents() {
        for m in [message(None, "a"), message(Some("c-1"), "t:1")] {
            let d = MessageDoc::from_message(&m);
            assert_eq!(d.order, "6751b6df1ad14eaa13a03313");
            assert_eq!(d.request_id, "00000000000000000000abcd");
            assert_eq!(d.seq, Some(3));
            let bson_doc = mongodb::bson::to_document(&d).unwrap();
            assert_eq!(bson_doc.contains_key("clientMessageId"), m.client_message_id.is_some());
            let back: MessageDoc = mongodb::bson::from_document(bson_doc).unwrap();
            assert_eq!(back.into_message().unwrap(), m);
        }
    }

    #[test]
    fn idempotency_keys_are_unambiguous() {
        let plain = message(None, "a");
        assert_eq!(idem_key(&plain), "6751b6df1ad14eaa13a03313");
        let a = message(Some("b:c"), "a");
        let b = message(Some("c"), "a:b");
        assert_ne!(idem_key(&a), idem_key(&b));
        assert_eq!(idem_key(&a), "00000000000000000000abcd:1:a:b:c");
    }

    #[test]
    fn bad_stored_data_is_reported() {
        let mut d = MessageDoc::from_message(&message(None, "a"));
        d.sender_role = "ADMIN".into();
        assert!(d.clone().into_message().unwrap_err().contains("senderRole"));
        d.sender_role = "LAB".into();
        d.request_id = "nope".into();
        assert!(d.clone().into_message().unwrap_err().contains("requestId"));
        d.request_id = "00000000000000000000abcd".into();
        for seq in [None, Some(0), Some(-1)] {
            d.seq = seq;
            assert!(d.clone().into_message().unwrap_err().contains("seq"), "{seq:?}");
        }
    }

    #[test]
    fn receipts_attach_in_time_order() {
        let mut msgs = vec![message(None, "a")];
        let id = msgs[0].id;
        let r = msgs[0].request_id;
        let t = Timestamp::from_unix_millis;
        let docs = vec![
            ReceiptDoc::new(r, id, ReceiptKind::Delivered, &uid("c"), t(20)),
            ReceiptDoc::new(r, id, ReceiptKind::Read, &uid("b"), t(15)),
            ReceiptDoc::new(r, id, ReceiptKind::Delivered, &uid("b"), t(15)),
            ReceiptDoc::new(
                r,
                MessageId::parse("000000000000000000000001").unwrap(),
                ReceiptKind::Read,
                &uid("z"),
                t(1),
            ),
        ];
        assert_eq!(docs[0].id, "6751b6df1ad14eaa13a03313:delivered:c");
        attach_receipts(&mut msgs, docs).unwrap();
        let users = |l: &[Receipt]| l.iter().map(|r| (r.user.as_str().to_owned(), r.at)).collect::<Vec<_>>();
        assert_eq!(users(msgs[0].delivered_to()), [("b".into(), t(15)), ("c".into(), t(20))]);
        assert_eq!(users(msgs[0].read_by()), [("b".into(), t(15))]);
    }
}
