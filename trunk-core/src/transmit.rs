//! Where the core's outgoing datagrams go.
//!
//! The relay forwards most datagrams it receives, so instead of queueing
//! them inside the core (one more copy and an allocation) it writes each
//! one straight into the caller's send batch through this trait. The
//! gateway implements it over its `sendmmsg` buffers; tests collect into a
//! `Vec`.

use std::net::SocketAddr;

/// The largest datagram the core ever asks to send. Asterisk reads at most
/// 4096 bytes per datagram (PROTOCOL.md 13.3).
pub const MAX_DATAGRAM: usize = 4096;

/// A sink for outgoing datagrams.
pub trait Transmit {
    /// A scratch buffer of at least [`MAX_DATAGRAM`] bytes for the next
    /// datagram. Its contents are unspecified.
    fn buffer(&mut self) -> &mut [u8];

    /// Sends the first `len` bytes of the buffer last returned by
    /// [`buffer`](Self::buffer) to `to`.
    fn commit(&mut self, to: SocketAddr, len: usize);

    /// Sends a copy of `datagram` to `to`. Datagrams longer than
    /// [`MAX_DATAGRAM`] are not sent.
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        let buf = self.buffer();
        if let Some(dst) = buf.get_mut(..datagram.len()) {
            dst.copy_from_slice(datagram);
            self.commit(to, datagram.len());
        }
    }
}

/// A [`Transmit`] that keeps every datagram, for tests and simulations.
#[derive(Debug)]
pub struct VecTransmit {
    scratch: Box<[u8; MAX_DATAGRAM]>,
    /// The datagrams sent, oldest first.
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl Default for VecTransmit {
    fn default() -> Self {
        Self {
            scratch: Box::new([0; MAX_DATAGRAM]),
            sent: Vec::new(),
        }
    }
}

impl VecTransmit {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the datagrams sent so far.
    pub fn take(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }
}

impl Transmit for VecTransmit {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.scratch[..]
    }

    fn commit(&mut self, to: SocketAddr, len: usize) {
        let len = len.min(MAX_DATAGRAM);
        self.sent.push((to, self.scratch[..len].to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_copies_and_refuses_oversize() {
        let to: SocketAddr = "127.0.0.1:4569".parse().unwrap();
        let mut out = VecTransmit::new();
        out.send(to, b"abc");
        out.send(to, &[0; MAX_DATAGRAM + 1]);
        let b = out.buffer();
        b[..2].copy_from_slice(b"xy");
        out.commit(to, 2);
        assert_eq!(
            out.take(),
            vec![(to, b"abc".to_vec()), (to, b"xy".to_vec())]
        );
    }
}
