//! Latency histograms, delivery bookkeeping, and the benchmark's message text format.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::BenchError;

/// Marks every benchmark message text (the server stores the text as sent).
pub const TEXT_TAG: &str = "lcb";

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since this process' benchmark epoch (monotonic).
pub fn now_ns() -> u64 {
    ns_of(Instant::now())
}

/// `t` in nanoseconds since the benchmark epoch (0 for instants before it).
pub fn ns_of(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// A latency histogram in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).map_err(|e| BenchError::Histogram(format!("{e:?}")))
}

/// A latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Summarizes a histogram in nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        #[allow(clippy::cast_precision_loss)]
        let ms = |ns: u64| ns as f64 / 1e6;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1e6,
        }
    }
}

/// Which sequence numbers one receiver has seen from one sender: tells duplicates apart.
#[derive(Clone, Debug, Default)]
pub struct Seen(Vec<u64>);

/// The largest sequence number tracked (larger ones are treated as strays).
pub const MAX_SEQ: u64 = 1 << 32;

impl Seen {
    /// Records `seq`; true when it is new.
    pub fn insert(&mut self, seq: u64) -> bool {
        let Ok(word) = usize::try_from(seq / 64) else { return false };
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }
}

/// The fields a benchmark message text carries: `lcb NONCE PHASE SENDER SEQ T_NS xxxx...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchText<'a> {
    /// The run's nonce (texts of other runs are ignored).
    pub nonce: &'a str,
    /// The measurement phase (warm-up, steps...).
    pub phase: usize,
    /// The sender's connection index.
    pub sender: usize,
    /// The sender's sequence number.
    pub seq: u64,
    /// When the message was sent or, for scheduled workloads, when it was due (ns since epoch).
    pub t_ns: u64,
}

impl BenchText<'_> {
    /// The text, padded with `x` to at least `size` bytes.
    pub fn render(&self, size: usize) -> String {
        let mut s = format!("{TEXT_TAG} {} {} {} {} {} ", self.nonce, self.phase, self.sender, self.seq, self.t_ns);
        if s.len() < size {
            s.extend(std::iter::repeat_n('x', size - s.len()));
        }
        s
    }

    /// Parses a text made by [`BenchText::render`].
    pub fn parse(text: &str) -> Option<BenchText<'_>> {
        let mut it = text.split(' ');
        if it.next()? != TEXT_TAG {
            return None;
        }
        let nonce = it.next()?;
        let phase = it.next()?.parse().ok()?;
        let sender = it.next()?.parse().ok()?;
        let seq = it.next()?.parse().ok().filter(|s| *s < MAX_SEQ)?;
        let t_ns = it.next()?.parse().ok()?;
        Some(BenchText { nonce, phase, sender, seq, t_ns })
    }
}

/// The server message id and text of a `message` frame, found without a full JSON parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// `data.id`.
    pub id: &'a str,
    /// `data.message`.
    pub text: &'a str,
}

fn string_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let start = s.find(key)? + key.len();
    let len = s[start..].find('"')?;
    Some(&s[start..start + len])
}

/// The id and text of a `message` frame whose text is a benchmark text; `None` for anything
/// else (other events, other texts).
pub fn message_view(frame: &str) -> Option<MessageView<'_>> {
    let data = frame.strip_prefix(r#"{"event":"message","data":{"#)?;
    let start = data.find(r#""message":"lcb "#)? + r#""message":""#.len();
    let text = &data[start..start + data[start..].find('"')?];
    let id = string_field(data, r#""id":""#)?;
    Some(MessageView { id, text })
}

/// Whether a frame is a receipt broadcast (`messagesDelivered` or `messageReads`).
pub fn is_receipt_frame(frame: &str) -> bool {
    frame.starts_with(r#"{"event":"messagesDelivered""#) || frame.starts_with(r#"{"event":"messageReads""#)
}

/// Converts a duration to fractional milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_pad() {
        let t = BenchText { nonce: "ab12", phase: 2, sender: 7, seq: 99, t_ns: 123_456 };
        let s = t.render(100);
        assert_eq!(s.len(), 100);
        assert_eq!(BenchText::parse(&s), Some(t));
        assert_eq!(BenchText::parse("hello"), None);
    }

    #[test]
    fn message_view_reads_server_frames() {
        let f = r#"{"event":"message","data":{"id":"6751b6df1ad14eaa13a03313","requestId":"6751b6df1ad14eaa13a03314","senderId":"u","senderRole":"LAB","message":"lcb n 1 2 3 4 xx","createdAt":"2024-12-05T14:03:11.120Z","deliveredTo":[],"readBy":[]}}"#;
        let v = message_view(f).unwrap();
        assert_eq!(v.id, "6751b6df1ad14eaa13a03313");
        assert_eq!(v.text, "lcb n 1 2 3 4 xx");
        assert!(message_view(&f.replace("lcb ", "hi ")).is_none());
        assert!(message_view(r#"{"event":"ack","data":{}}"#).is_none());
        assert!(is_receipt_frame(r#"{"event":"messageReads","data":{}}"#));
    }

    #[test]
    fn seen_tells_duplicates() {
        let mut s = Seen::default();
        assert!(s.insert(5));
        assert!(!s.insert(5));
        assert!(s.insert(500));
    }
}
