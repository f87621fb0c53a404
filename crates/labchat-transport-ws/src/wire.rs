//! The server's text frames on their way to the socket, written straight from the outbound
//! queue's shared bytes: each frame is a small header and the encoded payload that every
//! receiver of a broadcast shares, handed to the kernel by a vectored write. No buffer holds a
//! copy, so a large reply or a burst leaves nothing behind once it is written.
//!
//! Only whole frames are queued here, and only when the websocket library has nothing half
//! written (see `Writing::poll_write`); [`crate::metered::Metered`] writes what is queued here
//! before any byte of the library's, so the two never interleave inside a frame.

use std::collections::VecDeque;
use std::io::IoSlice;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Most buffers handed to one vectored write (two per frame: header and payload); Linux takes
/// up to 1024.
pub(crate) const MAX_SLICES: usize = 512;

/// An unmasked, final text frame (RFC 6455 §5.2): its header, and its payload.
#[derive(Debug)]
struct WireFrame {
    head: [u8; 10],
    head_len: u8,
    body: Utf8Bytes,
}

impl WireFrame {
    fn text(body: Utf8Bytes) -> Self {
        let mut head = [0u8; 10];
        // FIN and opcode 1 (text).
        head[0] = 0x81;
        let len = body.len();
        let head_len = match (u8::try_from(len), u16::try_from(len)) {
            (Ok(n), _) if n < 126 => {
                head[1] = n;
                2
            }
            (_, Ok(n)) => {
                head[1] = 126;
                head[2..4].copy_from_slice(&n.to_be_bytes());
                4
            }
            _ => {
                head[1] = 127;
                head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                10
            }
        };
        Self { head, head_len, body }
    }

    fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len()
    }
}

/// Frames queued for the socket, the first one possibly partly written.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    frames: VecDeque<WireFrame>,
    /// Bytes of the first frame already written.
    sent: usize,
}

/// Queue capacity kept after a burst; more is given back once everything is written.
const KEPT_CAPACITY: usize = 0;

impl Wire {
    /// Queues a text frame with payload `body`.
    pub(crate) fn push_text(&mut self, body: Utf8Bytes) {
        self.frames.push_back(WireFrame::text(body));
    }

    /// Whether nothing is waiting to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// How many frames the queue could hold without allocating.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Fills `out` with what is to be written next, in order; returns how many it filled.
    pub(crate) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut skip = self.sent;
        for part in self.frames.iter().flat_map(|f| [f.head(), f.body.as_bytes()]) {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let Some(slot) = out.get_mut(n) else { break };
            *slot = IoSlice::new(&part[skip..]);
            skip = 0;
            n += 1;
        }
        n
    }

    /// Drops the `n` bytes just written.
    pub(crate) fn advance(&mut self, n: usize) {
        let mut left = self.sent + n;
        while let Some(front) = self.frames.front() {
            if left < front.len() {
                break;
            }
            left -= front.len();
            self.frames.pop_front();
        }
        self.sent = left;
        if self.frames.is_empty() && self.frames.capacity() > KEPT_CAPACITY {
            self.frames = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn written(wire: &mut Wire, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let k = wire.slices(&mut slices);
            let mut budget = step;
            for s in &slices[..k] {
                let take = s.len().min(budget);
                out.extend_from_slice(&s[..take]);
                budget -= take;
            }
            wire.advance(step - budget);
        }
        out
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        for (len, head) in [(0, vec![0x81, 0]), (125, vec![0x81, 125]), (126, vec![0x81, 126, 0, 126])] {
            let f = WireFrame::text(Utf8Bytes::from("x".repeat(len)));
            assert_eq!(f.head(), head.as_slice(), "{len}");
        }
        let f = WireFrame::text(Utf8Bytes::from("x".repeat(70_000)));
        assert_eq!(f.head(), [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn frames_come_out_whole_and_in_order_whatever_the_write_sizes() {
        let bodies = ["", "a", &"é".repeat(100), &"b".repeat(70_000), "c"];
        let mut expected = Vec::new();
        for b in bodies {
            let f = WireFrame::text(Utf8Bytes::from(b.to_owned()));
            expected.extend_from_slice(f.head());
            expected.extend_from_slice(b.as_bytes());
        }
        for step in [1, 3, 7, 1000, 1 << 20] {
            let mut wire = Wire::default();
            for b in bodies {
                wire.push_text(Utf8Bytes::from(b.to_owned()));
            }
            assert_eq!(written(&mut wire, step), expected, "writes of {step} bytes");
            assert_eq!(wire.capacity(), 0, "a burst's capacity is given back");
        }
    }

    #[test]
    fn a_write_takes_at_most_the_slice_bound() {
        let mut wire = Wire::default();
        for _ in 0..MAX_SLICES {
            wire.push_text(Utf8Bytes::from_static("x"));
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(wire.slices(&mut slices), MAX_SLICES);
    }
}
