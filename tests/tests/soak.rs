//! A bounded soak test: 200 connections in 20 rooms chat for `LABCHAT_SOAK_SECS` seconds
//! (default 10; CI sets 30) within the default rate limit, acknowledging what they receive. At
//! the end every acknowledged message is stored once and was delivered to every member once,
//! every receipt was announced once, and after all clients leave the server holds no connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use labchat_core::ChatStore;
use labchat_domain::{Cursor, HistoryLimit, HistoryQuery, Message, MessageText, Request, RequestId, UserId};
use labchat_memory::MemoryStore;
use labchat_tests::client::{Client, Ws};
use labchat_tests::harness::{TestServer, new_request_id, settings, token};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const ROOMS: usize = 20;
const PER_ROOM: usize = 10;
/// Each connection sends one message per period, and every tenth one twice (an idempotent
/// retry with the same clientMessageId); with one receipt frame per period that is about 2
/// frames/s, far below the default limit of 30 frames/s.
const SEND_PERIOD: Duration = Duration::from_millis(1000);
const RECEIPT_PERIOD: Duration = Duration::from_millis(1000);
/// Bounds of the phases after the chatting stops.
const SETTLE: Duration = Duration::from_secs(30);
const BARRIER_WAIT: Duration = Duration::from_secs(60);
const QUIET: Duration = Duration::from_millis(500);

fn soak_duration() -> Duration {
    let secs = std::env::var("LABCHAT_SOAK_SECS")
        .ok()
        .map_or(10, |s| s.trim().parse::<u64>().unwrap_or_else(|e| panic!("LABCHAT_SOAK_SECS={s:?}: {e}")));
    assert!((1..=3600).contains(&secs), "LABCHAT_SOAK_SECS must be 1 to 3600, got {secs}");
    Duration::from_secs(secs)
}

fn user_of(room: usize, j: usize) -> String {
    if j == 0 { format!("soak-teacher-{room}") } else { format!("soak-lab-{room}-{j}") }
}

fn id128(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("message id {hex:?}: {e}"))
}

/// What the connections share: the message ids acknowledged to senders, per room, and the
/// barriers between phases.
struct Shared {
    acked: Vec<Mutex<HashSet<u128>>>,
    all_acked: Barrier,
    all_received: Barrier,
}

enum Pending {
    Message { cmid: String, sent: Instant },
    Receipts { ids: Vec<String> },
    Leave,
}

/// What one connection saw.
#[derive(Default)]
struct Report {
    user: String,
    room: usize,
    /// Message id -> how many `message` frames carried it.
    received: HashMap<u128, u32>,
    /// Message id -> (senderId, clientMessageId, text), as the `message` frame said.
    contents: HashMap<u128, (String, String, String)>,
    /// clientMessageId -> the message id every ack for it named.
    acked: HashMap<String, u128>,
    /// clientMessageId -> text sent.
    texts: HashMap<String, String>,
    /// Correlation id -> how many acks carried it.
    acks: HashMap<String, u32>,
    /// (userId, message id) -> how many `messagesDelivered` announcements carried it.
    announced: HashMap<(String, u128), u32>,
    retries: usize,
    ack_latencies: Vec<Duration>,
    errors: Vec<String>,
}

struct Member {
    tx: SplitSink<Ws, WsMessage>,
    rx: SplitStream<Ws>,
    rid: String,
    pending: HashMap<String, Pending>,
    /// Messages of others received and not yet acknowledged with `ackMessages`.
    to_ack: Vec<String>,
    next: u64,
    shared: Arc<Shared>,
    r: Report,
}

impl Member {
    fn fail(&mut self, what: String) {
        if self.r.errors.len() < 20 {
            self.r.errors.push(what);
        }
    }

    async fn send(&mut self, frame: Value) -> bool {
        match self.tx.send(WsMessage::text(frame.to_string())).await {
            Ok(()) => true,
            Err(e) => {
                self.fail(format!("send failed: {e}"));
                false
            }
        }
    }

    fn corr(&mut self, kind: &str) -> String {
        self.next += 1;
        format!("{kind}-{}", self.next)
    }

    async fn send_message(&mut self, k: u64) -> bool {
        let cmid = format!("{}-{k}", self.r.user);
        let text = format!("soak {} #{k}", self.r.user);
        self.r.texts.insert(cmid.clone(), text.clone());
        let copies = if k.is_multiple_of(10) { 2 } else { 1 };
        for _ in 0..copies {
            let id = self.corr("m");
            let data = json!({"requestId": self.rid, "message": text, "clientMessageId": cmid});
            let frame = json!({"event": "message", "id": id, "data": data});
            self.pending.insert(id, Pending::Message { cmid: cmid.clone(), sent: Instant::now() });
            if !self.send(frame).await {
                return false;
            }
        }
        self.r.retries += copies - 1;
        true
    }

    async fn send_receipts(&mut self) -> bool {
        while !self.to_ack.is_empty() {
            let n = self.to_ack.len().min(500);
            let ids: Vec<String> = self.to_ack.drain(..n).collect();
            let id = self.corr("a");
            let frame = json!({"event": "ackMessages", "id": id, "data": {"requestId": self.rid, "messages": ids}});
            self.pending.insert(id, Pending::Receipts { ids });
            if !self.send(frame).await {
                return false;
            }
        }
        true
    }

    /// Reads one frame within `deadline`; `false` when the stream ended or the time is over.
    async fn read_until(&mut self, deadline: Instant) -> bool {
        match timeout_at(deadline, self.rx.next()).await {
            Err(_) => false,
            Ok(Some(Ok(msg))) => {
                self.handle(msg);
                true
            }
            Ok(other) => {
                self.fail(format!("stream ended: {other:?}"));
                false
            }
        }
    }

    fn handle(&mut self, msg: WsMessage) {
        let text = match msg {
            WsMessage::Text(t) => t,
            WsMessage::Ping(_) | WsMessage::Pong(_) => return,
            other => return self.fail(format!("unexpected frame {other:?}")),
        };
        let f: Value = serde_json::from_str(text.as_str()).unwrap();
        let d = &f["data"];
        match f["event"].as_str().unwrap_or_default() {
            "message" => {
                if d["requestId"] != self.rid.as_str() {
                    return self.fail(format!("message of another room: {f}"));
                }
                let hex = d["id"].as_str().unwrap();
                let id = id128(hex);
                let n = self.r.received.entry(id).or_default();
                *n += 1;
                if *n > 1 {
                    return;
                }
                let sender = d["senderId"].as_str().unwrap().to_owned();
                let cmid = d["clientMessageId"].as_str().unwrap_or_default().to_owned();
                let text = d["message"].as_str().unwrap().to_owned();
                if sender != self.r.user {
                    self.to_ack.push(hex.to_owned());
                }
                self.r.contents.insert(id, (sender, cmid, text));
            }
            "messagesDelivered" => {
                let user = d["userId"].as_str().unwrap().to_owned();
                for m in d["messages"].as_array().unwrap() {
                    *self.r.announced.entry((user.clone(), id128(m.as_str().unwrap()))).or_default() += 1;
                }
            }
            "ack" => {
                let corr = f["id"].as_str().unwrap_or_default().to_owned();
                *self.r.acks.entry(corr.clone()).or_default() += 1;
                match self.pending.remove(&corr) {
                    Some(Pending::Message { cmid, sent }) => {
                        self.r.ack_latencies.push(sent.elapsed());
                        let id = id128(d["id"].as_str().unwrap());
                        let (sender, ack_cmid) = (d["senderId"].as_str(), d["clientMessageId"].as_str());
                        if sender != Some(self.r.user.as_str()) || ack_cmid != Some(cmid.as_str()) {
                            self.fail(format!("ack for {cmid} names another message: {f}"));
                        }
                        if *self.r.acked.entry(cmid.clone()).or_insert(id) != id {
                            self.fail(format!("two acks for {cmid} name different messages: {f}"));
                        }
                        self.shared.acked[self.r.room].lock().unwrap().insert(id);
                    }
                    Some(Pending::Receipts { ids }) => {
                        // Each id is acknowledged once, so each must be newly marked.
                        if d["messages"] != json!(ids) {
                            self.fail(format!("ackMessages marked {} of {ids:?}", d["messages"]));
                        }
                    }
                    Some(Pending::Leave) => {}
                    None => self.fail(format!("unexpected or repeated ack: {f}")),
                }
            }
            // Presence: other members come and go (this test's members reconnect); it must be
            // about this room and about another user.
            "memberJoined" | "memberLeft" => {
                if d["requestId"] != self.rid.as_str() || d["userId"] == self.r.user.as_str() {
                    self.fail(format!("presence of another room, or of this user: {f}"));
                }
            }
            // A burst of comings and goings, coalesced: about this room.
            "membersChanged" => {
                if d["requestId"] != self.rid.as_str() {
                    self.fail(format!("presence of another room: {f}"));
                }
            }
            _ => self.fail(format!("unexpected frame {f}")),
        }
    }

    /// Waits until every sent frame has been answered.
    async fn settle(&mut self, what: &str) -> bool {
        let deadline = Instant::now() + SETTLE;
        while !self.pending.is_empty() {
            if !self.read_until(deadline).await {
                let n = self.pending.len();
                self.fail(format!("{what}: {n} frames unanswered after {SETTLE:?}"));
                return false;
            }
        }
        true
    }

    async fn barrier(&mut self, which: &str) -> bool {
        let b = if which == "all acked" { &self.shared.all_acked } else { &self.shared.all_received };
        if timeout(BARRIER_WAIT, b.wait()).await.is_err() {
            self.fail(format!("barrier {which:?}: others did not arrive within {BARRIER_WAIT:?}"));
            return false;
        }
        true
    }

    /// The whole life of one connection: chat until `end`, settle, catch up, leave.
    async fn run(mut self, start: Instant, offset: Duration, end: Instant, how_to_leave: usize) -> Report {
        // Phase 1: chat.
        let mut send_tick = tokio::time::interval_at(start + offset, SEND_PERIOD);
        send_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut receipt_tick = tokio::time::interval_at(start + offset + RECEIPT_PERIOD / 2, RECEIPT_PERIOD);
        receipt_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stop = sleep_until(end);
        tokio::pin!(stop);
        let mut k = 0;
        loop {
            let ok = tokio::select! {
                () = &mut stop => break,
                _ = send_tick.tick() => {
                    k += 1;
                    self.send_message(k).await
                }
                _ = receipt_tick.tick() => self.send_receipts().await,
                msg = self.rx.next() => match msg {
                    Some(Ok(msg)) => {
                        self.handle(msg);
                        true
                    }
                    other => {
                        self.fail(format!("stream ended while chatting: {other:?}"));
                        false
                    }
                },
            };
            if !ok {
                return self.r;
            }
        }
        // Phase 2: every send answered, in every connection.
        if !self.settle("after chatting").await || !self.barrier("all acked").await {
            return self.r;
        }
        // Phase 3: every acknowledged message of the room received; acknowledge the rest.
        let expected: HashSet<u128> = self.shared.acked[self.r.room].lock().unwrap().clone();
        let deadline = Instant::now() + SETTLE;
        while !expected.iter().all(|id| self.r.received.contains_key(id)) {
            if !self.read_until(deadline).await {
                let missing = expected.iter().filter(|id| !self.r.received.contains_key(id)).count();
                self.fail(format!("{missing} acknowledged messages never arrived"));
                return self.r;
            }
        }
        if !self.send_receipts().await || !self.settle("final receipts").await || !self.barrier("all received").await {
            return self.r;
        }
        // Phase 4: everything is queued by now; read until quiet, to catch duplicates.
        let deadline = Instant::now() + SETTLE;
        while self.read_until(Instant::now() + QUIET).await {
            if Instant::now() > deadline {
                self.fail("frames kept coming after everyone finished".into());
                return self.r;
            }
        }
        // Leave in three ways: leaveRoom then close, close, or just drop the socket.
        match how_to_leave % 3 {
            0 => {
                let id = self.corr("leave");
                self.pending.insert(id.clone(), Pending::Leave);
                let _ = self.send(json!({"event": "leaveRoom", "id": id, "data": {"requestId": self.rid}})).await;
                let deadline = Instant::now() + SETTLE;
                while self.pending.contains_key(&id) {
                    if !self.read_until(deadline).await {
                        self.fail("leaveRoom unanswered".into());
                        break;
                    }
                }
                self.close().await;
            }
            1 => self.close().await,
            _ => drop((self.tx, self.rx)),
        }
        self.r
    }

    async fn close(&mut self) {
        let _ = self.tx.send(WsMessage::Close(None)).await;
        // Read to the end of the closing handshake, briefly.
        let _ = timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = self.rx.next().await {} }).await;
    }
}

/// Every message stored in the room, oldest first, paging back through the history.
async fn all_messages(store: &MemoryStore, rid: RequestId) -> Vec<Message> {
    let limit = HistoryLimit::new(HistoryLimit::MAX).unwrap();
    let mut cursor = Cursor::Latest;
    let mut out: Vec<Message> = Vec::new();
    for _ in 0..1000 {
        let page = store.history(rid, HistoryQuery { cursor, limit }).await.unwrap().unwrap();
        let (more, first) = (page.has_more, page.messages.first().map(|m| m.id));
        out.splice(0..0, page.messages);
        match (more, first) {
            (true, Some(id)) => cursor = Cursor::Before(id),
            _ => return out,
        }
    }
    panic!("more than 1000 pages of history");
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_every_acknowledged_message_is_stored_once_and_delivered_once_to_every_member() {
    let duration = soak_duration();
    // Default limits: the clients stay within the default rate limit.
    let server = TestServer::start_with(settings()).await;
    let memory = Arc::clone(server.memory.as_ref().expect("in-memory store"));
    assert_eq!(server.stats.open_connections(), 0);

    let rooms: Vec<RequestId> = (0..ROOMS)
        .map(|r| {
            let id = new_request_id();
            memory.add_request(Request::new(id, UserId::parse(user_of(r, 0)).unwrap()));
            id
        })
        .collect();
    let shared = Arc::new(Shared {
        acked: (0..ROOMS).map(|_| Mutex::new(HashSet::new())).collect(),
        all_acked: Barrier::new(ROOMS * PER_ROOM),
        all_received: Barrier::new(ROOMS * PER_ROOM),
    });

    // Connect and join everyone first (each room: its teacher, who created it, and LAB staff).
    let connecting = Instant::now();
    let mut members = Vec::new();
    for (r, rid) in rooms.iter().enumerate() {
        for j in 0..PER_ROOM {
            let user = user_of(r, j);
            let role = if j == 0 { "TEACHER" } else { "LAB" };
            let mut c = timeout(Duration::from_secs(10), Client::connect(&server.url(), &token(&user, role)))
                .await
                .expect("connect in time");
            let history = c.join(&rid.to_hex()).await;
            assert_eq!(history["messages"], json!([]));
            let (tx, rx) = c.ws.split();
            members.push(Member {
                tx,
                rx,
                rid: rid.to_hex(),
                pending: HashMap::new(),
                to_ack: Vec::new(),
                next: 0,
                shared: Arc::clone(&shared),
                r: Report { user, room: r, ..Report::default() },
            });
        }
    }
    let n = members.len();
    assert_eq!(server.stats.open_connections(), n);
    eprintln!("soak: {n} connections joined in {:?}", connecting.elapsed());

    let start = Instant::now() + Duration::from_millis(200);
    let end = start + duration;
    let handles: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let offset = Duration::from_millis(u64::try_from(i * 37 % 1000).unwrap());
            tokio::spawn(m.run(start, offset, end, i))
        })
        .collect();
    let mut reports = Vec::new();
    let all_done = timeout(duration + 4 * SETTLE + BARRIER_WAIT, async {
        for h in handles {
            reports.push(h.await.expect("member task panicked"));
        }
    })
    .await;
    assert!(all_done.is_ok(), "the members did not finish in time");
    let errors: Vec<String> = reports
        .iter()
        .flat_map(|r| r.errors.iter().map(move |e| format!("{} (room {}): {e}", r.user, r.room)))
        .collect();
    assert!(
        errors.is_empty(),
        "{} connections saw errors, e.g.:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
    let ran_for = start.elapsed();

    // No connection is left behind once every client has gone.
    wait_until("every connection to close", Duration::from_secs(10), || server.stats.open_connections() == 0).await;
    // ...and no room keeps a subscription of a closed connection.
    wait_until("every subscription to go", Duration::from_secs(10), || server.broadcaster.subscription_count() == 0)
        .await;
    assert_eq!(server.broadcaster.room_count(), 0);

    // Every acknowledged message is stored exactly once, as sent, and delivered to every member
    // of its room: received once by each connection, and marked delivered once by each
    // recipient, with each of those receipts announced once to each member.
    let mut stored_total = 0;
    let mut deliveries = 0_u64;
    let mut announcements = 0_u64;
    for (r, rid) in rooms.iter().enumerate() {
        let members: Vec<&Report> = reports.iter().filter(|m| m.room == r).collect();
        assert_eq!(members.len(), PER_ROOM);
        let acked: HashSet<u128> = shared.acked[r].lock().unwrap().clone();
        let messages = all_messages(&memory, *rid).await;
        let ids: Vec<u128> = messages.iter().map(|m| id128(&m.id.to_hex())).collect();
        assert_eq!(ids.iter().copied().collect::<HashSet<_>>().len(), ids.len(), "room {r}: an id stored twice");
        assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), acked, "room {r}: stored messages are the acked ones");
        let sends: usize = members.iter().map(|m| m.texts.len()).sum();
        assert_eq!(messages.len(), sends, "room {r}: one stored message per send (retries included)");
        let by_sender: HashMap<&str, &Report> = members.iter().map(|m| (m.user.as_str(), *m)).collect();
        let member_ids: HashSet<&str> = by_sender.keys().copied().collect();
        for m in &messages {
            let id = id128(&m.id.to_hex());
            let sender = by_sender[m.sender_id.as_str()];
            let cmid = m.client_message_id.as_ref().unwrap().as_str();
            assert_eq!(sender.acked.get(cmid), Some(&id), "room {r}: {cmid} stored as another message");
            assert_eq!(sender.texts[cmid], m.text().map(MessageText::as_str).unwrap_or_default());
            let mut to: Vec<&str> = m.delivered_to().iter().map(|x| x.user.as_str()).collect();
            to.sort_unstable();
            let mut expected: Vec<&str> = member_ids.iter().copied().filter(|u| *u != m.sender_id.as_str()).collect();
            expected.sort_unstable();
            assert_eq!(to, expected, "room {r}: {cmid} marked delivered to exactly every other member, once");
            assert!(m.read_by().is_empty());
            for member in &members {
                assert_eq!(member.received.get(&id), Some(&1), "room {r}: {} received {cmid}", member.user);
                let (s, c, t) = &member.contents[&id];
                assert_eq!(
                    (s.as_str(), c.as_str(), t.as_str()),
                    (m.sender_id.as_str(), cmid, m.text().map(MessageText::as_str).unwrap_or_default())
                );
                for u in &expected {
                    let times = member.announced.get(&((*u).to_owned(), id));
                    assert_eq!(times, Some(&1), "room {r}: {} told {u} received {cmid}", member.user);
                }
            }
        }
        for member in &members {
            assert_eq!(member.received.len(), messages.len(), "room {r}: {} received a stray message", member.user);
            assert_eq!(member.announced.len(), messages.len() * (PER_ROOM - 1), "room {r}: stray announcements");
            assert!(member.acks.values().all(|n| *n == 1), "room {r}: {} got an ack twice", member.user);
            deliveries += u64::from(member.received.values().sum::<u32>());
            announcements += u64::from(member.announced.values().sum::<u32>());
        }
        stored_total += messages.len();
    }
    assert!(stored_total >= n, "every connection sent at least one message");
    let retries: usize = reports.iter().map(|r| r.retries).sum();
    let mut latencies: Vec<Duration> = reports.iter().flat_map(|r| r.ack_latencies.iter().copied()).collect();
    latencies.sort_unstable();
    eprintln!(
        "soak: {n} connections, {ROOMS} rooms, {:?} chatting ({ran_for:.1?} in all): \
         {stored_total} messages stored once ({retries} retries deduplicated), {deliveries} deliveries, \
         {announcements} receipt announcements; \
         ack latency p50 {:?} p99 {:?} max {:?}; 0 connections left",
        duration,
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies.last().copied().unwrap_or_default(),
    );
}
