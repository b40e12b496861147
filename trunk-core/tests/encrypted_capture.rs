//! The encrypted Asterisk 22 capture, decrypted and decoded.
//!
//! `testdata/asterisk22-encrypted.pcap` holds a real call with
//! `encryption=yes` (PROTOCOL.md 14.3). A relay never decrypts, but the
//! codec must read what Asterisk puts inside the ciphertext: this test
//! decrypts every frame with the keys the captures' README gives
//! (AES-128-CBC, zero IV, 16-31 bytes of leading padding; the key rotates
//! for site B's frames after its RTKEY), rebuilds the plaintext frame
//! around the clear call number bytes, and checks that each one parses
//! strictly, re-emits byte for byte, and says what the README says.

mod common;

use aes::cipher::{BlockCipherDecrypt, KeyInit};
use aes::Aes128;
use md5::{Digest, Md5};
use trunk_core::wire::{
    ControlSubclass, Encryption, FrameType, FullFrameRepr, IaxSubclass, IeLookup, MiniFrameRepr,
};

const SECRET: &str = "encpass22";
const CHALLENGE: &str = "971040254";
/// Site A (the caller) and site B ports.
const PORT_A: u16 = 4571;
/// The frame carrying B's RTKEY; B's later frames use the new key.
const RTKEY_FRAME: usize = 142;

/// Decrypts `data` (a multiple of 16 bytes) in AES-128-CBC with a zero IV
/// and strips the leading padding (16 + low nibble of plaintext byte 15).
fn decrypt(key: &[u8; 16], data: &[u8]) -> Vec<u8> {
    assert_eq!(data.len() % 16, 0, "ciphertext is whole blocks");
    let cipher = Aes128::new(key.into());
    let mut prev = [0u8; 16];
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks_exact(16) {
        let mut block = aes::Block::try_from(chunk).expect("16-byte chunk");
        cipher.decrypt_block(&mut block);
        for (b, p) in block.iter_mut().zip(prev) {
            *b ^= p;
        }
        out.extend_from_slice(&block);
        prev.copy_from_slice(chunk);
    }
    let pad = 16 + usize::from(out[15] & 0x0f);
    out.split_off(pad)
}

#[test]
fn decrypted_frames_parse_and_match_the_readme() {
    let path = common::testdata_dir().join("asterisk22-encrypted.pcap");
    let datagrams = common::read_udp(&path);
    assert_eq!(datagrams.len(), 245);

    // Key = MD5(challenge || secret), the same value as the MD5 RESULT.
    let key: [u8; 16] = Md5::digest(format!("{CHALLENGE}{SECRET}")).into();
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(key_hex, "f1dc6238e24605b179ea3d452aebb4c8");

    let mut b_key = key;
    let mut full_frames = Vec::new();
    let (mut minis_a, mut minis_b) = (0, 0);
    for d in &datagrams {
        let from_a = d.src.port() == PORT_A;
        let bytes = &d.payload;
        if d.number <= 4 {
            // NEW, CALLTOKEN, NEW with token, AUTHREQ are sent in clear.
            let f = FullFrameRepr::parse(bytes).expect("clear frame parses");
            let ies = f.ies().expect("IAX frame");
            match d.number {
                1 | 3 => {
                    assert_eq!(f.iax_subclass(), Some(IaxSubclass::New));
                    assert_eq!(
                        ies.encryption().expect("well-formed"),
                        Some(Encryption::AES128 | Encryption::KEY_ROTATION)
                    );
                }
                4 => {
                    assert_eq!(f.iax_subclass(), Some(IaxSubclass::AuthReq));
                    assert_eq!(
                        ies.encryption().expect("well-formed"),
                        Some(Encryption::AES128)
                    );
                    assert_eq!(ies.challenge(), Some(CHALLENGE.as_bytes()));
                }
                _ => assert_eq!(f.iax_subclass(), Some(IaxSubclass::CallToken)),
            }
            continue;
        }
        let key = if from_a { &key } else { &b_key };
        if bytes[0] & 0x80 != 0 {
            let mut plain = bytes[..4].to_vec();
            plain.extend(decrypt(key, &bytes[4..]));
            let f = FullFrameRepr::parse(&plain).unwrap_or_else(|e| {
                panic!("frame {}: decrypted frame does not parse: {e}", d.number)
            });
            assert_eq!(f.to_vec(), plain, "frame {} re-emits", d.number);
            let (a, b) = (f.source_call_number.get(), f.dest_call_number.get());
            assert!(
                (from_a && a == 10555 && b == 15099) || (!from_a && a == 15099 && b == 10555),
                "frame {}: call numbers {a}/{b}",
                d.number
            );
            if f.iax_subclass() == Some(IaxSubclass::RtKey) {
                assert_eq!(d.number, RTKEY_FRAME);
                let new_key = f
                    .ies()
                    .and_then(|i| i.challenge())
                    .expect("RTKEY carries a key");
                b_key = new_key.try_into().expect("16 raw key bytes");
            }
            full_frames.push((d.number, f));
        } else {
            let mut plain = bytes[..2].to_vec();
            plain.extend(decrypt(key, &bytes[2..]));
            let m = MiniFrameRepr::parse(&plain).expect("decrypted mini frame parses");
            assert_eq!(m.payload.len(), 160, "frame {}: u-law 20 ms", d.number);
            if from_a {
                minis_a += 1;
            } else {
                minis_b += 1;
            }
        }
    }
    assert_eq!(
        b_key,
        [
            0x50, 0x16, 0x9f, 0xf4, 0xa0, 0x57, 0x73, 0x3e, 0xf1, 0xdf, 0xff, 0xc9, 0x5e, 0xf0,
            0x03, 0x56
        ]
    );
    assert_eq!((minis_a, minis_b), (151, 49));

    // Counts after decryption (README): 45 full frames in all, 41 of them
    // after the 4 clear ones.
    let count =
        |pred: &dyn Fn(&FullFrameRepr) -> bool| full_frames.iter().filter(|(_, f)| pred(f)).count();
    let iax = |s: IaxSubclass| move |f: &FullFrameRepr| f.iax_subclass() == Some(s);
    assert_eq!(full_frames.len(), 41);
    assert_eq!(count(&iax(IaxSubclass::AuthRep)), 1);
    assert_eq!(count(&iax(IaxSubclass::Accept)), 1);
    assert_eq!(count(&iax(IaxSubclass::RtKey)), 1);
    assert_eq!(count(&iax(IaxSubclass::Hangup)), 1);
    assert_eq!(count(&iax(IaxSubclass::Ack)), 20);
    assert_eq!(
        count(&|f| f.control_subclass() == Some(ControlSubclass::Answer)),
        1
    );
    assert_eq!(
        count(&|f| f.control_subclass() == Some(ControlSubclass::StopSounds)),
        1
    );
    assert_eq!(count(&|f| f.frame_type == FrameType::Text), 3);
    assert_eq!(count(&|f| f.frame_type == FrameType::DtmfBegin), 5);
    assert_eq!(count(&|f| f.frame_type == FrameType::Dtmf), 5);
    assert_eq!(count(&|f| f.frame_type == FrameType::Voice), 2);

    // Frame 5 is A's AUTHREP: its MD5 RESULT is the key.
    let (_, authrep) = &full_frames[0];
    assert_eq!(authrep.iax_subclass(), Some(IaxSubclass::AuthRep));
    let md5 = authrep.ies().and_then(|i| i.md5_result().ok().flatten());
    assert_eq!(md5, Some(key_hex.as_str()));

    // Frame 12: A -> B Text "hello from siteA" with Asterisk's NUL.
    let text = full_frames
        .iter()
        .find(|(n, _)| *n == 12)
        .map(|(_, f)| f)
        .expect("frame 12 is a full frame");
    assert_eq!(text.frame_type, FrameType::Text);
    assert_eq!(
        text.payload,
        trunk_core::wire::FullFramePayload::Raw(b"hello from siteA\0".to_vec())
    );
    // B's first Voice frame (ts 2540) comes right after its RTKEY (ts 2543).
    let voice_b = full_frames
        .iter()
        .find(|(n, f)| *n > RTKEY_FRAME && f.frame_type == FrameType::Voice)
        .map(|(_, f)| f)
        .expect("B sends a full Voice frame after RTKEY");
    assert_eq!(voice_b.timestamp, 2540);
}
