//! Frames the relay builds itself: stateless replies (PROTOCOL.md 8.3),
//! INVAL for unknown calls, and the TXREJ that keeps media on the relay.
//! Written straight into the transmit buffer: no allocation.

use std::net::SocketAddr;

use crate::transmit::Transmit;
use crate::wire::{CallNumber, FrameType, IaxSubclass, IeType};

/// Header fields of a full frame the relay builds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) source: CallNumber,
    pub(crate) dest: CallNumber,
    pub(crate) timestamp: u32,
    pub(crate) oseqno: u8,
    pub(crate) iseqno: u8,
    pub(crate) subclass: IaxSubclass,
}

impl Header {
    /// The 12 header bytes of an IAX full frame.
    pub(crate) fn bytes(&self) -> [u8; 12] {
        let s = self.source.get().to_be_bytes();
        let d = self.dest.get().to_be_bytes();
        let t = self.timestamp.to_be_bytes();
        [
            0x80 | s[0],
            s[1],
            d[0] & 0x7f,
            d[1],
            t[0],
            t[1],
            t[2],
            t[3],
            self.oseqno,
            self.iseqno,
            u8::from(FrameType::Iax),
            self.subclass.code(),
        ]
    }
}

/// A Q.850 cause for a REJECT the relay sends itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// 3: no route to destination.
    NoRoute,
    /// 27: destination out of order (the egress peer has no address).
    DestinationOutOfOrder,
    /// 34: no circuit/channel available (a call limit was reached).
    Congestion,
    /// 42: switching equipment congestion (the gateway is draining).
    SwitchingCongestion,
}

impl Cause {
    fn code(self) -> u8 {
        match self {
            Self::NoRoute => 3,
            Self::DestinationOutOfOrder => 27,
            Self::Congestion => 34,
            Self::SwitchingCongestion => 42,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::NoRoute => "No route to destination",
            Self::DestinationOutOfOrder => "Destination out of order",
            Self::Congestion => "No circuit/channel available",
            Self::SwitchingCongestion => "Switching equipment congestion",
        }
    }
}

/// Sends a full frame made of `header` and, if given, CAUSE and CAUSECODE.
pub(crate) fn send<T: Transmit>(out: &mut T, to: SocketAddr, header: Header, cause: Option<Cause>) {
    write(out, to, header, cause, cause.is_some());
}

/// Sends a refusal of a request of `request_len` bytes: the header with
/// CAUSE and CAUSECODE, or with CAUSECODE alone, whichever is the most
/// that is not larger than the request, so the gateway never amplifies
/// what a spoofed source sends. `false`: not even that fits, nothing sent.
pub(crate) fn send_within<T: Transmit>(
    out: &mut T,
    to: SocketAddr,
    header: Header,
    cause: Cause,
    request_len: usize,
) -> bool {
    let code_only = 12 + 3;
    let full = code_only + 2 + cause.text().len();
    if full <= request_len {
        write(out, to, header, Some(cause), true);
    } else if code_only <= request_len {
        write(out, to, header, Some(cause), false);
    } else {
        return false;
    }
    true
}

fn write<T: Transmit>(
    out: &mut T,
    to: SocketAddr,
    header: Header,
    cause: Option<Cause>,
    with_text: bool,
) {
    let buf = out.buffer();
    buf[..12].copy_from_slice(&header.bytes());
    let mut len = 12;
    if let Some(cause) = cause {
        let text = cause.text().as_bytes();
        let ies = [
            (IeType::Cause, text),
            (IeType::CauseCode, &[cause.code()][..]),
        ];
        let ies = if with_text { &ies[..] } else { &ies[1..] };
        for &(ie, data) in ies {
            buf[len] = u8::from(ie);
            buf[len + 1] = u8::try_from(data.len()).unwrap_or(u8::MAX);
            buf[len + 2..len + 2 + data.len()].copy_from_slice(data);
            len += 2 + data.len();
        }
    }
    out.commit(to, len);
}

/// The header of a stateless reply to a request (PROTOCOL.md 8.3): from
/// call number 1, echoing the request's timestamp.
pub(crate) fn stateless(
    request_source: CallNumber,
    request_timestamp: u32,
    request_iseqno: u8,
    subclass: IaxSubclass,
) -> Header {
    Header {
        source: CallNumber::STATELESS,
        dest: request_source,
        timestamp: request_timestamp,
        oseqno: 0,
        iseqno: request_iseqno.wrapping_add(1),
        subclass,
    }
}
