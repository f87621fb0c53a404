//! Admission control of joins: a node runs at most its bound of joins at once; a `joinRoom` past
//! it waits briefly for a slot, then is refused with a retryable `UNAVAILABLE` carrying
//! `retryAfterMs`, and nothing was done: the connection is not in the room (a later message does
//! not reach it, the members do not list it) or, if it had joined before, stays in it. Joining
//! again after the wait succeeds with the whole history; a join on a quiet node goes through at
//! once. The store is slowed by a gate that holds every store call while it is closed, so the
//! joins in progress stay in progress exactly as long as the test says. Over real websockets with
//! real JWTs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use labchat_core::{Chat, ChatStore, Hooked, JoinAdmission, StoreCall, StoreFuture, StoreHook, SystemClock};
use labchat_domain::{HistoryLimit, Request, UserId};
use labchat_memory::{LocalBroadcaster, MemoryStore};
use labchat_tests::asyncapi::Schemas;
use labchat_tests::client::{Client, WAIT};
use labchat_tests::harness::{ChatServer, new_request_id};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The node's bound on joins in progress.
const BOUND: usize = 2;

/// A store hook: while the gate is closed, every store call waits at it (and is counted).
struct Gate {
    open: watch::Sender<bool>,
    held: watch::Sender<usize>,
}

impl StoreHook for Gate {
    fn around<'a, T: Send + 'static>(&'a self, _: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let mut open = self.open.subscribe();
            if !*open.borrow_and_update() {
                self.held.send_modify(|n| *n += 1);
                let _ = open.wait_for(|o| *o).await;
                self.held.send_modify(|n| *n -= 1);
            }
            inner.await
        })
    }
}

/// A real server over the gated in-memory store, bounded to [`BOUND`] joins at once.
struct Node {
    server: ChatServer,
    memory: Arc<MemoryStore>,
    store: Arc<Hooked<Gate>>,
}

impl Node {
    async fn start() -> Self {
        let memory = Arc::new(MemoryStore::new());
        let gate = Gate { open: watch::Sender::new(true), held: watch::Sender::new(0) };
        let store = Arc::new(Hooked::new(Arc::clone(&memory) as Arc<dyn ChatStore>, gate));
        let chat = Chat::new(
            Arc::clone(&store) as Arc<dyn ChatStore>,
            Arc::new(LocalBroadcaster::new()),
            Arc::new(SystemClock),
            HistoryLimit::DEFAULT,
        )
        // Every join looks its request up in the store first (before it waits for the room's
        // order, which joins of one room take in turn): each join in progress is held there.
        .with_access_ttl(Duration::ZERO)
        .with_join_admission(JoinAdmission { max_in_flight: BOUND, wait: Duration::from_millis(100) });
        Self { server: ChatServer::serve(Arc::new(chat)).await, memory, store }
    }

    fn room(&self) -> String {
        let id = new_request_id();
        self.memory.add_request(Request::new(id, UserId::parse("t1").unwrap()));
        id.to_string()
    }

    async fn client(&self, user: &str, role: &str) -> Client {
        self.server.client(user, role).await
    }

    /// Closes the gate and starts a join of `room` on each of `clients` (sending `id`), and
    /// returns once all of them are in progress (held at the gate), the node's bound full.
    async fn fill(&self, room: &str, clients: &mut [Client], id: u64) {
        assert_eq!(clients.len(), BOUND);
        self.store.hook().open.send_replace(false);
        for c in clients.iter_mut() {
            c.send(json!({"event": "joinRoom", "data": {"requestId": room}, "id": id})).await;
        }
        let mut held = self.store.hook().held.subscribe();
        tokio::time::timeout(WAIT, held.wait_for(|n| *n == BOUND)).await.expect("the joins reach the store").unwrap();
    }

    fn open(&self) {
        self.store.hook().open.send_replace(true);
    }
}

/// Reads `client`'s frames up to the `ack` of the join sent with `id`; returns its `roomHistory`.
async fn joined(client: &mut Client, id: u64) -> Value {
    let mut history = None;
    loop {
        let f = client.recv().await;
        assert_ne!(f["event"], "error", "{f}");
        if f["event"] == "roomHistory" && f["id"] == json!(id) {
            history = Some(f["data"].clone());
        } else if f["event"] == "ack" && f["id"] == json!(id) {
            return history.expect("roomHistory before the ack");
        }
    }
}

/// Asserts `error` is a join refused under load, for `room`, as docs/asyncapi.yaml describes it,
/// and returns its `retryAfterMs`.
fn refused(error: &Value, room: &str) -> u64 {
    let frame = json!({"event": "error", "data": error});
    let violations = Schemas::load().server_errors(&frame);
    assert!(violations.is_empty(), "{frame} violates the document: {violations:#?}");
    assert_eq!(error["code"], "UNAVAILABLE", "{error}");
    assert_eq!(error["retryable"], true, "{error}");
    assert_eq!((error["event"].as_str(), error["requestId"].as_str()), (Some("joinRoom"), Some(room)), "{error}");
    let after = error["retryAfterMs"].as_u64().unwrap_or_else(|| panic!("no retryAfterMs: {error}"));
    assert!(after >= 1, "{error}");
    after
}

/// The texts of a history page's messages, in order.
fn texts(history: &Value) -> Vec<String> {
    history["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap().to_owned()).collect()
}

/// The user ids a `members` reply lists, and its count.
async fn members(client: &mut Client, room: &str) -> (Vec<String>, u64) {
    let page = client.ok("members", json!({"requestId": room})).await;
    let ids = page["members"].as_array().unwrap().iter().map(|m| m["userId"].as_str().unwrap().to_owned()).collect();
    (ids, page["membersCount"].as_u64().unwrap())
}

/// Whether a message reached `client` before the reply to a command sent after it was stored
/// (a subscribed connection gets a room's message before any later reply).
async fn got_a_message(client: &mut Client, room: &str) -> bool {
    let frames = client.call("history", json!({"requestId": room})).await;
    assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
    frames.iter().any(|f| f["event"] == "message")
}

#[tokio::test]
async fn joins_past_the_bound_are_refused_with_a_time_to_come_back_then_get_everything() {
    let node = Node::start().await;
    let room = node.room();
    let mut teacher = node.client("t1", "TEACHER").await;
    for text in ["one", "two", "three"] {
        teacher.post(&room, text).await;
    }

    // Two joins in progress fill the bound; three more at once are refused.
    let mut holders = [node.client("lab-a", "LAB").await, node.client("lab-b", "LAB").await];
    node.fill(&room, &mut holders, 1).await;
    let mut late =
        [node.client("lab-c", "LAB").await, node.client("lab-d", "LAB").await, node.client("lab-e", "LAB").await];
    let errors = join_all(late.iter_mut().map(|c| c.err("joinRoom", json!({"requestId": room})))).await;
    let waits: Vec<u64> = errors.iter().map(|e| refused(e, &room)).collect();
    node.open();
    for c in &mut holders {
        assert_eq!(texts(&joined(c, 1).await), ["one", "two", "three"]);
    }

    // The refused connections are not in the room: a message posted now does not reach them,
    // the members do not list them, and leaving tells nobody anything.
    teacher.post(&room, "four").await;
    for c in &mut holders {
        assert_eq!(c.expect("message").await["message"], "four");
    }
    for c in &mut late {
        assert!(!got_a_message(c, &room).await, "a refused join receives the room's messages");
    }
    let present = vec!["lab-a".to_owned(), "lab-b".to_owned()];
    assert_eq!(members(&mut holders[0], &room).await, (present.clone(), 2));
    late[0].ok("leaveRoom", json!({"requestId": room})).await;
    assert_eq!(members(&mut holders[0], &room).await, (present, 2));

    // Each joins again after its wait, and gets the whole history.
    for (c, wait) in late.iter_mut().zip(waits) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        assert_eq!(texts(&c.join(&room).await), ["one", "two", "three", "four"]);
    }
    assert_eq!(members(&mut holders[0], &room).await.1, 5);

    // The burst is over: a single join goes through at once.
    let mut quiet = node.client("lab-f", "LAB").await;
    let frames = quiet.call("joinRoom", json!({"requestId": room})).await;
    assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
}

#[tokio::test]
async fn a_rejoin_refused_under_load_leaves_the_connection_in_the_room() {
    let node = Node::start().await;
    let room = node.room();
    let mut member = node.client("lab-a", "LAB").await;
    member.join(&room).await;

    let mut holders = [node.client("lab-b", "LAB").await, node.client("lab-c", "LAB").await];
    node.fill(&room, &mut holders, 1).await;
    let error = member.err("joinRoom", json!({"requestId": room})).await;
    refused(&error, &room);
    node.open();
    for c in &mut holders {
        joined(c, 1).await;
    }

    let mut teacher = node.client("t1", "TEACHER").await;
    teacher.post(&room, "still here").await;
    assert_eq!(member.expect("message").await["message"], "still here");
    assert!(members(&mut member, &room).await.0.contains(&"lab-a".to_owned()));
}
