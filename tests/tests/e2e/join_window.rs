//! Joining a room whose events come from other nodes: a joiner gets the history, then the live
//! events past it, with no gap and no duplicate by seq, however the other nodes' events fall
//! around the join (between subscribing and reading the history, between reading it and queueing
//! it, or late, after the join, for messages the history already holds).
//!
//! "Another node" is simulated without any backplane: it stores messages in the shared store and
//! delivers them to this node's broadcaster later, in seq order, as a backplane does. Hooks make
//! it act at the exact moments of a join. Over real websockets with real JWTs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::future::join_all;
use labchat_core::{
    BackplaneStatus, BroadcastError, Broadcaster, Chat, ChatStore, Hooked, Inserted, RoomSink, SinkId, StoreCall,
    StoreFuture, StoreHook, SystemClock,
};
use labchat_domain::{
    HistoryLimit, HistoryQuery, Message, MessageId, MessageRecord, MessageText, ReceiptKind, Request, RequestId, Role,
    RoomEvent, Timestamp, UserId,
};
use labchat_memory::{LocalBroadcaster, MemoryStore};
use labchat_tests::client::{Client, WAIT};
use labchat_tests::harness::{ChatServer, new_request_id};
use serde_json::{Value, json};

/// What the other node does at one moment: store `post` messages, mark the newest one read
/// (`read`), then deliver the `deliver` oldest events it has not delivered yet.
#[derive(Clone, Copy, Debug, Default)]
struct Step {
    post: usize,
    read: bool,
    deliver: usize,
}

/// The other node: writes to the shared store, delivers to this node in seq order, lagging as it
/// is told.
struct Remote {
    store: Arc<MemoryStore>,
    local: Arc<LocalBroadcaster>,
    state: tokio::sync::Mutex<RemoteState>,
}

#[derive(Default)]
struct RemoteState {
    next_id: u64,
    /// Stored, not yet delivered, in seq order.
    pending: VecDeque<RoomEvent>,
}

impl Remote {
    async fn run(&self, room: RequestId, step: Step) {
        let mut s = self.state.lock().await;
        for _ in 0..step.post {
            s.next_id += 1;
            let mut m = Message::restore(MessageRecord {
                id: MessageId::parse(&format!("ee{:022x}", s.next_id)).unwrap(),
                request_id: room,
                seq: None,
                sender_id: UserId::parse("remote-lab").unwrap(),
                sender_role: Role::Lab,
                text: Some(MessageText::parse(format!("remote {}", s.next_id), 100).unwrap()),
                created_at: Timestamp::from_unix_millis(1_700_000_000_000),
                client_message_id: None,
                delivered_to: vec![],
                read_by: vec![],
                edited_at: None,
                deleted_at: None,
                deleted_by: None,
            })
            .unwrap();
            let Inserted::New(seq) = self.store.insert_message(&m).await.unwrap() else { panic!("no idempotency key") };
            m.seq = Some(seq);
            s.pending.push_back(RoomEvent::MessagePosted(m));
        }
        if step.read {
            let latest = HistoryQuery { cursor: labchat_domain::Cursor::Latest, limit: HistoryLimit::new(1).unwrap() };
            let page = self.store.history(room, latest).await.unwrap().unwrap();
            if let Some(m) = page.messages.last() {
                let reader = UserId::parse("remote-teacher").unwrap();
                let at = Timestamp::from_unix_millis(1_700_000_000_001);
                let marked = self.store.mark(room, &reader, ReceiptKind::Read, &[m.id], at).await.unwrap();
                if !marked.read.is_empty() {
                    s.pending.push_back(RoomEvent::Read {
                        request_id: room,
                        user_id: reader,
                        messages: marked.read,
                        at,
                    });
                }
            }
        }
        for _ in 0..step.deliver {
            let Some(event) = s.pending.pop_front() else { break };
            self.local.publish(event).await.unwrap();
        }
    }

    async fn deliver_all(&self, room: RequestId) {
        self.run(room, Step { deliver: usize::MAX, ..Step::default() }).await;
    }
}

/// A one-time action of the other node, armed before a join.
type Hook = Mutex<Option<Step>>;

fn take(hook: &Hook) -> Option<Step> {
    hook.lock().unwrap().take()
}

/// This node's broadcaster: local delivery, and the other node acting right after a subscribe.
struct NodeBroadcaster {
    local: Arc<LocalBroadcaster>,
    remote: Arc<Remote>,
    after_subscribe: Hook,
}

#[async_trait]
impl Broadcaster for NodeBroadcaster {
    async fn subscribe(&self, room: RequestId, sink: Arc<dyn RoomSink>) -> Result<(), BroadcastError> {
        self.local.subscribe(room, sink).await?;
        if let Some(step) = take(&self.after_subscribe) {
            self.remote.run(room, step).await;
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: RequestId, sink: SinkId) -> Result<(), BroadcastError> {
        self.local.unsubscribe(room, sink).await
    }

    async fn publish(&self, event: RoomEvent) -> Result<(), BroadcastError> {
        self.local.publish(event).await
    }

    fn backplane(&self) -> Option<BackplaneStatus> {
        Some(BackplaneStatus { connected: true, detail: "simulated".into() })
    }
}

/// The shared store's hook: the other node acts right after a history page was read.
struct AfterHistory {
    remote: Arc<Remote>,
    after_history: Hook,
}

impl StoreHook for AfterHistory {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        let StoreCall { op: "history", request: Some(request) } = call else { return inner };
        Box::pin(async move {
            let page = inner.await?;
            if let Some(step) = take(&self.after_history) {
                self.remote.run(request, step).await;
            }
            Ok(page)
        })
    }
}

type HookedStore = Hooked<AfterHistory>;

/// A real server over the hooked store and broadcaster.
struct Node {
    server: ChatServer,
    memory: Arc<MemoryStore>,
    remote: Arc<Remote>,
    broadcaster: Arc<NodeBroadcaster>,
    store: Arc<HookedStore>,
}

impl Node {
    async fn start(history_limit: usize) -> Self {
        let memory = Arc::new(MemoryStore::new());
        let local = Arc::new(LocalBroadcaster::new());
        let remote = Arc::new(Remote {
            store: Arc::clone(&memory),
            local: Arc::clone(&local),
            state: tokio::sync::Mutex::default(),
        });
        let broadcaster =
            Arc::new(NodeBroadcaster { local, remote: Arc::clone(&remote), after_subscribe: Mutex::default() });
        let hook = AfterHistory { remote: Arc::clone(&remote), after_history: Mutex::default() };
        let store = Arc::new(Hooked::new(Arc::clone(&memory) as Arc<dyn ChatStore>, hook));
        let chat = Chat::new(
            Arc::clone(&store) as Arc<dyn ChatStore>,
            Arc::clone(&broadcaster) as Arc<dyn Broadcaster>,
            Arc::new(SystemClock),
            HistoryLimit::new(history_limit).unwrap(),
        );
        let server = ChatServer::serve(Arc::new(chat)).await;
        Self { server, memory, remote, broadcaster, store }
    }

    fn room(&self) -> RequestId {
        let id = new_request_id();
        self.memory.add_request(Request::new(id, UserId::parse("t1").unwrap()));
        id
    }

    /// Arms the other node's actions for the next join: right after it subscribes, and right
    /// after it reads the history.
    fn arm(&self, at_subscribe: Step, at_history: Step) {
        *self.broadcaster.after_subscribe.lock().unwrap() = Some(at_subscribe);
        *self.store.hook().after_history.lock().unwrap() = Some(at_history);
    }

    async fn client(&self) -> Client {
        self.server.client("lab-1", "LAB").await
    }
}

/// What one client saw of a room: its messages' seqs in the order they came (history, then
/// live), the ids of those messages, and whether a receipt ever came before a message it names.
#[derive(Default, Debug)]
struct Seen {
    seqs: Vec<u64>,
    ids: BTreeSet<String>,
    early_receipts: Vec<Value>,
}

impl Seen {
    fn messages(&mut self, messages: &Value) {
        for m in messages.as_array().unwrap() {
            self.seqs.push(m["seq"].as_u64().unwrap());
            self.ids.insert(m["id"].as_str().unwrap().to_owned());
        }
    }

    /// Takes in a live frame of the room; `false` for frames that are not room events.
    fn live(&mut self, frame: &Value) -> bool {
        match frame["event"].as_str() {
            Some("message") => self.messages(&json!([frame["data"]])),
            Some("messageReads" | "messagesDelivered") => {
                let named = frame["data"]["messages"].as_array().unwrap();
                if named.iter().any(|id| !self.ids.contains(id.as_str().unwrap())) {
                    self.early_receipts.push(frame.clone());
                }
            }
            _ => return false,
        }
        true
    }

    fn last(&self) -> u64 {
        self.seqs.iter().copied().max().unwrap_or(0)
    }

    /// Reads live frames until the message of seq `last` arrived (bounded by [`WAIT`] a frame).
    async fn until(&mut self, c: &mut Client, last: u64) {
        while self.last() < last {
            let frame = c.recv().await;
            assert!(self.live(&frame), "unexpected frame {frame}");
        }
    }
}

/// Joins `room` (after the message `after`, if given): what came before and with the `ack`.
async fn join(c: &mut Client, room: RequestId, after: Option<&str>) -> (Seen, bool) {
    let mut data = json!({"requestId": room.to_hex()});
    if let Some(after) = after {
        data["after"] = json!(after);
    }
    let frames = c.call("joinRoom", data).await;
    assert_eq!(frames.last().unwrap()["event"], "ack", "{frames:?}");
    let mut seen = Seen::default();
    let mut has_more = false;
    let mut history_seen = false;
    for f in &frames[..frames.len() - 1] {
        if f["event"] == "roomHistory" {
            assert!(!history_seen && seen.seqs.is_empty(), "a room event before the history: {frames:?}");
            history_seen = true;
            has_more = f["data"]["hasMore"].as_bool().unwrap();
            seen.messages(&f["data"]["messages"]);
        } else {
            assert!(history_seen, "a room event before the history: {frames:?}");
            assert!(seen.live(f), "unexpected frame {f}");
        }
    }
    assert!(history_seen, "no roomHistory: {frames:?}");
    (seen, has_more)
}

/// The moments of a join at which the other node acts, as (right after subscribing, right after
/// the history read): messages stored before the history read and delivered in the window
/// (held, already in the history), stored after it and delivered in the window (held, past the
/// history), stored before it and delivered only after the join (late), and receipts among them.
fn plans() -> Vec<(Step, Step)> {
    let s = |post, read, deliver| Step { post, read, deliver };
    vec![
        (s(0, false, 0), s(0, false, 0)),
        (s(2, false, 2), s(0, false, 0)),
        (s(2, false, 1), s(0, false, 0)),
        (s(0, false, 0), s(3, false, 3)),
        (s(2, false, 0), s(2, true, 1)),
        (s(3, true, 1), s(2, true, usize::MAX)),
        (s(1, false, 0), s(2, false, 2)),
        (s(0, false, 0), s(1, true, 2)),
    ]
}

#[tokio::test]
async fn a_joiner_gets_history_then_live_with_no_gap_and_no_duplicate() {
    let node = Node::start(200).await;
    for (i, (at_subscribe, at_history)) in plans().into_iter().enumerate() {
        let room = node.room();
        node.remote.run(room, Step { post: 3, read: false, deliver: usize::MAX }).await;
        let mut c = node.client().await;
        node.arm(at_subscribe, at_history);
        let (mut seen, has_more) = join(&mut c, room, None).await;
        assert!(!has_more);
        // Then the other node delivers what it held back and posts two more.
        node.remote.run(room, Step { post: 2, read: true, deliver: usize::MAX }).await;
        let total = 3 + at_subscribe.post + at_history.post + 2;
        seen.until(&mut c, total as u64).await;
        let want: Vec<u64> = (1..=total as u64).collect();
        assert_eq!(seen.seqs, want, "plan {i}: {at_subscribe:?} {at_history:?}");
        assert!(seen.early_receipts.is_empty(), "plan {i}: receipts before their messages {:?}", seen.early_receipts);
        // Nothing more: no late duplicate.
        node.remote.deliver_all(room).await;
        while let Some(f) = c.try_recv(std::time::Duration::from_millis(100)).await {
            assert!(f["event"] != "message", "plan {i}: a message after the last one: {f}");
        }
    }
}

#[tokio::test]
async fn a_rejoin_after_a_message_catches_up_with_no_gap_and_no_duplicate() {
    let node = Node::start(200).await;
    for (i, (at_subscribe, at_history)) in plans().into_iter().enumerate() {
        let room = node.room();
        node.remote.run(room, Step { post: 4, read: false, deliver: usize::MAX }).await;
        let mut first = node.client().await;
        let (seen, _) = join(&mut first, room, None).await;
        drop(first);
        assert_eq!(seen.seqs, [1, 2, 3, 4]);
        // The client had messages 1..=4; it reconnects after message 2 (it missed 3 and 4).
        let second = id_of(&node, room, 2).await;
        let mut c = node.client().await;
        node.arm(at_subscribe, at_history);
        let (mut seen, has_more) = join(&mut c, room, Some(&second)).await;
        assert!(!has_more);
        node.remote.run(room, Step { post: 1, read: false, deliver: usize::MAX }).await;
        let total = 4 + at_subscribe.post + at_history.post + 1;
        seen.until(&mut c, total as u64).await;
        let want: Vec<u64> = (3..=total as u64).collect();
        assert_eq!(seen.seqs, want, "plan {i}: {at_subscribe:?} {at_history:?}");
        assert!(seen.early_receipts.is_empty(), "plan {i}: {:?}", seen.early_receipts);
    }
}

/// The id of the room's message of seq `seq`, from the store.
async fn id_of(node: &Node, room: RequestId, seq: u64) -> String {
    let q = HistoryQuery { cursor: labchat_domain::Cursor::Latest, limit: HistoryLimit::new(200).unwrap() };
    let all = node.memory.history(room, q).await.unwrap().unwrap().messages;
    all.iter().find(|m| m.seq.map(|s| s.get()) == Some(seq)).expect("a stored seq").id.to_hex()
}

#[tokio::test]
async fn late_copies_of_what_the_history_covers_are_dropped() {
    let node = Node::start(200).await;
    // The history after message 3 holds 4 and 5, which the other node stored right after the
    // subscribe and delivers only after the join.
    let room = node.room();
    node.remote.run(room, Step { post: 3, read: false, deliver: usize::MAX }).await;
    let mut c = node.client().await;
    node.arm(Step { post: 2, read: false, deliver: 0 }, Step::default());
    let (mut seen, _) = join(&mut c, room, Some(&id_of(&node, room, 3).await)).await;
    assert_eq!(seen.seqs, [4, 5]);
    node.remote.deliver_all(room).await;
    node.remote.run(room, Step { post: 1, read: false, deliver: usize::MAX }).await;
    seen.until(&mut c, 6).await;
    assert_eq!(seen.seqs, [4, 5, 6]);

    // Nothing after message 3 (an empty page), whose own delivery is late.
    let room = node.room();
    node.remote.run(room, Step { post: 3, read: false, deliver: 2 }).await;
    let mut c = node.client().await;
    let (mut seen, _) = join(&mut c, room, Some(&id_of(&node, room, 3).await)).await;
    assert!(seen.seqs.is_empty());
    node.remote.deliver_all(room).await;
    node.remote.run(room, Step { post: 1, read: false, deliver: usize::MAX }).await;
    seen.until(&mut c, 4).await;
    assert_eq!(seen.seqs, [4], "message 3 came late and the client had it");
}

#[tokio::test]
async fn a_page_cut_short_releases_no_held_message_and_the_client_pages_on() {
    // Pages of 3: a rejoin after message 1 of 8 gets 2..=4 with hasMore.
    let node = Node::start(3).await;
    let room = node.room();
    node.remote.run(room, Step { post: 8, read: false, deliver: usize::MAX }).await;
    let mut c = node.client().await;
    // Stored after the history read and delivered in the window: held, and not released past a
    // cut page (they would leave a hole after message 4).
    node.arm(Step::default(), Step { post: 2, read: false, deliver: usize::MAX });
    let (seen, has_more) = join(&mut c, room, Some(&id_of(&node, room, 1).await)).await;
    assert!(has_more);
    assert_eq!(seen.seqs, [2, 3, 4], "only the page, nothing live past it");
    // The client pages on with history {after: the newest it has} and merges by seq.
    let mut merged: BTreeSet<u64> = seen.seqs.iter().copied().collect();
    loop {
        let newest = merged.iter().copied().max().unwrap();
        let after = id_of(&node, room, newest).await;
        let frames = c.call("history", json!({"requestId": room.to_hex(), "after": after})).await;
        let page = frames.iter().find(|f| f["event"] == "roomHistory").expect("a page");
        for m in page["data"]["messages"].as_array().unwrap() {
            assert!(merged.insert(m["seq"].as_u64().unwrap()), "a page repeats a message: {page}");
        }
        if page["data"]["hasMore"] == false {
            break;
        }
    }
    assert_eq!(merged, (2..=10).collect::<BTreeSet<u64>>());
    c.expect_silence(std::time::Duration::from_millis(200)).await;
}

#[tokio::test]
async fn concurrent_joiners_during_lagging_traffic_from_another_node_miss_nothing() {
    const JOINERS: usize = 24;
    const POSTS: usize = 80;
    let node = Arc::new(Node::start(200).await);
    let room = node.room();
    node.remote.run(room, Step { post: 5, read: false, deliver: usize::MAX }).await;
    let traffic = {
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            for i in 0..POSTS {
                // Stores one; delivers with a lag of 0 to 3 messages.
                node.remote.run(room, Step { post: 1, read: i % 7 == 0, deliver: i % 4 }).await;
                tokio::task::yield_now().await;
            }
            node.remote.deliver_all(room).await;
        })
    };
    let joiners = (0..JOINERS).map(|j| {
        let node = Arc::clone(&node);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis((j % 8) as u64 * 3)).await;
            let mut c = node.client().await;
            let (mut seen, _) = join(&mut c, room, None).await;
            let first = seen.seqs.first().copied().unwrap_or(1);
            seen.until(&mut c, (5 + POSTS) as u64).await;
            let want: Vec<u64> = (first..=(5 + POSTS) as u64).collect();
            assert_eq!(seen.seqs, want, "joiner {j}");
            assert!(seen.early_receipts.is_empty(), "joiner {j}: {:?}", seen.early_receipts);
        }
    });
    tokio::time::timeout(WAIT * 4, join_all(joiners)).await.expect("every joiner done in time");
    traffic.await.unwrap();
}
