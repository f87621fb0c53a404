//! What a member makes of each frame it receives: the join's page, catch-up pages, live
//! messages, errors; and the frames it sends back (a page, a check, a join again).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::outcome::{contiguous_id, has_hole};
use super::{Ask, CHECK_ID, JOIN_ID, PAGE_ID, RETRY, Session, Step, frame, retry_pause};
use crate::stats::{self, BenchText};

impl Session<'_> {
    pub(super) fn on_frame(&mut self, v: &Value) -> Option<Step> {
        let data = &v["data"];
        match v["event"].as_str()? {
            "message" if data["requestId"] == *self.me.room_id => {
                self.record(data, true);
                // A live message past a missing seq: the missing one may have been stored after
                // its sender was told it failed, and nobody published it; the client's rule is a
                // history page after the newest message held without a hole.
                if !self.caught_up || self.filling || !has_hole(self.out) {
                    return None;
                }
                let after = self.after();
                self.filling = after.is_some();
                after.map(Step::Page)
            }
            "roomHistory" if data["requestId"] == *self.me.room_id => {
                if v["id"].as_u64() != Some(CHECK_ID) {
                    self.asked = None;
                }
                let messages = data["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
                if v["id"].as_u64() == Some(CHECK_ID) {
                    let last = messages.iter().filter_map(|m| m["seq"].as_u64()).max().unwrap_or(0);
                    self.run.store_last(self.me.room, last);
                    return None;
                }
                if self.out.base.is_none() {
                    let newest = messages.iter().max_by_key(|m| m["seq"].as_u64());
                    self.out.base = Some(newest.and_then(|m| m["seq"].as_u64()).unwrap_or(0));
                    self.out.base_id = newest.and_then(|m| m["id"].as_str()).map(Into::into);
                    self.caught_up = true;
                    return Some(Step::CaughtUp);
                }
                for m in messages {
                    self.record(m, false);
                }
                if (self.forward || self.filling)
                    && data["hasMore"].as_bool() == Some(true)
                    && let Some(after) = contiguous_id(self.out).filter(|_| !messages.is_empty())
                {
                    return Some(Step::Page(after));
                }
                self.filling = false;
                if self.caught_up {
                    None
                } else {
                    self.caught_up = true;
                    Some(Step::CaughtUp)
                }
            }
            "error" => {
                self.run.server_error(v);
                if matches!(v["id"].as_u64(), Some(JOIN_ID | PAGE_ID)) {
                    self.asked = None;
                }
                let retryable = data["retryable"] == true;
                if self.caught_up {
                    let wait = data["retryAfterMs"].as_u64().map_or(RETRY, Duration::from_millis);
                    let ask = match v["id"].as_u64() {
                        Some(PAGE_ID) if self.filling && retryable => Ask::Page,
                        Some(CHECK_ID) if retryable => Ask::Check,
                        Some(PAGE_ID) => {
                            self.filling = false;
                            return None;
                        }
                        _ => return None,
                    };
                    self.later = Some((Instant::now() + wait, ask));
                    return None;
                }
                if !matches!(v["id"].as_u64(), Some(JOIN_ID | PAGE_ID)) {
                    return None;
                }
                let code = data["code"].as_str().unwrap_or("no code").to_owned();
                if !retryable {
                    return Some(Step::Retry(code));
                }
                let wait = data["retryAfterMs"].as_u64().map_or_else(retry_pause, Duration::from_millis);
                // The library asks the same again: the join, or the catch-up page.
                let ask = if v["id"].as_u64() == Some(PAGE_ID) { Ask::Page } else { Ask::Join };
                Some(Step::AskAgain(code, wait, ask))
            }
            _ => None,
        }
    }

    /// Where the session stood, for the trail: caught up, or the request not answered yet.
    pub(super) fn standing(&self) -> String {
        match (self.caught_up, self.asked) {
            (true, _) => "caught up".into(),
            (false, None) if self.later.is_some() => "a refused request waiting to be asked again".into(),
            (false, Some((ask, at))) => format!("{} unanswered for {} s", ask.name(), at.elapsed().as_secs()),
            (false, None) => "not caught up, nothing asked".into(),
        }
    }

    /// The read of the store's last `seq` of the room (`history {limit: 1}`).
    pub(super) fn check(&self) -> Message {
        frame("history", &json!({"requestId": &*self.me.room_id, "limit": 1}), CHECK_ID)
    }

    /// Where the next page starts: the newest message held without a hole, else the base.
    pub(super) fn after(&self) -> Option<String> {
        contiguous_id(self.out).or_else(|| self.out.base_id.as_deref().map(str::to_owned))
    }

    fn record(&mut self, m: &Value, live: bool) {
        let (Some(seq), Some(id)) = (m["seq"].as_u64(), m["id"].as_str()) else { return };
        if self.out.base.is_some_and(|b| seq <= b) {
            return;
        }
        if self.out.seqs.insert(seq, id.into()).is_some() {
            self.out.duplicates += 1;
            return;
        }
        if live
            && let Some(t) = m["message"].as_str().and_then(BenchText::parse)
            && t.nonce == self.run.nonce
        {
            self.run.delivered(&t, stats::now_ns().saturating_sub(t.t_ns));
        }
    }
}
