//! Spreading the calls of one peer over the workers.
//!
//! `SO_REUSEPORT` alone hashes the 4-tuple, so all traffic from one PBX
//! (one address and port) would land on one worker. A classic BPF program
//! attached to the reuseport group picks the socket from the datagram
//! instead (DESIGN.md, "Runtime"):
//!
//! - full and mini frames: the IAX2 source call number, modulo the
//!   number of workers;
//! - video mini frames: the call number in bytes 2-3;
//! - meta trunk frames: the call number of the first entry, so the
//!   several frames of one tick go to different workers.
//!
//! The kernel runs the program with the UDP payload at offset 0. If it
//! returns an index past the group's sockets, or a load runs past the end
//! of a short datagram (the program then returns 0), the kernel still
//! delivers the datagram: nothing is lost, it is only less evenly spread.
//!
//! Any worker can relay any datagram, but the choice also keeps each
//! call's media in order: a call's frames always reach the same worker, and
//! the far gateway groups trunk entries by call number so that every entry
//! of a frame, in every tick, belongs to the same worker here
//! (`trunk_core::relay`, trunk emitter groups; exact when this gateway's
//! worker count divides 4).

use std::io;
use std::os::fd::AsRawFd;

// Classic BPF opcodes (linux/filter.h).
const LDH_ABS: u16 = 0x28; // A = u16 at [k], network order
const LDB_ABS: u16 = 0x30; // A = u8 at [k]
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const AND_K: u16 = 0x54;
const MOD_K: u16 = 0x94;
const RET_A: u16 = 0x16;

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> [u32; 2] {
    // Packed as `struct sock_filter` would be, for the unit test.
    [(code as u32) | ((jt as u32) << 16) | ((jf as u32) << 24), k]
}

/// The program, for `workers` sockets. Jumps are forward only in classic
/// BPF, so each branch ends with its own `and/mod/ret`.
fn program(workers: u32) -> Vec<[u32; 2]> {
    let n = workers.max(1);
    vec![
        insn(LDH_ABS, 0, 0, 0),    // 0: first 16 bits
        insn(JEQ_K, 3, 0, 0),      // 1: zero -> meta frame (5)
        insn(AND_K, 0, 0, 0x7fff), // 2: full or mini: source call number
        insn(MOD_K, 0, 0, n),      // 3
        insn(RET_A, 0, 0, 0),      // 4
        insn(LDB_ABS, 0, 0, 2),    // 5: meta byte 2
        insn(JSET_K, 0, 4, 0x80),  // 6: video bit -> 7, else trunk (11)
        insn(LDH_ABS, 0, 0, 2),    // 7: video: call number in bytes 2-3
        insn(AND_K, 0, 0, 0x7fff), // 8
        insn(MOD_K, 0, 0, n),      // 9
        insn(RET_A, 0, 0, 0),      // 10
        insn(LDB_ABS, 0, 0, 3),    // 11: trunk command data
        insn(JSET_K, 0, 4, 1),     // 12: timestamped entries -> 13, else 17
        insn(LDH_ABS, 0, 0, 10),   // 13: first entry: len(2) call(2) ts(2)
        insn(AND_K, 0, 0, 0x7fff), // 14
        insn(MOD_K, 0, 0, n),      // 15
        insn(RET_A, 0, 0, 0),      // 16
        insn(LDH_ABS, 0, 0, 8),    // 17: first entry: call(2) len(2)
        insn(AND_K, 0, 0, 0x7fff), // 18
        insn(MOD_K, 0, 0, n),      // 19
        insn(RET_A, 0, 0, 0),      // 20
    ]
}

/// The call number the steering program reads from `datagram` (before
/// the modulo): what picks a receiving worker here or at a peer that
/// steers the same way. 0 where the program would run off the end.
pub fn steering_call_number(datagram: &[u8]) -> u16 {
    let word = |at: usize| {
        datagram
            .get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let call = match datagram {
        [0, 0, b2, _, ..] if b2 & 0x80 != 0 => word(2),
        [0, 0, _, b3, ..] if b3 & 1 != 0 => word(10),
        [0, 0, ..] => word(8),
        _ => word(0),
    };
    call & 0x7fff
}

/// Attaches the call-number steering program to the reuseport group of
/// `socket` (bound, with `SO_REUSEPORT`). Sockets that join the group
/// later are covered too; the `i`-th socket bound receives index `i`.
#[cfg(target_os = "linux")]
pub fn attach<S: AsRawFd>(socket: &S, workers: usize) -> io::Result<()> {
    let n = u32::try_from(workers).unwrap_or(u32::MAX);
    let mut filters: Vec<libc::sock_filter> = program(n)
        .into_iter()
        .map(|[word, k]| libc::sock_filter {
            code: (word & 0xffff) as u16,
            jt: ((word >> 16) & 0xff) as u8,
            jf: (word >> 24) as u8,
            k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: u16::try_from(filters.len()).unwrap_or(u16::MAX),
        filter: filters.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `filters`, which outlives the call; the
    // kernel copies the program during setsockopt and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::addr_of!(prog).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::sock_fprog>()).unwrap_or(0),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere the kernel's own reuseport hashing is all there is.
#[cfg(not(target_os = "linux"))]
pub fn attach<S: AsRawFd>(_socket: &S, _workers: usize) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// Two sockets in one group: even call numbers reach the first, odd
    /// ones the second, for full, mini and trunk frames alike.
    #[test]
    fn datagrams_follow_their_call_number() {
        let first = crate::socket::bind("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let addr = first.socket.local_addr().unwrap();
        attach(&first.socket, 2).unwrap();
        let second = crate::socket::bind(addr, 1 << 20).unwrap();
        let sockets: Vec<UdpSocket> = [first.socket, second.socket]
            .into_iter()
            .map(|s| {
                let s = UdpSocket::from(std::os::fd::OwnedFd::from(s));
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let full = |call: u16| {
            let mut f = vec![0u8; 12];
            f[0..2].copy_from_slice(&(0x8000 | call).to_be_bytes());
            f
        };
        let mini = |call: u16| {
            let mut f = vec![0u8; 24];
            f[0..2].copy_from_slice(&call.to_be_bytes());
            f
        };
        let trunk = |call: u16| {
            let mut f = vec![0, 0, 1, 1, 0, 0, 0, 20, 0, 4];
            f.extend_from_slice(&call.to_be_bytes());
            f.extend_from_slice(&[0, 20, 1, 2, 3, 4]);
            f
        };
        for call in [2u16, 3, 1000, 32767] {
            for datagram in [full(call), mini(call), trunk(call)] {
                client.send_to(&datagram, addr).unwrap();
                assert_eq!(steering_call_number(&datagram), call, "call {call}");
                let expected = &sockets[usize::from(call % 2)];
                let mut buf = [0u8; 64];
                let (len, _) = expected.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..len], &datagram[..], "call {call}");
            }
        }
    }
}
