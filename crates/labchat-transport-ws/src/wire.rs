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

/// The header of an unmasked, final text frame (RFC 6455 §5.2) of `len` payload bytes, written
/// into `head`; returns the header's length.
fn text_head(len: usize, head: &mut [u8; 10]) -> usize {
    // FIN and opcode 1 (text).
    head[0] = 0x81;
    match (u8::try_from(len), u16::try_from(len)) {
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
    }
}

/// A text frame's length on the wire: its header and its payload.
fn wire_len(body: &Utf8Bytes) -> usize {
    text_head(body.len(), &mut [0; 10]) + body.len()
}

/// Frames queued for the socket (their payloads; each header is made when it is written), the
/// first one possibly partly written.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    frames: VecDeque<Utf8Bytes>,
    /// Bytes of the first frame already written.
    sent: usize,
}

/// Headers made for one vectored write: one per frame, two buffers per frame.
pub(crate) type Heads = [[u8; 10]; MAX_SLICES / 2];

impl Wire {
    /// Queues a text frame with payload `body`.
    #[cfg(test)]
    pub(crate) fn push_text(&mut self, body: Utf8Bytes) {
        self.frames.push_back(body);
    }

    /// Queues the text frames with these payloads, in order. When nothing waits, the queue is
    /// `bodies` itself: the outbound queue's memory is handed on, nothing is copied or allocated.
    pub(crate) fn push_texts(&mut self, bodies: VecDeque<Utf8Bytes>) {
        if self.frames.is_empty() {
            self.frames = bodies;
        } else {
            self.frames.extend(bodies);
        }
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

    /// Fills `out` with what is to be written next, in order, the frames' headers made in
    /// `heads`; returns how many buffers it filled.
    pub(crate) fn slices<'a>(&'a self, heads: &'a mut Heads, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut skip = self.sent;
        for (body, head) in self.frames.iter().zip(heads.iter_mut()) {
            let head_len = text_head(body.len(), head);
            let head: &'a [u8; 10] = head;
            for part in [&head[..head_len], body.as_bytes()] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                let Some(slot) = out.get_mut(n) else { return n };
                *slot = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
        }
        n
    }

    /// Drops the `n` bytes just written.
    pub(crate) fn advance(&mut self, n: usize) {
        let mut left = self.sent + n;
        while let Some(front) = self.frames.front() {
            let len = wire_len(front);
            if left < len {
                break;
            }
            left -= len;
            self.frames.pop_front();
        }
        self.sent = left;
        if self.frames.is_empty() && self.frames.capacity() > 0 {
            // Nothing is kept after a burst: an idle connection holds no queue.
            self.frames = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn head(len: usize) -> Vec<u8> {
        let mut h = [0; 10];
        let n = text_head(len, &mut h);
        h[..n].to_vec()
    }

    fn written(wire: &mut Wire, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let mut heads: Heads = [[0; 10]; MAX_SLICES / 2];
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let k = wire.slices(&mut heads, &mut slices);
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
        for (len, want) in [(0, vec![0x81, 0]), (125, vec![0x81, 125]), (126, vec![0x81, 126, 0, 126])] {
            assert_eq!(head(len), want, "{len}");
        }
        assert_eq!(head(70_000), [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn frames_come_out_whole_and_in_order_whatever_the_write_sizes() {
        let bodies = ["", "a", &"é".repeat(100), &"b".repeat(70_000), "c"];
        let mut expected = Vec::new();
        for b in bodies {
            expected.extend_from_slice(&head(b.len()));
            expected.extend_from_slice(b.as_bytes());
        }
        for step in [1, 3, 7, 1000, 1 << 20] {
            let mut wire = Wire::default();
            // The first two handed on as one batch, the rest added behind them.
            wire.push_texts(bodies[..2].iter().map(|b| Utf8Bytes::from(b.to_string())).collect());
            for b in &bodies[2..] {
                wire.push_text(Utf8Bytes::from(b.to_string()));
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
        // More frames than one write takes: the write stops at the bound.
        let mut heads: Heads = [[0; 10]; MAX_SLICES / 2];
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(wire.slices(&mut heads, &mut slices), MAX_SLICES);
    }
}
