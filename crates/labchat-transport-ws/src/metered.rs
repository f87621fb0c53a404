//! The connection's socket, metered: the bytes the peer has accepted (for the write deadline)
//! and the continuation frames it has sent (which the websocket library folds into messages
//! without showing them, so the rate limit could not see them otherwise). It also carries the
//! server's text frames to the socket ([`Wire`]), ahead of any byte the websocket library
//! writes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::wire::{self, Wire};

/// A byte stream that counts what the peer accepts and the continuation frames it sends.
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    written: u64,
    frames: FrameScanner,
    wire: Wire,
}

impl<S> Metered<S> {
    /// Wraps `inner`, whose first byte read starts a websocket frame.
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, written: 0, frames: FrameScanner::default(), wire: Wire::default() }
    }

    /// The wrapped stream.
    #[cfg(test)]
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The server's text frames waiting for the socket.
    pub(crate) fn wire(&mut self) -> &mut Wire {
        &mut self.wire
    }

    /// Bytes written to the peer so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Continuation frames read from the peer so far.
    pub(crate) fn continuation_frames(&self) -> u64 {
        self.frames.continuations
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            self.frames.scan(&buf.filled()[before..]);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> Metered<S> {
    /// Writes the frames of [`Metered::wire`], as many per syscall as it holds (up to
    /// [`wire::MAX_SLICES`] buffers); `Ready(Ok)` once none is left.
    pub(crate) fn poll_send_wire(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wire.is_empty() {
            let n = {
                let mut heads: wire::Heads = [[0; 10]; wire::MAX_SLICES / 2];
                let mut slices = [io::IoSlice::new(&[]); wire::MAX_SLICES];
                let k = self.wire.slices(&mut heads, &mut slices);
                match Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..k]) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(res) => res?,
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n as u64;
            self.wire.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

/// The websocket library's writes (control frames, and frames written while closing) wait
/// until the frames of [`Metered::wire`] are out, so a frame is never split by another.
impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Err(e) = std::task::ready!(self.poll_send_wire(cx)) {
            return Poll::Ready(Err(e));
        }
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.written += n as u64;
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = std::task::ready!(self.poll_send_wire(cx)) {
            return Poll::Ready(Err(e));
        }
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.written += n as u64;
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_wire(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_wire(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Follows the frame boundaries of a websocket byte stream (RFC 6455 §5.2), reading only the
/// headers. A malformed stream only miscounts: the websocket library rejects it anyway.
#[derive(Debug, Default)]
struct FrameScanner {
    /// The header being read (at most 14 bytes) and how much of it has come.
    header: [u8; 14],
    have: usize,
    /// Payload bytes still to skip before the next header.
    skip: u64,
    continuations: u64,
}

impl FrameScanner {
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let need = self.header_len();
            let n = (need - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == need && need == self.header_len() {
                self.end_of_header();
            }
        }
    }

    /// The length of the current header as far as it is known (2 until its second byte came).
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    fn end_of_header(&mut self) {
        if self.header[0] & 0x0f == 0 {
            self.continuations += 1;
        }
        let h = &self.header;
        self.skip = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        self.have = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame: `fin`, `opcode`, and `len` payload bytes.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => f.push(0x80 | u8::try_from(len).unwrap_or(0)),
            126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(frame(true, 1, 10)); // text
        s.extend(frame(false, 1, 300)); // first fragment
        s.extend(frame(false, 0, 0)); // empty continuation
        s.extend(frame(true, 9, 4)); // ping between fragments
        s.extend(frame(false, 0, 70_000)); // continuation, 64-bit length
        s.extend(frame(true, 0, 5)); // last fragment
        s.extend(frame(true, 2, 126)); // binary, 16-bit length
        s
    }

    #[test]
    fn continuation_frames_are_counted_in_one_read() {
        let mut scanner = FrameScanner::default();
        scanner.scan(&stream());
        assert_eq!((scanner.continuations, scanner.have, scanner.skip), (3, 0, 0));
    }

    #[test]
    fn continuation_frames_are_counted_whatever_the_reads_boundaries() {
        let s = stream();
        for chunk in [1, 2, 3, 5, 7, 13, 512] {
            let mut scanner = FrameScanner::default();
            for piece in s.chunks(chunk) {
                scanner.scan(piece);
            }
            assert_eq!(scanner.continuations, 3, "reads of {chunk} bytes");
        }
    }

    #[test]
    fn a_flood_of_empty_continuation_frames_is_counted() {
        let mut scanner = FrameScanner::default();
        scanner.scan(&frame(false, 1, 1));
        for _ in 0..1000 {
            scanner.scan(&frame(false, 0, 0));
        }
        assert_eq!(scanner.continuations, 1000);
    }
}
