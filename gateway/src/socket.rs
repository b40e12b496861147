//! The UDP sockets the workers receive and send on.
//!
//! Every worker binds its own socket to the same listen address with
//! `SO_REUSEPORT`, so the kernel spreads flows over the workers and no
//! socket is shared between threads (DESIGN.md, "Runtime"). Buffers are
//! large because a trunk tick releases a burst of datagrams at once and
//! the kernel drops what does not fit.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The receive and send buffer size the gateway asks for.
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;

/// A bound, non-blocking socket and the buffer sizes the kernel granted.
#[derive(Debug)]
pub struct BoundSocket {
    /// The socket, ready to register with a `mio::Poll`.
    pub socket: mio::net::UdpSocket,
    /// `SO_RCVBUF` as the kernel reports it (Linux reports twice what it
    /// accounts for payload, and caps requests at `net.core.rmem_max`).
    pub recv_buffer: usize,
    /// `SO_SNDBUF` as the kernel reports it (capped at `net.core.wmem_max`).
    pub send_buffer: usize,
}

/// Opens a non-blocking UDP socket bound to `addr` with `SO_REUSEADDR`
/// and `SO_REUSEPORT`, asking for `buffer_bytes` of receive and send
/// buffer.
///
/// An IPv6 wildcard address also receives IPv4 (dual stack) where the
/// system allows it; [`batch`](crate::batch) maps the v4-mapped addresses
/// back to plain IPv4 so peers match as configured.
///
/// A buffer request the kernel refuses is not an error: the granted sizes
/// are returned for the caller to log.
pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> io::Result<BoundSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // Not fatal: some systems (OpenBSD) have no dual stack at all, and
        // the socket still serves IPv6.
        if let Err(e) = socket.set_only_v6(false) {
            tracing::debug!(%addr, error = %e, "cannot enable dual stack");
        }
    }
    // Requests above the system maximum are clamped, not refused, on
    // Linux; elsewhere they may fail, and a smaller buffer still works.
    if let Err(e) = socket.set_recv_buffer_size(buffer_bytes) {
        tracing::debug!(%addr, error = %e, "SO_RCVBUF refused");
    }
    if let Err(e) = socket.set_send_buffer_size(buffer_bytes) {
        tracing::debug!(%addr, error = %e, "SO_SNDBUF refused");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let recv_buffer = socket.recv_buffer_size()?;
    let send_buffer = socket.send_buffer_size()?;
    tracing::debug!(%addr, recv_buffer, send_buffer, "socket bound");
    Ok(BoundSocket {
        socket: mio::net::UdpSocket::from_std(socket.into()),
        recv_buffer,
        send_buffer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_share_a_port() {
        let a = bind("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let addr = a.socket.local_addr().unwrap();
        let b = bind(addr, 1 << 20).unwrap();
        assert_eq!(b.socket.local_addr().unwrap(), addr);
        assert!(a.recv_buffer > 0 && a.send_buffer > 0);
    }

    #[test]
    fn binds_ipv6_loopback() {
        // Skip where the sandbox has no IPv6 at all.
        let Ok(s) = bind("[::1]:0".parse().unwrap(), 1 << 20) else {
            return;
        };
        assert!(s.socket.local_addr().unwrap().is_ipv6());
    }
}
