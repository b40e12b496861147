//! A gateway link on a source port of its own.
//!
//! When the link to a far gateway this gateway registers with goes
//! unreachable, a stale or poisoned NAT/conntrack entry for its 5-tuple
//! may be the cause, and only a new 5-tuple escapes it: the gateway opens
//! a fresh reuseport group on a new ephemeral port (one socket per worker,
//! with the same call-number steering as the listen sockets) and every
//! datagram to that gateway leaves from it from then on. Datagrams coming
//! back on it are relayed like any other. The registration that follows
//! at once tells the far gateway the new address, and its calls move.
//!
//! [`Router`] is the [`Transmit`] a worker hands the relay: it sends each
//! datagram on the listen socket, or on the link socket of its
//! destination. Only datagrams to a moved link pay for the lookup's hit
//! (a copy into the link's send queue).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender as ChannelSender};
use mio::net::UdpSocket;
use mio::Waker;
use trunk_core::transmit::Transmit;

use crate::batch::{SendBatch, Sender};
use crate::socket::{self, DEFAULT_BUFFER_BYTES};

/// A link socket handed to a worker.
#[derive(Debug)]
pub(crate) struct LinkCommand {
    /// The far gateway's address: what is sent there leaves from `socket`.
    pub(crate) dest: SocketAddr,
    pub(crate) socket: UdpSocket,
}

/// A worker's link socket and its send queue.
#[derive(Debug)]
pub(crate) struct LinkPort {
    pub(crate) dest: SocketAddr,
    pub(crate) socket: UdpSocket,
    pub(crate) send: SendBatch,
}

/// The [`Transmit`] of a worker with link sockets.
pub(crate) struct Router<'a> {
    main: Sender<'a>,
    links: &'a mut [LinkPort],
}

impl<'a> Router<'a> {
    pub(crate) fn new(main: Sender<'a>, links: &'a mut [LinkPort]) -> Self {
        Self { main, links }
    }
}

impl Transmit for Router<'_> {
    #[inline]
    fn buffer(&mut self) -> &mut [u8] {
        self.main.buffer()
    }

    #[inline]
    fn commit(&mut self, to: SocketAddr, len: usize) {
        if self.links.is_empty() {
            return self.main.commit(to, len);
        }
        match self.links.iter_mut().find(|l| l.dest == to) {
            Some(link) => {
                let data = self.main.peek(len);
                link.send.sender(&link.socket).send(to, data);
                self.main.forget();
            }
            None => self.main.commit(to, len),
        }
    }
}

/// Binds a reuseport group of `workers` sockets on a fresh port of `ip`;
/// socket `n` is worker `n`'s, as the steering program numbers them.
pub(crate) fn bind_group(ip: IpAddr, workers: usize) -> io::Result<(u16, Vec<UdpSocket>)> {
    let first = socket::bind(SocketAddr::new(ip, 0), DEFAULT_BUFFER_BYTES)?.socket;
    let local = first.local_addr()?;
    if workers > 1 {
        crate::steering::attach(&first, workers)?;
    }
    let mut group = Vec::with_capacity(workers);
    group.push(first);
    for _ in 1..workers {
        group.push(socket::bind(local, DEFAULT_BUFFER_BYTES)?.socket);
    }
    Ok((local.port(), group))
}

/// Hands new link sockets to the workers.
#[derive(Debug)]
pub(crate) struct LinkMover {
    ip: IpAddr,
    workers: Vec<(ChannelSender<LinkCommand>, Arc<Waker>)>,
}

impl LinkMover {
    /// A mover for workers reached through `workers` (in worker order),
    /// binding on `ip` (the listen address's).
    pub(crate) fn new(ip: IpAddr, workers: Vec<(ChannelSender<LinkCommand>, Arc<Waker>)>) -> Self {
        Self { ip, workers }
    }

    /// The receiving ends for `n` workers, and the sending ends with the
    /// workers' wakers still to add.
    pub(crate) fn channels(
        n: usize,
    ) -> (Vec<ChannelSender<LinkCommand>>, Vec<Receiver<LinkCommand>>) {
        (0..n).map(|_| crossbeam_channel::unbounded()).unzip()
    }

    /// Moves the link to `dest` to a fresh source port; returns the port.
    pub(crate) fn move_link(&self, dest: SocketAddr) -> io::Result<u16> {
        let (port, group) = bind_group(self.ip, self.workers.len())?;
        for ((tx, waker), socket) in self.workers.iter().zip(group) {
            tx.send(LinkCommand { dest, socket })
                .map_err(|_| io::Error::other("a worker has stopped"))?;
            waker.wake()?;
        }
        Ok(port)
    }
}
