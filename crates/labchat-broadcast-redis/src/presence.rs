//! The cross-node [`Presence`]: room members in Redis, with a time to live refreshed by their
//! node, and the typing throttle.
//!
//! Keys (on a Redis Cluster the `<request id hex>` of the presence keys, this sorted set and its
//! index of users and of roles, is preceded by its partition's hash tag, `{p<n>}:`, so that a
//! room's keys, and the rooms of one partition, share a slot):
//! - `labchat:presence:<request id hex>`: a sorted set of one entry per user and node,
//!   `<byte length of the user id>:<user id>|<role>|<node id>`, scored by its expiry in
//!   milliseconds of the Redis server's clock (`TIME`, so nodes' clocks do not matter). The key
//!   itself expires with its latest entry.
//! - `labchat:typing:<request id hex>:<user id>`: `SET NX PX 2000`; a user may type in a room
//!   while it is absent.
//!
//! Every [`PresenceSettings::refresh`] the node pushes the expiry of its own entries to
//! [`PresenceSettings::ttl`] from now and sweeps the expired entries of the rooms it serves:
//! a Lua script removes them and names the users left with no live entry, so exactly one node
//! (the one whose script removed the entry) announces `memberLeft`. A node killed with
//! `kill -9` stops refreshing: its entries expire after the TTL and are swept within one more
//! refresh period (15 s + 5 s by default). An own entry found missing at a refresh (it expired
//! while Redis was unreachable, and was swept) is written again and the user announced again
//! with `memberJoined` when they had no other live entry.
//!
//! Redis unreachable: every call fails with a [`PresenceError`] (logged by the use cases and
//! counted in `labchat_presence_errors_total`), and the use cases answer from the node's own
//! connections; the node keeps its entries in memory and writes them again once Redis answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use labchat_core::{BroadcastError, Broadcaster, Member, MembersPage, Presence, PresenceError, TYPING_INTERVAL};
use labchat_domain::{RequestId, Role, RoomEvent, User, UserId};
use tokio::sync::watch;
use tracing::Instrument;

use crate::RedisSettings;
use crate::metrics_names::PRESENCE_ERRORS;
use crate::topology::{Conn, Connector, Topology};

/// How long presence entries live and how often their node refreshes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceSettings {
    /// How long an entry lives without a refresh (default 15 s).
    pub ttl: Duration,
    /// How often the node refreshes its entries and sweeps expired ones (default 5 s). A dead
    /// node's members are announced gone within `ttl + refresh`.
    pub refresh: Duration,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(15), refresh: Duration::from_secs(5) }
    }
}

mod keys;
mod scripts;

use keys::{entry, owner, parse_entry, room_keys, typing_key};

/// How many rooms one refresh script handles: a node's rooms are refreshed with one call per
/// this many, not one per room.
const REFRESH_ROOMS_PER_CALL: usize = 256;

/// After a failed command, how long calls fail at once instead of waiting for Redis again: a
/// join holds its room's order while it enters the room's presence.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// A room's users with an entry of this node.
type RoomUsers = HashMap<UserId, Role>;

struct Inner {
    node_id: String,
    connector: Connector,
    topology: Topology,
    conn: Mutex<Option<Conn>>,
    /// Until when calls fail at once (after a failure).
    down_until: Mutex<Option<Instant>>,
    op_timeout: Duration,
    settings: PresenceSettings,
    /// This node's entries, kept to refresh them (and to write them again after an outage).
    local: Mutex<HashMap<RequestId, RoomUsers>>,
    broadcaster: Arc<dyn Broadcaster>,
}

/// The cross-node [`Presence`]; see the module's documentation.
pub struct RedisPresence {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("node_id", &self.inner.node_id)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl RedisPresence {
    /// Starts the node's refresh task and returns at once; Redis being down is not an error. The
    /// sweeps' `memberLeft` (and the `memberJoined` of entries written again) are published
    /// through `broadcaster`. Fails on a malformed URL, or outside a tokio runtime.
    pub fn start(
        redis: &RedisSettings,
        settings: PresenceSettings,
        broadcaster: Arc<dyn Broadcaster>,
    ) -> Result<Arc<Self>, BroadcastError> {
        let connector = Connector::new(&redis.url, &redis.topology)
            .map_err(|e| BroadcastError(format!("invalid redis url: {e}")))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| BroadcastError(format!("the redis presence needs a tokio runtime: {e}")))?;
        let inner = Arc::new(Inner {
            node_id: redis.node_id.clone(),
            connector,
            topology: redis.topology.clone(),
            conn: Mutex::new(None),
            down_until: Mutex::new(None),
            op_timeout: redis.op_timeout,
            settings,
            local: Mutex::new(HashMap::new()),
            broadcaster,
        });
        let (stop, stopped) = watch::channel(false);
        let span = tracing::info_span!("redis_presence", node = %inner.node_id);
        runtime.spawn(Arc::clone(&inner).refresh_loop(stopped).instrument(span));
        Ok(Arc::new(Self { inner, stop }))
    }

    /// Stops refreshing (idempotent): this node's entries expire after the TTL.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for RedisPresence {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    fn local(&self) -> MutexGuard<'_, HashMap<RequestId, RoomUsers>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> PresenceError {
        metrics::counter!(PRESENCE_ERRORS, "node" => self.node_id.clone()).increment(1);
        // On a cluster one master down is not all of Redis down: the other rooms go on.
        if !self.topology.is_cluster() {
            *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + RETRY_AFTER);
        }
        PresenceError(format!("redis presence: {what}: {e}"))
    }

    /// The shared connection, opened on first use and after a failure; fails at once for
    /// [`RETRY_AFTER`] after a failure.
    async fn conn(&self) -> Result<Conn, PresenceError> {
        if self.down_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| Instant::now() < t) {
            metrics::counter!(PRESENCE_ERRORS, "node" => self.node_id.clone()).increment(1);
            return Err(PresenceError("redis presence: unreachable (retrying shortly)".to_owned()));
        }
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let c = match tokio::time::timeout(self.op_timeout, self.connector.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.failed("connect", e)),
            Err(_) => return Err(self.failed("connect", format!("no answer within {:?}", self.op_timeout))),
        };
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Runs `cmd`, bounded by the op timeout; a failure drops the connection.
    async fn query<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Result<T, PresenceError> {
        let mut c = self.conn().await?;
        let result = match tokio::time::timeout(self.op_timeout, cmd.query_async::<T>(&mut c)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => self.failed(what, e),
            Err(_) => self.failed(what, format!("no answer within {:?}", self.op_timeout)),
        };
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Err(result)
    }

    fn script(&self, body: &str, room: RequestId) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(scripts::source(body)).arg(3).arg(&room_keys(&self.topology, room)[..]);
        cmd
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.settings.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Refreshes the node's entries of `rooms` and sweeps their expired ones with one script
    /// call; publishes what changed.
    async fn refresh_rooms(&self, rooms: &[(RequestId, Vec<(UserId, Role)>)]) -> Result<(), PresenceError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(scripts::source(scripts::REFRESH)).arg(rooms.len() * 3);
        for (room, _) in rooms {
            cmd.arg(&room_keys(&self.topology, *room)[..]);
        }
        cmd.arg(self.ttl_ms());
        for (_, users) in rooms {
            cmd.arg(users.len());
            for (user, role) in users {
                cmd.arg(entry(user, *role, &self.node_id));
            }
        }
        let changes: Vec<(Vec<String>, Vec<String>)> = self.query("refresh", &cmd).await?;
        // Every room's changes are announced first: the script already removed the swept
        // entries, so a `memberLeft` not published now would never be.
        for ((room, _), (back, left)) in rooms.iter().zip(&changes) {
            self.announce(*room, back, left).await;
        }
        let mut failed = None;
        for (room, users) in rooms {
            if let Err(e) = self.exit_gone(*room, users).await {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Publishes what a refresh of `room` changed: the users of this node whose expired entry
    /// it wrote again (still here), and those whose last entry it swept.
    async fn announce(&self, room: RequestId, back: &[String], left: &[String]) {
        let back = back.iter().filter_map(|e| parse_entry(e)).filter(|(u, _)| self.is_local(room, u));
        for (user_id, role) in back {
            tracing::info!(request_id = %room, user_id = %user_id, "presence: an expired entry of this node written again");
            self.publish(RoomEvent::MemberJoined { request_id: room, user_id, role }).await;
        }
        for (user_id, _) in left.iter().filter_map(|e| parse_entry(e)) {
            tracing::info!(request_id = %room, user_id = %user_id, "presence: expired; announcing memberLeft");
            self.publish(RoomEvent::MemberLeft { request_id: room, user_id }).await;
        }
    }

    /// A user who exited while the refresh of `room` ran was written again by it: removes that
    /// entry (their exit already decided what to announce). A failure leaves the entry to expire.
    async fn exit_gone(&self, room: RequestId, users: &[(UserId, Role)]) -> Result<(), PresenceError> {
        for (user, role) in users.iter().filter(|(u, _)| !self.is_local(room, u)) {
            let mut exit = self.script(scripts::EXIT, room);
            exit.arg(entry(user, *role, &self.node_id)).arg(owner(user));
            self.query::<i64>("refresh", &exit).await?;
        }
        Ok(())
    }

    fn is_local(&self, room: RequestId, user: &UserId) -> bool {
        self.local().get(&room).is_some_and(|users| users.contains_key(user))
    }

    async fn publish(&self, event: RoomEvent) {
        if let Err(e) = self.broadcaster.publish(event).await {
            tracing::warn!(error = %e, "presence: publishing a presence change failed");
        }
    }

    async fn refresh_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.refresh) => {}
                _ = stop.changed() => return,
            }
            let mut rooms: Vec<(RequestId, Vec<(UserId, Role)>)> = self
                .local()
                .iter()
                .map(|(room, users)| (*room, users.iter().map(|(u, r)| (u.clone(), *r)).collect()))
                .collect();
            // One script call touches the keys of one slot on a cluster: one partition's rooms.
            let group = |room: &RequestId| self.topology.key_group(*room);
            rooms.sort_by_key(|(room, _)| group(room));
            let batches =
                rooms.chunk_by(|a, b| group(&a.0) == group(&b.0)).flat_map(|g| g.chunks(REFRESH_ROOMS_PER_CALL));
            let mut error = None;
            for batch in batches {
                if let Err(e) = self.refresh_rooms(batch).await {
                    error = Some(e);
                    // On a cluster the other partitions may live on masters that answer.
                    if !self.topology.is_cluster() {
                        break;
                    }
                }
            }
            match (error, failing) {
                (Some(e), false) => {
                    tracing::warn!(error = %e, "presence: refreshing failed; retrying every refresh period");
                    failing = true;
                }
                (None, true) => {
                    tracing::info!("presence: refreshing again");
                    failing = false;
                }
                _ => {}
            }
        }
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn enter(&self, room: RequestId, user: &User) -> Result<bool, PresenceError> {
        let inner = &self.inner;
        inner.local().entry(room).or_default().insert(user.id().clone(), user.role());
        let mut cmd = inner.script(scripts::ENTER, room);
        cmd.arg(entry(user.id(), user.role(), &inner.node_id)).arg(owner(user.id())).arg(inner.ttl_ms());
        Ok(inner.query::<i64>("enter", &cmd).await? == 1)
    }

    async fn exit(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError> {
        let inner = &self.inner;
        let role = {
            let mut local = inner.local();
            let Some(users) = local.get_mut(&room) else { return Ok(false) };
            let role = users.remove(user);
            if users.is_empty() {
                local.remove(&room);
            }
            role
        };
        let Some(role) = role else { return Ok(false) };
        let mut cmd = inner.script(scripts::EXIT, room);
        cmd.arg(entry(user, role, &inner.node_id)).arg(owner(user));
        Ok(inner.query::<i64>("exit", &cmd).await? == 1)
    }

    async fn members(
        &self,
        room: RequestId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<MembersPage, PresenceError> {
        let [_, users_key, roles_key] = room_keys(&self.inner.topology, room);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(scripts::source(scripts::PAGE)).arg(2).arg(users_key).arg(roles_key);
        cmd.arg(after.map_or_else(|| "-".to_owned(), |a| format!("({}", a.as_str())));
        // One more than asked, to tell whether more follow.
        cmd.arg(limit.saturating_add(1));
        let (count, users, roles): (usize, Vec<String>, Vec<Option<String>>) =
            self.inner.query("members", &cmd).await?;
        let after_cursor = users.into_iter().zip(roles).filter_map(|(user, role)| {
            Some(Member { user_id: UserId::parse(user).ok()?, role: Role::parse(&role?).ok()? })
        });
        Ok(MembersPage::from_ordered(after_cursor, count, limit))
    }

    async fn may_type(&self, room: RequestId, user: &UserId) -> Result<bool, PresenceError> {
        let ms = u64::try_from(TYPING_INTERVAL.as_millis()).unwrap_or(2000);
        let mut cmd = redis::cmd("SET");
        cmd.arg(typing_key(room, user)).arg(1).arg("NX").arg("PX").arg(ms);
        Ok(self.inner.query::<Option<String>>("typing", &cmd).await?.is_some())
    }
}
