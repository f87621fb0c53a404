//! The Lua scripts of the Redis presence, each run atomically by Redis. Every script takes a
//! room's three keys together (see the parent module): `K` its entries, `X` its index of users,
//! `R` their roles.

/// Server time in milliseconds, and the helpers on entries
/// (`<byte length of the user id>:<user id>|<role>|<node id>`), as a Lua prelude.
const PRELUDE: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
local function owner(m) local d = string.match(m, '^%d+') return string.sub(m, 1, #d + tonumber(d) + 2) end \
local function user_of(m) local d = string.match(m, '^%d+') return string.sub(m, #d + 2, #d + 1 + tonumber(d)) end \
local function role_of(m) local d = string.match(m, '^%d+') return string.match(string.sub(m, #d + tonumber(d) + 3), '^[^|]*') end \
local function live_of(K, p, but) for _, l in ipairs(redis.call('ZRANGEBYSCORE', K, now, '+inf')) do \
if l ~= but and string.sub(l, 1, #p) == p then return true end end return false end \
local function drop_stale(K, p) for _, s in ipairs(redis.call('ZRANGEBYSCORE', K, '-inf', '(' .. now)) do \
if string.sub(s, 1, #p) == p then redis.call('ZREM', K, s) end end end \
local function listed(X, R, e) redis.call('ZADD', X, 0, user_of(e)) redis.call('HSET', R, user_of(e), role_of(e)) end \
local function unlisted(X, R, e) redis.call('ZREM', X, user_of(e)) redis.call('HDEL', R, user_of(e)) end \
local function expire(K, X, R, ttl) for _, k in ipairs({K, X, R}) do redis.call('PEXPIRE', k, ttl) end end ";

/// KEYS: K, X, R. ARGV: entry, owner prefix, ttl ms. Returns 1 when the user had no live entry
/// before.
pub(super) const ENTER: &str = "local first = 1 if live_of(KEYS[1], ARGV[2]) then first = 0 end drop_stale(KEYS[1], ARGV[2]) \
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1]) listed(KEYS[2], KEYS[3], ARGV[1]) \
expire(KEYS[1], KEYS[2], KEYS[3], ARGV[3]) return first";

/// KEYS: K, X, R. ARGV: entry, owner prefix. Returns 1 when the entry was there and the user
/// has no live one left.
pub(super) const EXIT: &str = "local removed = redis.call('ZREM', KEYS[1], ARGV[1]) local last = 1 \
if live_of(KEYS[1], ARGV[2]) then last = 0 end drop_stale(KEYS[1], ARGV[2]) \
if last == 1 then unlisted(KEYS[2], KEYS[3], ARGV[1]) end if removed == 0 then return 0 end return last";

/// KEYS: X, R. ARGV: the lowest user id (`-`, or `(<user id>` for those after it), how many.
/// Returns {how many users in all, the users, their roles}.
pub(super) const PAGE: &str = "local c = redis.call('ZCARD', KEYS[1]) local users = {} local roles = {} \
if tonumber(ARGV[2]) > 0 then users = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, ARGV[2]) end \
if #users > 0 then roles = redis.call('HMGET', KEYS[2], unpack(users)) end return {c, users, roles}";

/// KEYS: K, X, R of each room. ARGV: ttl ms, then for each room how many of its entries this
/// node holds and those entries. Returns, per room, {entries re-added for users with no other
/// live entry, swept entries of users with no live entry left (one per user)}.
///
/// An entry's `ZADD` says whether it was missing (expired and swept, or a Redis that lost it);
/// only then is its user listed again in `X` and `R`. An entry that was there was listed when it
/// was written, and the three keys live and expire together, so a refresh of a room whose entries
/// are all there costs one `ZADD` per entry, three `PEXPIRE`s and the sweep's `ZRANGEBYSCORE`.
pub(super) const REFRESH: &str = "local ttl = tonumber(ARGV[1]) local out = {} local a = 2 \
for r = 0, #KEYS / 3 - 1 do local K, X, R = KEYS[3 * r + 1], KEYS[3 * r + 2], KEYS[3 * r + 3] \
local n = tonumber(ARGV[a]) a = a + 1 local back = {} \
for i = a, a + n - 1 do local e = ARGV[i] \
if redis.call('ZADD', K, now + ttl, e) == 1 then \
if not live_of(K, owner(e), e) then table.insert(back, e) end listed(X, R, e) end end \
a = a + n if n > 0 then expire(K, X, R, ttl) end \
local left = {} local seen = {} \
for _, s in ipairs(redis.call('ZRANGEBYSCORE', K, '-inf', '(' .. now)) do \
redis.call('ZREM', K, s) local p = owner(s) \
if not seen[p] and not live_of(K, p) then seen[p] = true table.insert(left, s) unlisted(X, R, s) end end \
out[r + 1] = {back, left} end return out";

/// A script's whole source: the prelude and its body.
pub(super) fn source(body: &str) -> String {
    format!("{PRELUDE}{body}")
}
