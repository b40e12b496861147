//! The NEW flood: NEW full frames (VERSION, CALLED NUMBER, USERNAME,
//! FORMAT, CAPABILITY and an empty CALLTOKEN, as a PBX opens a call), each
//! from the next source call number in 2..=32766. The sockets are taken in
//! turn batch by batch, so a source port sends a number again only after
//! all its others.

use trunk_core::wire::{CallNumber, FullFrameRepr, IaxSubclass, Ie, IeList, IeType, SeqNo};

use super::{call_number, Datagrams};
use crate::Codec;

/// NEW full frames with fresh source call numbers.
#[derive(Debug)]
pub struct NewFlood {
    template: Vec<u8>,
    sent: u64,
}

impl NewFlood {
    /// NEWs calling `called`.
    pub fn new(called: &str) -> Self {
        let f = Codec::Ulaw.format();
        let mut ies = IeList::new().with(Ie::version());
        for (ty, s) in [
            (IeType::CalledNumber, called),
            (IeType::CallingNumber, "1000"),
            (IeType::Username, "flood"),
        ] {
            if let Ok(ie) = Ie::string(ty, s) {
                ies.push(ie);
            }
        }
        ies.push(Ie::format(f))
            .push(Ie::capability(f))
            .push(Ie::empty(IeType::CallToken));
        let repr = FullFrameRepr::iax(
            CallNumber::new(2).unwrap_or(CallNumber::UNKNOWN),
            CallNumber::UNKNOWN,
            3,
            SeqNo(0),
            SeqNo(0),
            IaxSubclass::New,
            ies,
        );
        Self {
            template: repr.to_vec(),
            sent: 0,
        }
    }

    /// The NEW with source call number `n`.
    pub fn frame(&self, n: u16) -> Vec<u8> {
        let mut f = self.template.clone();
        f[..2].copy_from_slice(&(0x8000 | n).to_be_bytes());
        f
    }
}

impl Datagrams for NewFlood {
    fn categories(&self) -> &'static [&'static str] {
        &["new"]
    }

    fn write(&mut self, buf: &mut [u8]) -> (usize, usize) {
        let n = call_number(self.sent);
        self.sent += 1;
        let len = self.template.len().min(buf.len());
        buf[..len].copy_from_slice(&self.template[..len]);
        buf[..2].copy_from_slice(&(0x8000 | n).to_be_bytes());
        (len, 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use trunk_core::wire::{FullFrame, IeBlock, IeLookup};

    #[test]
    fn each_new_is_a_valid_new_from_the_next_number() {
        let mut g = NewFlood::new("2001");
        let mut buf = [0u8; 1500];
        for i in 0..40_000u64 {
            let (len, cat) = g.write(&mut buf);
            assert_eq!(cat, 0);
            let f = FullFrame::new_checked(&buf[..len]).unwrap();
            assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
            assert_eq!(f.source_call_number().get(), call_number(i));
            assert_eq!(f.dest_call_number(), CallNumber::UNKNOWN);
            if i == 0 {
                let ies = IeBlock::new_checked(f.payload()).unwrap();
                assert_eq!(ies.called_number().unwrap(), Some("2001"));
            }
        }
    }
}
