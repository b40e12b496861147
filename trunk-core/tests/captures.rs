//! Every IAX2 datagram of every capture in `testdata/` through the codec,
//! and the facts `testdata/README.md` states about each capture, checked
//! with it.
//!
//! The first test is the codec's contract on real traffic: each datagram
//! parses as a view (`Frame::parse`) and strictly as a repr
//! (`FrameRepr::parse`), and re-emitting the repr gives the same bytes.
//! The others do not compare the codec with itself: their expected values
//! are the README's (which come from tshark, from the capture author's
//! configuration, and from PROTOCOL.md 2.6's byte examples), so agreement
//! means the codec reads the wire the way the rest of the world does.
//! MD5 RESULTs are also recomputed from the challenge and the secret the
//! README names.
//!
//! Frame numbers are 1-based, as tshark counts; every failure message
//! names the file and the frame.

#![allow(clippy::wildcard_enum_match_arm)]

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::Datagram;
use md5::{Digest, Md5};
use trunk_core::wire::{
    ApparentAddr, AuthMethods, CallNumber, ControlSubclass, Encryption, FamilyOrder, Frame,
    FrameKind, FrameRepr, FrameType, FullFrameRepr, IaxDateTime, IaxSubclass, IeList, IeLookup,
    IeType, MediaFormat, MetaTrunkFrameRepr, MiniFrameRepr, SeqNo, Subclass, Timestamp16,
    TrunkLayout,
};

const NDPI: &str = "ndpi-iax.pcap";
const GOLDEN: &str = "synthetic-iax2-golden.pcap";
const TRUNK_TS: &str = "asterisk22-trunk-ts.pcap";
const TRUNK_NOTS: &str = "asterisk22-trunk-nots.pcap";
const MINI: &str = "asterisk22-mini-notrunk.pcap";
const REGISTER: &str = "asterisk22-register-poke.pcap";
const REJECT: &str = "asterisk22-reject-badauth.pcap";
const RSA: &str = "asterisk22-rsa.pcap";
const ENCRYPTED: &str = "asterisk22-encrypted.pcap";

/// The seven Asterisk 22 loopback captures.
const ASTERISK: [&str; 7] = [TRUNK_TS, TRUNK_NOTS, MINI, REGISTER, REJECT, RSA, ENCRYPTED];

/// Site A's UDP port in the Asterisk captures.
const PORT_A: u16 = 4571;

// ---------------------------------------------------------------------------
// Loading and looking up frames.

/// One datagram and its strict parse.
struct Parsed {
    d: Datagram,
    repr: FrameRepr,
}

/// A capture, every datagram parsed.
struct Capture {
    file: &'static str,
    frames: Vec<Parsed>,
}

impl Capture {
    fn load(file: &'static str) -> Self {
        let path = common::testdata_dir().join(file);
        let frames = common::read_udp(&path)
            .into_iter()
            .map(|d| {
                let repr = FrameRepr::parse(&d.payload)
                    .unwrap_or_else(|e| panic!("{file} frame {}: {e}", d.number));
                Parsed { d, repr }
            })
            .collect();
        Self { file, frames }
    }

    fn at(&self, number: usize) -> String {
        format!("{} frame {number}", self.file)
    }

    fn frame(&self, number: usize) -> &Parsed {
        self.frames
            .iter()
            .find(|p| p.d.number == number)
            .unwrap_or_else(|| panic!("{}: no UDP datagram", self.at(number)))
    }

    fn full(&self, number: usize) -> &FullFrameRepr {
        match &self.frame(number).repr {
            FrameRepr::Full(f) => f,
            other => panic!(
                "{}: a {:?} frame, not a full frame",
                self.at(number),
                other.kind()
            ),
        }
    }

    fn mini(&self, number: usize) -> &MiniFrameRepr {
        match &self.frame(number).repr {
            FrameRepr::Mini(m) => m,
            other => panic!(
                "{}: a {:?} frame, not a mini frame",
                self.at(number),
                other.kind()
            ),
        }
    }

    fn trunk(&self, number: usize) -> &MetaTrunkFrameRepr {
        match &self.frame(number).repr {
            FrameRepr::MetaTrunk(t) => t,
            other => panic!(
                "{}: a {:?} frame, not a trunk frame",
                self.at(number),
                other.kind()
            ),
        }
    }

    fn ies(&self, number: usize) -> &IeList {
        self.full(number)
            .ies()
            .unwrap_or_else(|| panic!("{}: not an IAX frame", self.at(number)))
    }

    fn fulls(&self) -> impl Iterator<Item = (&Datagram, &FullFrameRepr)> + '_ {
        self.frames.iter().filter_map(|p| match &p.repr {
            FrameRepr::Full(f) => Some((&p.d, f)),
            _ => None,
        })
    }

    fn minis(&self) -> impl Iterator<Item = (&Datagram, &MiniFrameRepr)> + '_ {
        self.frames.iter().filter_map(|p| match &p.repr {
            FrameRepr::Mini(m) => Some((&p.d, m)),
            _ => None,
        })
    }

    fn trunks(&self) -> impl Iterator<Item = (&Datagram, &MetaTrunkFrameRepr)> + '_ {
        self.frames.iter().filter_map(|p| match &p.repr {
            FrameRepr::MetaTrunk(t) => Some((&p.d, t)),
            _ => None,
        })
    }

    /// Full frames of one IAX subclass, in order.
    fn iax(&self, subclass: IaxSubclass) -> Vec<(usize, &FullFrameRepr)> {
        self.fulls()
            .filter(|(_, f)| f.iax_subclass() == Some(subclass))
            .map(|(d, f)| (d.number, f))
            .collect()
    }
}

/// True for datagrams sent by site A (the caller): port 4571 in the
/// Asterisk captures, 192.0.2.10 in the golden file, 82.110.36.84 in nDPI's.
fn from_a(d: &Datagram) -> bool {
    d.src.port() == PORT_A
        || *d.src.ip() == Ipv4Addr::new(192, 0, 2, 10)
        || *d.src.ip() == Ipv4Addr::new(82, 110, 36, 84)
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).expect("15-bit call number literal")
}

/// The README's name for a full frame: the IAX or control subclass, or the
/// frame type (DTMF is "DTMF_END" there).
fn label(f: &FullFrameRepr) -> String {
    match f.frame_type {
        FrameType::Iax => f
            .iax_subclass()
            .map_or_else(|| format!("IAX {:?}", f.subclass), |s| s.to_string()),
        FrameType::Control => f
            .control_subclass()
            .map_or_else(|| format!("Control {:?}", f.subclass), |s| s.to_string()),
        FrameType::Dtmf => "DTMF_END".to_owned(),
        other => other.to_string(),
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn types(ies: &IeList) -> Vec<IeType> {
    ies.iter().map(|ie| ie.ie_type()).collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A DATETIME read as UTC, in seconds since the Unix epoch.
fn unix_seconds(dt: IaxDateTime) -> i64 {
    let days = days_from_civil(i64::from(dt.year), i64::from(dt.month), i64::from(dt.day));
    days * 86_400 + i64::from(dt.hour) * 3600 + i64::from(dt.minute) * 60 + i64::from(dt.second)
}

// ---------------------------------------------------------------------------
// A. The codec's contract on every datagram.

#[test]
fn every_datagram_parses_and_round_trips() {
    let files = common::captures();
    assert_eq!(
        files.len(),
        9,
        "testdata/ holds the nine captures of its README"
    );
    let mut total = 0;
    for path in &files {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name");
        let datagrams = common::read_udp(path);
        assert!(!datagrams.is_empty(), "{file}: no UDP datagrams");
        for d in &datagrams {
            let at = format!("{file} frame {}", d.number);
            let view = Frame::parse(&d.payload).unwrap_or_else(|e| panic!("{at}: view: {e}"));
            let repr = FrameRepr::parse(&d.payload).unwrap_or_else(|e| panic!("{at}: repr: {e}"));
            assert_eq!(view.kind(), repr.kind(), "{at}: view and repr kinds");
            assert_eq!(repr.buffer_len(), d.payload.len(), "{at}: buffer_len");
            let out = repr.to_vec().unwrap_or_else(|e| panic!("{at}: emit: {e}"));
            assert!(
                out == d.payload,
                "{at}: re-emitted bytes differ from the capture"
            );
            // Emitting into a larger buffer writes only the frame.
            let mut big = vec![0xa5u8; d.payload.len() + 7];
            assert_eq!(repr.emit(&mut big), Ok(d.payload.len()), "{at}: emit len");
            assert!(big[..d.payload.len()] == d.payload[..], "{at}: emit prefix");
            assert!(
                big[d.payload.len()..].iter().all(|&b| b == 0xa5),
                "{at}: emit overran"
            );
            // A buffer one byte short is refused.
            let mut small = vec![0u8; d.payload.len() - 1];
            assert!(
                repr.emit(&mut small).is_err(),
                "{at}: emit into a short buffer"
            );
            total += 1;
        }
    }
    assert_eq!(
        total, 2173,
        "datagrams in all nine captures (README packet counts)"
    );
}

// ---------------------------------------------------------------------------
// Per-file counts.

/// What the README says a capture holds.
struct Counts {
    file: &'static str,
    packets: usize,
    full: usize,
    /// Mini frames A->B, B->A.
    mini: (usize, usize),
    /// Meta trunk frames A->B, B->A.
    trunk: (usize, usize),
    /// Trunk entries in all trunk frames.
    entries: usize,
}

const COUNTS: [Counts; 8] = [
    Counts {
        file: GOLDEN,
        packets: 58,
        full: 52,
        mini: (0, 0),
        trunk: (3, 3),
        entries: 12,
    },
    Counts {
        file: TRUNK_TS,
        packets: 528,
        full: 57,
        mini: (0, 0),
        trunk: (236, 235),
        entries: 1289,
    },
    Counts {
        file: TRUNK_NOTS,
        packets: 526,
        full: 57,
        mini: (0, 0),
        trunk: (235, 234),
        entries: 1286,
    },
    Counts {
        file: MINI,
        packets: 393,
        full: 43,
        mini: (226, 124),
        trunk: (0, 0),
        entries: 0,
    },
    Counts {
        file: REGISTER,
        packets: 70,
        full: 70,
        mini: (0, 0),
        trunk: (0, 0),
        entries: 0,
    },
    Counts {
        file: REJECT,
        packets: 31,
        full: 31,
        mini: (0, 0),
        trunk: (0, 0),
        entries: 0,
    },
    Counts {
        file: RSA,
        packets: 272,
        full: 24,
        mini: (124, 124),
        trunk: (0, 0),
        entries: 0,
    },
    // Counted on the clear call number bytes (the F bit is not encrypted).
    Counts {
        file: ENCRYPTED,
        packets: 245,
        full: 45,
        mini: (151, 49),
        trunk: (0, 0),
        entries: 0,
    },
];

#[test]
fn frame_counts_match_the_readme() {
    for want in &COUNTS {
        let cap = Capture::load(want.file);
        let file = want.file;
        assert_eq!(cap.frames.len(), want.packets, "{file}: packets");
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for p in &cap.frames {
            *kinds.entry(format!("{:?}", p.repr.kind())).or_default() += 1;
        }
        let full = cap.fulls().count();
        let mini_a = cap.minis().filter(|(d, _)| from_a(d)).count();
        let mini_b = cap.minis().count() - mini_a;
        let trunk_a = cap.trunks().filter(|(d, _)| from_a(d)).count();
        let trunk_b = cap.trunks().count() - trunk_a;
        let entries: usize = cap.trunks().map(|(_, t)| t.entries.len()).sum();
        assert_eq!(full, want.full, "{file}: full frames ({kinds:?})");
        assert_eq!(
            (mini_a, mini_b),
            want.mini,
            "{file}: mini frames A->B, B->A"
        );
        assert_eq!(
            (trunk_a, trunk_b),
            want.trunk,
            "{file}: trunk frames A->B, B->A"
        );
        assert_eq!(entries, want.entries, "{file}: trunk entries");
        assert_eq!(
            full + mini_a + mini_b + trunk_a + trunk_b,
            want.packets,
            "{file}: no video mini or other meta frames ({kinds:?})"
        );
    }
}

/// Full frames per README name, for the files that list them.
fn expected_labels(file: &str) -> Vec<(&'static str, usize)> {
    match file {
        TRUNK_TS | TRUNK_NOTS => vec![
            ("NEW", 6),
            ("CALLTOKEN", 3),
            ("AUTHREQ", 3),
            ("AUTHREP", 3),
            ("ACCEPT", 3),
            ("RINGING", 3),
            ("ANSWER", 3),
            ("stop sounds", 3),
            ("Voice", 6),
            ("HANGUP", 3),
            ("ACK", 21),
        ],
        MINI => vec![
            ("NEW", 2),
            ("CALLTOKEN", 1),
            ("AUTHREQ", 1),
            ("AUTHREP", 1),
            ("ACCEPT", 1),
            ("ANSWER", 1),
            ("stop sounds", 1),
            ("Text", 3),
            ("DTMF_BEGIN", 5),
            ("DTMF_END", 5),
            ("Voice", 2),
            ("HANGUP", 1),
            ("ACK", 19),
        ],
        REGISTER => vec![
            ("REGREQ", 9),
            ("REGAUTH", 3),
            ("REGACK", 3),
            ("CALLTOKEN", 4),
            ("POKE", 6),
            ("PONG", 8),
            ("PING", 2),
            ("LAGRQ", 4),
            ("LAGRP", 4),
            ("NEW", 2),
            ("AUTHREQ", 1),
            ("AUTHREP", 1),
            ("ACCEPT", 1),
            ("ANSWER", 1),
            ("stop sounds", 1),
            ("HANGUP", 1),
            ("ACK", 19),
        ],
        REJECT => vec![
            ("NEW", 6),
            ("CALLTOKEN", 4),
            ("REGREQ", 3),
            ("REGAUTH", 1),
            ("REGREJ", 1),
            ("AUTHREQ", 3),
            ("AUTHREP", 3),
            ("REJECT", 3),
            ("ACK", 7),
        ],
        RSA => vec![
            ("REGREQ", 3),
            ("REGAUTH", 1),
            ("REGACK", 1),
            ("CALLTOKEN", 2),
            ("NEW", 2),
            ("AUTHREQ", 1),
            ("AUTHREP", 1),
            ("ACCEPT", 1),
            ("ANSWER", 1),
            ("stop sounds", 1),
            ("Voice", 2),
            ("HANGUP", 1),
            ("ACK", 7),
        ],
        // From the golden file's frame table: registration (1-7), POKE
        // (8-10), two calls (11-38), DTMF (45-48), PING/LAGRQ (49-54) and
        // the HANGUPs (55-58).
        GOLDEN => vec![
            ("REGREQ", 3),
            ("REGAUTH", 1),
            ("REGACK", 1),
            ("CALLTOKEN", 3),
            ("POKE", 1),
            ("PONG", 2),
            ("NEW", 4),
            ("AUTHREQ", 2),
            ("AUTHREP", 2),
            ("ACCEPT", 2),
            ("RINGING", 1),
            ("ANSWER", 2),
            ("Voice", 4),
            ("DTMF_BEGIN", 1),
            ("DTMF_END", 1),
            ("PING", 1),
            ("LAGRQ", 1),
            ("LAGRP", 1),
            ("HANGUP", 2),
            ("ACK", 17),
        ],
        other => panic!("no label table for {other}"),
    }
}

#[test]
fn full_frame_kinds_match_the_readme() {
    for file in [TRUNK_TS, TRUNK_NOTS, MINI, REGISTER, REJECT, RSA, GOLDEN] {
        let cap = Capture::load(file);
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for (_, f) in cap.fulls() {
            *got.entry(label(f)).or_default() += 1;
        }
        let want: BTreeMap<String, usize> = expected_labels(file)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(got, want, "{file}: full frames by kind");
    }
}

// ---------------------------------------------------------------------------
// Call setup and registration, as the README describes them.

/// How a call or registration authenticates.
enum Auth {
    /// MD5 RESULT, and the secret it was made with (recomputed).
    Md5 {
        result: &'static str,
        secret: &'static str,
    },
    /// RSA RESULT (base64).
    Rsa(&'static str),
    /// The answer is encrypted (not checked).
    Hidden,
}

/// One call as the README lists it.
struct Call {
    file: &'static str,
    /// A's and B's call numbers.
    a: u16,
    b: u16,
    called: &'static str,
    username: &'static str,
    /// The CALLTOKEN B hands out (`None`: only its shape is checked).
    token: Option<&'static str>,
    challenge: &'static str,
    methods: AuthMethods,
    auth: Auth,
    /// ENCRYPTION in NEW and in AUTHREQ.
    encryption: Option<(u16, u16)>,
    /// The call is accepted (ACCEPT with FORMAT u-law).
    accepted: bool,
    /// NEW as Asterisk 22 builds it (the README's IE order).
    asterisk: bool,
}

const CALLS: &[Call] = &[
    Call {
        file: TRUNK_TS,
        a: 22286,
        b: 215,
        called: "600",
        username: "siteA",
        token: Some("1795802023?9f5f77cd796b332f0d73461623fb7d16ec442b63"),
        challenge: "174645015",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "dface4a8a0664b0e660d1b4fd33ca7b6",
            secret: "trunkpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: TRUNK_TS,
        a: 32293,
        b: 11627,
        called: "600",
        username: "siteA",
        token: Some("1795802023?9f5f77cd796b332f0d73461623fb7d16ec442b63"),
        challenge: "154914972",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "d35e5381a8b3bec2fe4a256f2ac52e83",
            secret: "trunkpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: TRUNK_TS,
        a: 31969,
        b: 1589,
        called: "600",
        username: "siteA",
        token: Some("1795802023?9f5f77cd796b332f0d73461623fb7d16ec442b63"),
        challenge: "206549289",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "0cb75c51c3dbd955e68c0f2d8a7772ac",
            secret: "trunkpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: TRUNK_NOTS,
        a: 31032,
        b: 2355,
        called: "600",
        username: "siteA",
        token: Some("1795802040?ed3579f805f0e74e0d0e7020cc4ddd9e9ac70108"),
        challenge: "185592645",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "565a859cd1ea82ccc2328ab9f94eb967",
            secret: "trunkpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: TRUNK_NOTS,
        a: 20792,
        b: 15167,
        called: "600",
        username: "siteA",
        token: Some("1795802040?ed3579f805f0e74e0d0e7020cc4ddd9e9ac70108"),
        challenge: "336893085",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "f0436649c7196625dd2fe0946c0e7a2e",
            secret: "trunkpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: TRUNK_NOTS,
        a: 32237,
        b: 12636,
        called: "600",
        username: "siteA",
        token: Some("1795802041?c3cecb98461bee14224ae4c3678ad70dd077357c"),
        challenge: "345881351",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "87a2a65379b9f186b6abe19f47af55f4",
            secret: "trunkpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: MINI,
        a: 7456,
        b: 9007,
        called: "602",
        username: "siteA",
        token: Some("1795802064?8356e3638e2f24153903cad408dceeda8c2a94fb"),
        challenge: "137677694",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "d91eb4a8013edbd04578e6c702a266bf",
            secret: "minipass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: REGISTER,
        a: 4125,
        b: 10914,
        called: "603",
        username: "siteA",
        token: None,
        challenge: "195276756",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "85a322ed58e6ee1d48e8f97b634b2f79",
            secret: "regpass22",
        },
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    // The three rejected calls: wrong secret, unknown extension, unknown user.
    Call {
        file: REJECT,
        a: 4350,
        b: 803,
        called: "600",
        username: "siteA",
        token: None,
        challenge: "615740729",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "b79a673c66f9b4bd9b2e685b3e2fb10f",
            secret: "wrongpass",
        },
        encryption: None,
        accepted: false,
        asterisk: true,
    },
    Call {
        file: REJECT,
        a: 5335,
        b: 239,
        called: "999",
        username: "siteA",
        token: None,
        challenge: "764225939",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "45243c057d02e139c1c7896b37147263",
            secret: "rightpass22",
        },
        encryption: None,
        accepted: false,
        asterisk: true,
    },
    Call {
        file: REJECT,
        a: 3483,
        b: 8747,
        called: "600",
        username: "ghost",
        token: None,
        challenge: "309967367",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "d3f679602e6c80809d784f860812b352",
            secret: "whatever",
        },
        encryption: None,
        accepted: false,
        asterisk: true,
    },
    Call {
        file: RSA,
        a: 15067,
        b: 8285,
        called: "600",
        username: "siteA",
        token: None,
        challenge: "783045299",
        methods: AuthMethods::RSA,
        auth: Auth::Rsa(RSA_AUTHREP),
        encryption: None,
        accepted: true,
        asterisk: true,
    },
    Call {
        file: ENCRYPTED,
        a: 10555,
        b: 15099,
        called: "602",
        username: "siteA",
        token: Some("1795802219?b8ccde3fd158a730ba8b72594388e54f12e37ded"),
        challenge: "971040254",
        methods: AuthMethods::MD5,
        auth: Auth::Hidden,
        encryption: Some((0x8001, 0x0001)),
        accepted: false, // the ACCEPT is encrypted
        asterisk: true,
    },
    Call {
        file: GOLDEN,
        a: 17001,
        b: 2345,
        called: "2001",
        username: "siteA",
        token: None,
        challenge: "214748364",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "0c5b82d1f207f433199e2c3652d875d7",
            secret: "s3cret",
        },
        encryption: None,
        accepted: true,
        asterisk: false,
    },
    Call {
        file: GOLDEN,
        a: 17002,
        b: 2346,
        called: "2002",
        username: "siteA",
        token: None,
        challenge: "123456789",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "d32b5714dd0e3ae70d4a845d5e524f3f",
            secret: "s3cret",
        },
        encryption: None,
        accepted: true,
        asterisk: false,
    },
];

/// The shape of an Asterisk CALLTOKEN: `<unix time>?<40 hex digits>`;
/// returns the time.
fn token_time(at: &str, token: &[u8]) -> u64 {
    let text = core::str::from_utf8(token).unwrap_or_else(|e| panic!("{at}: token: {e}"));
    let (time, hash) = text
        .split_once('?')
        .unwrap_or_else(|| panic!("{at}: token {text:?} has no '?'"));
    assert_eq!(hash.len(), 40, "{at}: token hash length");
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{at}: token hash {hash:?} is not lowercase hex"
    );
    time.parse()
        .unwrap_or_else(|e| panic!("{at}: token time {time:?}: {e}"))
}

/// The IE order of an Asterisk 22 NEW (README, "NEW IE order").
fn asterisk_new_order(encryption: bool) -> Vec<IeType> {
    let mut order = vec![
        IeType::Version,
        IeType::CalledNumber,
        IeType::CodecPrefs,
        IeType::CallingPres,
        IeType::CallingTon,
        IeType::CallingTns,
        IeType::CallingAni2,
        IeType::Language,
        IeType::Username,
    ];
    if encryption {
        order.push(IeType::Encryption);
    }
    order.extend([
        IeType::Format,
        IeType::Format2,
        IeType::Capability,
        IeType::Capability2,
        IeType::AdsiCpe,
        IeType::DateTime,
        IeType::CallToken,
    ]);
    order
}

fn check_asterisk_new(at: &str, ies: &IeList, call: &Call) {
    assert_eq!(
        types(ies),
        asterisk_new_order(call.encryption.is_some()),
        "{at}: NEW IE order"
    );
    assert_eq!(ies.version(), Ok(Some(2)), "{at}: VERSION");
    assert_eq!(ies.codec_prefs(), Ok(Some("D")), "{at}: CODEC_PREFS");
    assert_eq!(
        ies.u8_ie(IeType::CallingPres),
        Ok(Some(67)),
        "{at}: CALLINGPRES"
    );
    assert_eq!(
        ies.u8_ie(IeType::CallingTon),
        Ok(Some(0)),
        "{at}: CALLINGTON"
    );
    assert_eq!(
        ies.u16_ie(IeType::CallingTns),
        Ok(Some(0)),
        "{at}: CALLINGTNS"
    );
    assert_eq!(
        ies.u32_ie(IeType::CallingAni2),
        Ok(Some(0)),
        "{at}: CALLINGANI2"
    );
    assert_eq!(
        ies.str_ie(IeType::Language),
        Ok(Some("en")),
        "{at}: LANGUAGE"
    );
    assert_eq!(ies.u32_ie(IeType::Format), Ok(Some(4)), "{at}: FORMAT");
    assert_eq!(
        ies.find(IeType::Format2),
        Some(&[0, 0, 0, 0, 0, 0, 0, 0, 4][..]),
        "{at}: FORMAT2"
    );
    assert_eq!(ies.format(), Ok(Some(MediaFormat::ULAW)), "{at}: format()");
    assert_eq!(
        ies.u32_ie(IeType::Capability),
        Ok(Some(4)),
        "{at}: CAPABILITY"
    );
    assert_eq!(
        ies.capability(),
        Ok(Some(MediaFormat::ULAW)),
        "{at}: capability()"
    );
    assert_eq!(ies.u16_ie(IeType::AdsiCpe), Ok(Some(2)), "{at}: ADSICPE");
    // No caller ID is set on site A.
    assert!(
        !ies.contains(IeType::CallingNumber),
        "{at}: no CALLING NUMBER"
    );
    assert!(!ies.contains(IeType::CallingName), "{at}: no CALLING NAME");
}

#[test]
fn calls_set_up_as_the_readme_says() {
    let mut loaded: BTreeMap<&str, Capture> = BTreeMap::new();
    for call in CALLS {
        let cap = loaded
            .entry(call.file)
            .or_insert_with(|| Capture::load(call.file));
        let (a, b) = (cn(call.a), cn(call.b));
        let what = format!("{} call {}/{}", call.file, call.a, call.b);

        // NEW (empty CALLTOKEN) -> CALLTOKEN from call 1 -> the same NEW
        // with the token, both o0 i0 to destination call 0.
        let news: Vec<_> = cap
            .iax(IaxSubclass::New)
            .into_iter()
            .filter(|(_, f)| f.source_call_number == a)
            .collect();
        assert_eq!(news.len(), 2, "{what}: two NEWs");
        let (n1, new1) = news[0];
        let (n2, new2) = news[1];
        for (n, f) in [(n1, new1), (n2, new2)] {
            let at = cap.at(n);
            assert_eq!(
                f.dest_call_number,
                CallNumber::UNKNOWN,
                "{at}: NEW to call 0"
            );
            assert_eq!(
                (f.oseqno, f.iseqno),
                (SeqNo(0), SeqNo(0)),
                "{at}: NEW o0 i0"
            );
            assert!(from_a(&cap.frame(n).d), "{at}: NEW from site A");
            let ies = cap.ies(n);
            assert_eq!(
                ies.called_number(),
                Ok(Some(call.called)),
                "{at}: CALLED NUMBER"
            );
            assert_eq!(ies.username(), Ok(Some(call.username)), "{at}: USERNAME");
            assert_eq!(
                ies.encryption(),
                Ok(call.encryption.map(|(new, _)| Encryption::from_bits(new))),
                "{at}: ENCRYPTION"
            );
            if call.asterisk {
                check_asterisk_new(&at, ies, call);
            }
        }
        assert!(
            new2.timestamp > new1.timestamp,
            "{}: resent NEW is later",
            cap.at(n2)
        );
        assert_eq!(
            cap.ies(n1).calltoken(),
            Some(&[][..]),
            "{}: empty CALLTOKEN",
            cap.at(n1)
        );
        // The resent NEW is the first one with the token in its CALLTOKEN.
        let without_token = |ies: &IeList| -> Vec<_> {
            ies.iter()
                .filter(|ie| ie.ie_type() != IeType::CallToken)
                .cloned()
                .collect()
        };
        assert_eq!(
            without_token(cap.ies(n1)),
            without_token(cap.ies(n2)),
            "{}: resent NEW differs from frame {n1} beyond the token",
            cap.at(n2)
        );

        let tokens: Vec<_> = cap
            .iax(IaxSubclass::CallToken)
            .into_iter()
            .filter(|(_, f)| f.dest_call_number == a)
            .collect();
        assert_eq!(tokens.len(), 1, "{what}: one CALLTOKEN reply");
        let (nt, tok) = tokens[0];
        let at = cap.at(nt);
        assert!(
            n1 < nt && nt < n2,
            "{at}: CALLTOKEN between the NEWs {n1} and {n2}"
        );
        assert_eq!(
            tok.source_call_number,
            CallNumber::STATELESS,
            "{at}: from call 1"
        );
        assert_eq!(
            (tok.oseqno, tok.iseqno),
            (SeqNo(0), SeqNo(1)),
            "{at}: o0 i1"
        );
        let token = cap.ies(nt).calltoken().expect("CALLTOKEN IE present");
        assert_eq!(
            cap.ies(n2).calltoken(),
            Some(token),
            "{}: NEW echoes the token",
            cap.at(n2)
        );
        if let Some(want) = call.token {
            assert_eq!(token, want.as_bytes(), "{at}: token");
        }
        if call.asterisk {
            // The token's time is the unix time B sent it at.
            let time = token_time(&at, token);
            let sent = cap.frame(nt).d.time.as_secs();
            assert!(
                time.abs_diff(sent) <= 1,
                "{at}: token time {time}, capture time {sent}"
            );
        }

        // AUTHREQ from B's new call number: AUTHMETHODS, CHALLENGE,
        // [ENCRYPTION], USERNAME.
        let authreqs: Vec<_> = cap
            .iax(IaxSubclass::AuthReq)
            .into_iter()
            .filter(|(_, f)| f.dest_call_number == a)
            .collect();
        assert_eq!(authreqs.len(), 1, "{what}: one AUTHREQ");
        let (nq, req) = authreqs[0];
        let at = cap.at(nq);
        assert!(nq > n2, "{at}: AUTHREQ after the NEW with token");
        assert_eq!(req.source_call_number, b, "{at}: B's call number");
        assert_eq!(
            (req.oseqno, req.iseqno),
            (SeqNo(0), SeqNo(1)),
            "{at}: o0 i1"
        );
        let ies = cap.ies(nq);
        let mut order = vec![IeType::AuthMethods, IeType::Challenge];
        if call.encryption.is_some() {
            order.push(IeType::Encryption);
        }
        order.push(IeType::Username);
        assert_eq!(types(ies), order, "{at}: AUTHREQ IE order");
        assert_eq!(
            ies.auth_methods(),
            Ok(Some(call.methods)),
            "{at}: AUTHMETHODS"
        );
        assert_eq!(
            ies.challenge(),
            Some(call.challenge.as_bytes()),
            "{at}: CHALLENGE"
        );
        assert!(
            matches!(call.challenge.len(), 8 | 9)
                && call.challenge.bytes().all(|c| c.is_ascii_digit()),
            "{at}: challenge is 8 or 9 decimal digits"
        );
        assert_eq!(
            ies.username(),
            Ok(Some(call.username)),
            "{at}: USERNAME echoed"
        );
        assert_eq!(
            ies.encryption(),
            Ok(call.encryption.map(|(_, req)| Encryption::from_bits(req))),
            "{at}: ENCRYPTION"
        );

        // AUTHREP from A, o1 i1.
        let authreps: Vec<_> = cap
            .iax(IaxSubclass::AuthRep)
            .into_iter()
            .filter(|(_, f)| f.source_call_number == a)
            .collect();
        match &call.auth {
            Auth::Hidden => assert!(authreps.is_empty(), "{what}: AUTHREP is encrypted"),
            Auth::Md5 { result, secret } => {
                assert_eq!(authreps.len(), 1, "{what}: one AUTHREP");
                let (np, rep) = authreps[0];
                let at = cap.at(np);
                assert_eq!(rep.dest_call_number, b, "{at}: to B");
                assert_eq!(
                    (rep.oseqno, rep.iseqno),
                    (SeqNo(1), SeqNo(1)),
                    "{at}: o1 i1"
                );
                let ies = cap.ies(np);
                assert_eq!(types(ies), [IeType::Md5Result], "{at}: AUTHREP IEs");
                assert_eq!(ies.md5_result(), Ok(Some(*result)), "{at}: MD5 RESULT");
                assert_eq!(
                    md5_hex(&format!("{}{secret}", call.challenge)),
                    *result,
                    "{at}: MD5(challenge + {secret:?})"
                );
            }
            Auth::Rsa(result) => {
                assert_eq!(authreps.len(), 1, "{what}: one AUTHREP");
                let (np, _) = authreps[0];
                let at = cap.at(np);
                let ies = cap.ies(np);
                assert_eq!(ies.rsa_result(), Ok(Some(*result)), "{at}: RSA RESULT");
                assert_eq!(result.len(), 172, "{at}: base64 of a 1024-bit signature");
            }
        }

        if call.accepted {
            let accepts: Vec<_> = cap
                .iax(IaxSubclass::Accept)
                .into_iter()
                .filter(|(_, f)| f.source_call_number == b && f.dest_call_number == a)
                .collect();
            assert_eq!(accepts.len(), 1, "{what}: one ACCEPT");
            let (na, _) = accepts[0];
            let at = cap.at(na);
            let ies = cap.ies(na);
            assert_eq!(
                types(ies),
                [IeType::Format, IeType::Format2],
                "{at}: ACCEPT IEs"
            );
            assert_eq!(ies.u32_ie(IeType::Format), Ok(Some(4)), "{at}: FORMAT 4");
            assert_eq!(
                ies.format(),
                Ok(Some(MediaFormat::ULAW)),
                "{at}: FORMAT2 u-law"
            );
        }

        // Every clear full frame of the call carries the README's call
        // numbers (B's call number 1 only on the CALLTOKEN reply).
        for (d, f) in cap.fulls() {
            let ours = f.source_call_number == a || f.source_call_number == b;
            if !ours {
                continue;
            }
            let at = cap.at(d.number);
            if f.source_call_number == a {
                assert!(from_a(d), "{at}: A's call number from B's side");
                assert!(
                    [CallNumber::UNKNOWN, b].contains(&f.dest_call_number),
                    "{at}: A's frame to {}",
                    f.dest_call_number
                );
            } else {
                assert!(!from_a(d), "{at}: B's call number from A's side");
                assert_eq!(f.dest_call_number, a, "{at}: B's frame to A");
            }
        }
    }
}

/// One registration as the README lists it.
struct Registration {
    file: &'static str,
    /// Frame of the first REGREQ.
    first: usize,
    username: &'static str,
    /// REFRESH asked for.
    refresh: u16,
    challenge: &'static str,
    methods: AuthMethods,
    auth: Auth,
    /// The REGREQ with the answer carries an empty CALLTOKEN again.
    empty_token_again: bool,
    outcome: RegOutcome,
}

enum RegOutcome {
    /// REGACK with this REFRESH and APPARENT ADDR.
    Ack {
        refresh: u16,
        apparent: &'static str,
    },
    /// REGREJ with CAUSE and CAUSECODE.
    Rej { cause: &'static str, code: u8 },
}

/// RSA RESULT of the AUTHREP in `asterisk22-rsa.pcap` (challenge 783045299).
const RSA_AUTHREP: &str = "WXBFxY2gWcRyGFAgS3IztBJyhBO0OJlC6hDmYL/beTUb/eRSPKGxaENKjL9Mfh+p30DXL3fQfO56qG/nZRzh5HctSxn/h/mAAyAbcvLkCTjGoOF1/BJel3jWsP3QBA7eAzyYl3yrF+yxjjbZSE9AfIqAk4xn2xVSgbY0W3pqbNs=";

/// RSA RESULT of the REGREQ in `asterisk22-rsa.pcap` (challenge 170728676).
const RSA_REGREQ: &str = "pscvICy+8hHhGC8oKxKCVe3KFD80ipEsm1bBMsATEceQXaeFOBFUg0JekHT+LWpnYSmQYGl5HmZLGGwR/NEwpvS/EXCQleTwqVFAVYfezUEtXbBOcm7d0iVJwkySPpAci+zTJrJ+f/BrSUZ/vObbamOhbVa1w2rRrqUzUQxbEcA=";

const REGISTRATIONS: &[Registration] = &[
    Registration {
        file: GOLDEN,
        first: 1,
        username: "siteA",
        refresh: 60,
        challenge: "987654321",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "08aec3d6295019ee376aa44af22f0f85",
            secret: "s3cret",
        },
        empty_token_again: false,
        outcome: RegOutcome::Ack {
            refresh: 60,
            apparent: "192.0.2.10:4569",
        },
    },
    Registration {
        file: REGISTER,
        first: 1,
        username: "siteA",
        refresh: 60,
        challenge: "150394610",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "229c3663215c863e370492f587da1714",
            secret: "regpass22",
        },
        empty_token_again: true,
        outcome: RegOutcome::Ack {
            refresh: 15,
            apparent: "127.0.0.1:4571",
        },
    },
    Registration {
        file: REGISTER,
        first: 31,
        username: "siteA",
        refresh: 15,
        challenge: "112627980",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "30a01b36b14b48eecc395b30647859cf",
            secret: "regpass22",
        },
        empty_token_again: false,
        outcome: RegOutcome::Ack {
            refresh: 15,
            apparent: "127.0.0.1:4571",
        },
    },
    Registration {
        file: REGISTER,
        first: 56,
        username: "siteA",
        refresh: 15,
        challenge: "48946034",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "121947863a6535501adee0e1d188c51e",
            secret: "regpass22",
        },
        empty_token_again: false,
        outcome: RegOutcome::Ack {
            refresh: 15,
            apparent: "127.0.0.1:4571",
        },
    },
    Registration {
        file: REJECT,
        first: 1,
        username: "regA",
        refresh: 60,
        challenge: "953647339",
        methods: AuthMethods::MD5,
        auth: Auth::Md5 {
            result: "4d670ab87655ae2339122282f425aa18",
            secret: "wrongpass",
        },
        empty_token_again: false,
        outcome: RegOutcome::Rej {
            cause: "Registration Refused",
            code: 29,
        },
    },
    Registration {
        file: RSA,
        first: 1,
        username: "siteA",
        refresh: 60,
        challenge: "170728676",
        methods: AuthMethods::RSA,
        auth: Auth::Rsa(RSA_REGREQ),
        empty_token_again: true,
        outcome: RegOutcome::Ack {
            refresh: 60,
            apparent: "127.0.0.1:4571",
        },
    },
];

#[test]
fn registrations_as_the_readme_says() {
    let mut loaded: BTreeMap<&str, Capture> = BTreeMap::new();
    for reg in REGISTRATIONS {
        let cap = loaded
            .entry(reg.file)
            .or_insert_with(|| Capture::load(reg.file));
        let at = cap.at(reg.first);
        let first = cap.full(reg.first);
        assert_eq!(
            first.iax_subclass(),
            Some(IaxSubclass::RegReq),
            "{at}: REGREQ"
        );
        let a = first.source_call_number;
        // This registration's frames, by call number (A's, then B's).
        let regreqs: Vec<_> = cap
            .iax(IaxSubclass::RegReq)
            .into_iter()
            .filter(|(_, f)| f.source_call_number == a)
            .collect();
        assert_eq!(regreqs.len(), 3, "{at}: three REGREQs from call {a}");
        let [(r1, req1), (r2, req2), (r3, req3)] = [regreqs[0], regreqs[1], regreqs[2]];
        let token_reply: Vec<_> = cap
            .iax(IaxSubclass::CallToken)
            .into_iter()
            .filter(|(_, f)| f.dest_call_number == a)
            .collect();
        assert_eq!(
            token_reply.len(),
            1,
            "{at}: one CALLTOKEN reply to call {a}"
        );
        let (nt, tok) = token_reply[0];
        let regauth: Vec<_> = cap
            .iax(IaxSubclass::RegAuth)
            .into_iter()
            .filter(|(_, f)| f.dest_call_number == a)
            .collect();
        assert_eq!(regauth.len(), 1, "{at}: one REGAUTH to call {a}");
        let (nq, auth) = regauth[0];
        let b = auth.source_call_number;
        assert!(
            r1 < nt && nt < r2 && r2 < nq && nq < r3,
            "{at}: frame order"
        );

        for (n, f) in [(r1, req1), (r2, req2)] {
            let at = cap.at(n);
            assert_eq!(f.dest_call_number, CallNumber::UNKNOWN, "{at}: to call 0");
            assert_eq!((f.oseqno, f.iseqno), (SeqNo(0), SeqNo(0)), "{at}: o0 i0");
        }
        assert_eq!(
            tok.source_call_number,
            CallNumber::STATELESS,
            "{}: call 1",
            cap.at(nt)
        );
        let token = cap.ies(nt).calltoken().expect("CALLTOKEN IE");
        assert!(!token.is_empty(), "{}: a token", cap.at(nt));
        assert_eq!(
            cap.ies(r1).calltoken(),
            Some(&[][..]),
            "{}: empty CALLTOKEN",
            cap.at(r1)
        );
        assert_eq!(
            cap.ies(r2).calltoken(),
            Some(token),
            "{}: token echoed",
            cap.at(r2)
        );
        for n in [r1, r2, r3] {
            let ies = cap.ies(n);
            assert_eq!(
                ies.username(),
                Ok(Some(reg.username)),
                "{}: USERNAME",
                cap.at(n)
            );
            assert_eq!(
                ies.refresh(),
                Ok(Some(reg.refresh)),
                "{}: REFRESH",
                cap.at(n)
            );
        }

        let ies = cap.ies(nq);
        let at = cap.at(nq);
        assert_eq!(
            types(ies),
            [IeType::AuthMethods, IeType::Challenge, IeType::Username],
            "{at}: REGAUTH IEs"
        );
        assert_eq!(
            ies.auth_methods(),
            Ok(Some(reg.methods)),
            "{at}: AUTHMETHODS"
        );
        assert_eq!(
            ies.challenge(),
            Some(reg.challenge.as_bytes()),
            "{at}: CHALLENGE"
        );
        assert_eq!(ies.username(), Ok(Some(reg.username)), "{at}: USERNAME");

        let at = cap.at(r3);
        assert_eq!(req3.dest_call_number, b, "{at}: to B's call {b}");
        assert_eq!(
            (req3.oseqno, req3.iseqno),
            (SeqNo(1), SeqNo(1)),
            "{at}: o1 i1"
        );
        let ies = cap.ies(r3);
        match &reg.auth {
            Auth::Md5 { result, secret } => {
                assert_eq!(ies.md5_result(), Ok(Some(*result)), "{at}: MD5 RESULT");
                assert_eq!(
                    md5_hex(&format!("{}{secret}", reg.challenge)),
                    *result,
                    "{at}: MD5(challenge + {secret:?})"
                );
            }
            Auth::Rsa(result) => {
                assert_eq!(ies.rsa_result(), Ok(Some(*result)), "{at}: RSA RESULT");
                assert_eq!(result.len(), 172, "{at}: base64 of a 1024-bit signature");
            }
            Auth::Hidden => unreachable!("registrations are in clear"),
        }
        if reg.empty_token_again {
            assert_eq!(
                ies.calltoken(),
                Some(&[][..]),
                "{at}: empty CALLTOKEN again"
            );
        }

        match reg.outcome {
            RegOutcome::Ack { refresh, apparent } => {
                let acks: Vec<_> = cap
                    .iax(IaxSubclass::RegAck)
                    .into_iter()
                    .filter(|(_, f)| f.source_call_number == b && f.dest_call_number == a)
                    .collect();
                assert_eq!(acks.len(), 1, "{at}: one REGACK");
                let (n, ack) = acks[0];
                let at = cap.at(n);
                assert_eq!(
                    (ack.oseqno, ack.iseqno),
                    (SeqNo(1), SeqNo(2)),
                    "{at}: o1 i2"
                );
                let ies = cap.ies(n);
                assert_eq!(
                    types(ies),
                    [
                        IeType::Username,
                        IeType::DateTime,
                        IeType::Refresh,
                        IeType::ApparentAddr
                    ],
                    "{at}: REGACK IEs"
                );
                assert_eq!(ies.username(), Ok(Some(reg.username)), "{at}: USERNAME");
                assert_eq!(ies.refresh(), Ok(Some(refresh)), "{at}: REFRESH");
                let want: SocketAddr = apparent.parse().expect("address literal");
                assert_eq!(
                    ies.apparent_addr(),
                    Ok(Some(ApparentAddr {
                        addr: want,
                        family_order: FamilyOrder::Little
                    })),
                    "{at}: APPARENT ADDR"
                );
                // The raw sockaddr_in: family 2 little-endian, port and
                // address in network order, 8 zero bytes.
                let raw = ies.find(IeType::ApparentAddr).expect("present");
                let mut sockaddr = vec![0x02, 0x00];
                sockaddr.extend_from_slice(&want.port().to_be_bytes());
                if let SocketAddr::V4(v4) = want {
                    sockaddr.extend_from_slice(&v4.ip().octets());
                }
                sockaddr.extend_from_slice(&[0; 8]);
                assert_eq!(raw, &sockaddr[..], "{at}: APPARENT ADDR bytes");
                // The registrar saw the REGREQ come from that address.
                assert_eq!(
                    SocketAddr::V4(cap.frame(r3).d.src),
                    want,
                    "{at}: source of REGREQ"
                );
                assert!(
                    ies.datetime().expect("well-formed DATETIME").is_some(),
                    "{at}: DATETIME"
                );
            }
            RegOutcome::Rej { cause, code } => {
                let rejs: Vec<_> = cap
                    .iax(IaxSubclass::RegRej)
                    .into_iter()
                    .filter(|(_, f)| f.dest_call_number == a)
                    .collect();
                assert_eq!(rejs.len(), 1, "{at}: one REGREJ");
                let (n, _) = rejs[0];
                let ies = cap.ies(n);
                assert_eq!(ies.cause(), Ok(Some(cause)), "{}: CAUSE", cap.at(n));
                assert_eq!(ies.causecode(), Ok(Some(code)), "{}: CAUSECODE", cap.at(n));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Behaviour the README describes for all Asterisk captures.

/// "An ACK carries the timestamp of the frame it acknowledges": every ACK
/// in clear matches an earlier frame from the other side of the same call
/// with that timestamp. Its ISeqno is one past the OSeqno of one such frame
/// (when two frames share the timestamp it may ACK the older one).
#[test]
fn acks_echo_the_acknowledged_frame() {
    for file in [
        NDPI, GOLDEN, TRUNK_TS, TRUNK_NOTS, MINI, REGISTER, REJECT, RSA,
    ] {
        let cap = Capture::load(file);
        let fulls: Vec<_> = cap.fulls().collect();
        let mut acks = 0;
        for (i, (d, ack)) in fulls.iter().enumerate() {
            if ack.iax_subclass() != Some(IaxSubclass::Ack) {
                continue;
            }
            acks += 1;
            let at = cap.at(d.number);
            let candidates: Vec<_> = fulls[..i]
                .iter()
                .filter(|(_, f)| {
                    f.source_call_number == ack.dest_call_number
                        && (f.dest_call_number == ack.source_call_number
                            || f.dest_call_number == CallNumber::UNKNOWN)
                        && f.timestamp == ack.timestamp
                        && f.iax_subclass() != Some(IaxSubclass::Ack)
                })
                .collect();
            assert!(
                !candidates.is_empty(),
                "{at}: ACK ts {} matches no earlier frame of the call",
                ack.timestamp
            );
            assert!(
                candidates
                    .iter()
                    .any(|(_, f)| f.oseqno.next() == ack.iseqno),
                "{at}: ACK ISeqno {:?} is not one past the OSeqno of an acknowledged frame",
                ack.iseqno
            );
        }
        assert!(acks > 0, "{file}: no ACKs");
    }
}

#[test]
fn answer_is_followed_by_stop_sounds_and_first_voice_is_full() {
    for file in [TRUNK_TS, TRUNK_NOTS, MINI, REGISTER, RSA] {
        let cap = Capture::load(file);
        let fulls: Vec<_> = cap.fulls().collect();
        for (i, (d, f)) in fulls.iter().enumerate() {
            if f.frame_type != FrameType::Control
                || f.control_subclass() != Some(ControlSubclass::Answer)
            {
                continue;
            }
            let at = cap.at(d.number);
            assert!(f.ies().is_none(), "{at}: control frame payload is raw");
            let next = fulls[i + 1..]
                .iter()
                .find(|(_, g)| {
                    g.source_call_number == f.source_call_number
                        && g.frame_type == FrameType::Control
                })
                .unwrap_or_else(|| panic!("{at}: no control frame after ANSWER"));
            assert_eq!(
                next.1.subclass,
                Subclass(0xff),
                "{}: stop sounds (0xFF)",
                cap.at(next.0.number)
            );
            assert_eq!(next.1.control_subclass(), Some(ControlSubclass::StopSounds));
        }
        // The first voice of each call number is a full Voice frame, u-law
        // (literal subclass 0x04), 160 bytes, before any mini frame of it.
        let mut first_full: BTreeMap<CallNumber, usize> = BTreeMap::new();
        for (d, f) in cap
            .fulls()
            .filter(|(_, f)| f.frame_type == FrameType::Voice)
        {
            let at = cap.at(d.number);
            assert_eq!(f.subclass, Subclass(0x04), "{at}: literal u-law subclass");
            assert_eq!(
                f.subclass.voice_format(),
                Some(MediaFormat::ULAW),
                "{at}: u-law"
            );
            assert_eq!(f.buffer_len(), 12 + 160, "{at}: 160 bytes of u-law");
            first_full.entry(f.source_call_number).or_insert(d.number);
        }
        for (d, m) in cap.minis() {
            let at = cap.at(d.number);
            let full = first_full
                .get(&m.source_call_number)
                .unwrap_or_else(|| panic!("{at}: mini frame of a call without full Voice"));
            assert!(
                *full < d.number,
                "{at}: mini frame before the first full Voice"
            );
            assert_eq!(m.payload.len(), 160, "{at}: 160 bytes of u-law");
        }
    }
}

/// Every DATETIME of the Asterisk captures decodes to the capture's own
/// time: the machine clock was UTC and DATETIME has a 2-second resolution.
/// The README's example: 897289909 = 2026-11-27 17:53:42.
#[test]
fn datetime_decodes_to_the_capture_time() {
    let example = IaxDateTime::from_bits(897_289_909);
    assert_eq!(
        (
            example.year,
            example.month,
            example.day,
            example.hour,
            example.minute,
            example.second
        ),
        (2026, 11, 27, 17, 53, 42)
    );
    let mut seen = 0;
    let mut example_seen = false;
    for file in ASTERISK {
        let cap = Capture::load(file);
        for (d, f) in cap.fulls() {
            let Some(ies) = f.ies() else { continue };
            let at = cap.at(d.number);
            let Some(dt) = ies
                .datetime()
                .unwrap_or_else(|e| panic!("{at}: DATETIME: {e}"))
            else {
                continue;
            };
            seen += 1;
            example_seen |= ies.u32_ie(IeType::DateTime) == Ok(Some(897_289_909));
            assert_eq!(
                (dt.year, dt.month, dt.day),
                (2026, 11, 27),
                "{at}: capture day"
            );
            let t = i64::try_from(d.time.as_secs()).expect("2026 fits");
            let dt_secs = unix_seconds(dt);
            assert!(
                (t - 3..=t).contains(&dt_secs),
                "{at}: DATETIME {dt:?} is not the capture time {t}"
            );
            assert_eq!(
                IaxDateTime::to_bits(dt),
                ies.u32_ie(IeType::DateTime)
                    .ok()
                    .flatten()
                    .expect("present")
            );
        }
    }
    assert!(seen >= 20, "DATETIMEs seen: {seen}");
    assert!(
        example_seen,
        "the README's example 897289909 is in {TRUNK_TS}"
    );
}

// ---------------------------------------------------------------------------
// Trunk captures.

/// Entries per trunk frame: count -> frames.
type Histogram = BTreeMap<usize, usize>;

struct TrunkFacts {
    file: &'static str,
    layout: TrunkLayout,
    command_data: u8,
    a_calls: [u16; 3],
    b_calls: [u16; 3],
    hist_a: &'static [(usize, usize)],
    hist_b: &'static [(usize, usize)],
    /// Frames after the HANGUPs that still carry entries.
    after_hangup: [usize; 2],
}

const TRUNK_FACTS: [TrunkFacts; 2] = [
    TrunkFacts {
        file: TRUNK_TS,
        layout: TrunkLayout::Timestamps,
        command_data: 1,
        a_calls: [22286, 32293, 31969],
        b_calls: [215, 11627, 1589],
        hist_a: &[(1, 21), (2, 23), (3, 190), (4, 2)],
        hist_b: &[(1, 20), (2, 23), (3, 190), (4, 2)],
        after_hangup: [527, 528],
    },
    TrunkFacts {
        file: TRUNK_NOTS,
        layout: TrunkLayout::NoTimestamps,
        command_data: 0,
        a_calls: [31032, 20792, 32237],
        b_calls: [2355, 15167, 12636],
        hist_a: &[(1, 20), (2, 21), (3, 194)],
        hist_b: &[(1, 20), (2, 20), (3, 194)],
        after_hangup: [525, 526],
    },
];

#[test]
fn trunk_frames_match_the_readme() {
    for facts in &TRUNK_FACTS {
        let cap = Capture::load(facts.file);
        let file = facts.file;
        let (mut hist_a, mut hist_b) = (Histogram::new(), Histogram::new());
        let (mut next_ts_a, mut next_ts_b) = (0u32, 0u32);
        let last_full = cap.fulls().map(|(d, _)| d.number).max().unwrap_or(0);
        for (d, t) in cap.trunks() {
            let at = cap.at(d.number);
            let a = from_a(d);
            // Header: 00 00 | 01 | command data, then the trunk timestamp.
            assert_eq!(
                &d.payload[..4],
                &[0, 0, 1, facts.command_data],
                "{at}: meta header"
            );
            assert_eq!(t.command_data, facts.command_data, "{at}: command data");
            assert_eq!(t.layout(), facts.layout, "{at}: layout");
            // Each direction's trunk clock starts at 0 and steps by 20 ms.
            let next = if a { &mut next_ts_a } else { &mut next_ts_b };
            assert_eq!(t.trunk_timestamp, *next, "{at}: trunk timestamp");
            *next += 20;
            let calls = if a { facts.a_calls } else { facts.b_calls };
            for (i, e) in t.entries.iter().enumerate() {
                let at = format!("{at} entry {i}");
                assert_eq!(e.payload.len(), 160, "{at}: 160 bytes of u-law");
                assert!(
                    calls.contains(&e.call_number.get()),
                    "{at}: call {}",
                    e.call_number
                );
                assert!(!e.flag, "{at}: Asterisk never sets the entry's top bit");
                match facts.layout {
                    TrunkLayout::Timestamps => {
                        let ts = e.timestamp.expect("timestamped layout");
                        assert_eq!(ts.0 % 20, 0, "{at}: 20 ms voice timestamps ({})", ts.0);
                    }
                    TrunkLayout::NoTimestamps => assert_eq!(e.timestamp, None, "{at}"),
                }
            }
            let hist = if a { &mut hist_a } else { &mut hist_b };
            *hist.entry(t.entries.len()).or_default() += 1;
        }
        let want = |h: &[(usize, usize)]| h.iter().copied().collect::<Histogram>();
        assert_eq!(hist_a, want(facts.hist_a), "{file}: entries per frame A->B");
        assert_eq!(hist_b, want(facts.hist_b), "{file}: entries per frame B->A");
        // The last two datagrams are trunk frames sent after every HANGUP.
        for n in facts.after_hangup {
            assert!(n > last_full, "{}: after the last full frame", cap.at(n));
            assert!(
                !cap.trunk(n).entries.is_empty(),
                "{}: still carries entries",
                cap.at(n)
            );
        }
    }
}

#[test]
fn trunk_ts_entry_timestamps_continue_the_calls() {
    let cap = Capture::load(TRUNK_TS);
    // Call 1: first full Voice at ts 540 each way, first trunk entry 560.
    for (n, call) in [(23, 22286), (25, 215)] {
        let f = cap.full(n);
        assert_eq!(f.frame_type, FrameType::Voice, "{}", cap.at(n));
        assert_eq!(
            (f.source_call_number, f.timestamp),
            (cn(call), 540),
            "{}",
            cap.at(n)
        );
        let first = cap
            .trunks()
            .flat_map(|(_, t)| t.entries.iter())
            .find(|e| e.call_number == cn(call))
            .unwrap_or_else(|| panic!("{TRUNK_TS}: no entry of call {call}"));
        assert_eq!(
            first.timestamp,
            Some(Timestamp16(560)),
            "{TRUNK_TS}: first entry of {call}"
        );
    }
    assert_eq!(cap.trunk(27).entries.len(), 1, "{}", cap.at(27));
    assert_eq!(cap.trunk(27).trunk_timestamp, 0, "{}", cap.at(27));
    // Frames 262, 263, 358 and 359 carry two entries of one call.
    for n in [262, 263, 358, 359] {
        let t = cap.trunk(n);
        let mut per_call: BTreeMap<CallNumber, Vec<u16>> = BTreeMap::new();
        for e in &t.entries {
            per_call
                .entry(e.call_number)
                .or_default()
                .push(e.timestamp.expect("timestamped").0);
        }
        let doubled: Vec<_> = per_call.iter().filter(|(_, ts)| ts.len() == 2).collect();
        assert_eq!(
            doubled.len(),
            1,
            "{}: one call with two entries: {per_call:?}",
            cap.at(n)
        );
        let ts = doubled[0].1;
        assert_eq!(
            ts[1],
            ts[0] + 20,
            "{}: two consecutive 20 ms frames",
            cap.at(n)
        );
    }
    let t262 = cap.trunk(262);
    let calls: Vec<(u16, u16)> = t262
        .entries
        .iter()
        .filter(|e| e.call_number == cn(31969))
        .map(|e| (e.call_number.get(), e.timestamp.expect("timestamped").0))
        .collect();
    assert_eq!(calls, [(31969, 1840), (31969, 1860)], "{}", cap.at(262));
    // "The order of entries changes from frame to frame" (B's side does).
    let orders: std::collections::BTreeSet<Vec<CallNumber>> = cap
        .trunks()
        .filter(|(d, t)| !from_a(d) && t.entries.len() == 3)
        .map(|(_, t)| t.entries.iter().map(|e| e.call_number).collect())
        .collect();
    assert!(
        orders.len() > 1,
        "{TRUNK_TS}: B's entry order never changes"
    );
    // HANGUP with CAUSECODE 0 for the three calls, each ACKed (521-526).
    let hangups = cap.iax(IaxSubclass::Hangup);
    assert_eq!(hangups.len(), 3);
    for (n, _) in hangups {
        assert!((521..=526).contains(&n), "{}: HANGUP", cap.at(n));
        assert_eq!(
            cap.ies(n).causecode(),
            Ok(Some(0)),
            "{}: CAUSECODE",
            cap.at(n)
        );
        assert_eq!(cap.ies(n).cause(), Ok(None), "{}: no CAUSE text", cap.at(n));
    }
}

/// PROTOCOL.md 2.5: without timestamps an entry is `call(2) | length(2)`,
/// with them `length(2) | call(2) | ts(2)`. Read the raw bytes of the first
/// entry of each layout and compare with the parsed entry.
#[test]
fn trunk_entry_layouts_on_the_wire() {
    for (file, n, call) in [(TRUNK_TS, 27, 22286u16), (TRUNK_NOTS, 27, 31032)] {
        let cap = Capture::load(file);
        let bytes = &cap.frame(n).d.payload;
        let e = &cap.trunk(n).entries[0];
        let at = cap.at(n);
        assert_eq!(e.call_number, cn(call), "{at}");
        match e.timestamp {
            Some(ts) => {
                assert_eq!(&bytes[8..10], &160u16.to_be_bytes(), "{at}: length first");
                assert_eq!(&bytes[10..12], &call.to_be_bytes(), "{at}: then call");
                assert_eq!(&bytes[12..14], &ts.0.to_be_bytes(), "{at}: then ts");
                assert_eq!(&bytes[14..], &e.payload[..], "{at}: payload");
            }
            None => {
                assert_eq!(&bytes[8..10], &call.to_be_bytes(), "{at}: call first");
                assert_eq!(&bytes[10..12], &160u16.to_be_bytes(), "{at}: then length");
                assert_eq!(&bytes[12..], &e.payload[..], "{at}: payload");
            }
        }
        assert_eq!(
            bytes.len(),
            8 + 160 + e.timestamp.map_or(4, |_| 6),
            "{at}: one entry"
        );
    }
}

// ---------------------------------------------------------------------------
// Per-file facts.

#[test]
fn ndpi_capture() {
    let cap = Capture::load(NDPI);
    assert_eq!(cap.frames.len(), 50, "{NDPI}: packets");
    let (caller, callee) = (cn(4), cn(23));
    for p in &cap.frames {
        let at = cap.at(p.d.number);
        let (port, call) = if from_a(&p.d) {
            (4569, caller)
        } else {
            (4566, callee)
        };
        assert_eq!(p.d.src.port(), port, "{at}: source port");
        match &p.repr {
            FrameRepr::Full(f) => assert_eq!(f.source_call_number, call, "{at}"),
            FrameRepr::Mini(m) => {
                assert_eq!(m.source_call_number, call, "{at}");
                assert_eq!(m.payload.len(), 160, "{at}: 160-byte payload");
            }
            other => panic!(
                "{at}: no trunk or meta frames expected, got {:?}",
                other.kind()
            ),
        }
    }
    let minis = cap.minis().count();
    assert!(
        (35..=45).contains(&minis),
        "{NDPI}: ~40 mini frames, got {minis}"
    );

    // NEW o0/i0 -> ACK o0/i1 -> ACCEPT o0/i1 -> ACK o1/i1 -> ANSWER o1/i1
    // -> ACK o1/i2.
    let flow: [(usize, &str, u8, u8); 6] = [
        (1, "NEW", 0, 0),
        (2, "ACK", 0, 1),
        (3, "ACCEPT", 0, 1),
        (4, "ACK", 1, 1),
        (5, "ANSWER", 1, 1),
        (6, "ACK", 1, 2),
    ];
    for (n, what, o, i) in flow {
        let f = cap.full(n);
        assert_eq!(label(f), what, "{}", cap.at(n));
        assert_eq!(
            (f.oseqno, f.iseqno),
            (SeqNo(o), SeqNo(i)),
            "{}: o/i",
            cap.at(n)
        );
    }
    assert!(cap.ies(3).is_empty(), "{}: ACCEPT has no IEs", cap.at(3));

    // NEW: VERSION, CALLED/CALLING NUMBER, empty CALLING NAME, LANGUAGE,
    // the non-standard IE 255, ADSICPE, DATETIME; no CALLTOKEN, no auth.
    let ies = cap.ies(1);
    assert_eq!(
        types(ies),
        [
            IeType::Version,
            IeType::CalledNumber,
            IeType::CallingNumber,
            IeType::CallingName,
            IeType::Language,
            IeType::Unknown(255),
            IeType::AdsiCpe,
            IeType::DateTime,
        ],
        "{}: NEW IEs",
        cap.at(1)
    );
    assert_eq!(ies.version(), Ok(Some(2)));
    assert_eq!(ies.calling_name(), Ok(Some("")), "empty CALLING NAME");
    assert_eq!(ies.str_ie(IeType::Language), Ok(Some("en")));
    assert_eq!(ies.calltoken(), None);
    assert!(!ies.contains(IeType::Username) && !ies.contains(IeType::AuthMethods));
    // IE 255 stays Unknown(255) and the block re-emits byte for byte.
    let unknown = ies
        .iter()
        .find(|ie| ie.ie_type() == IeType::Unknown(255))
        .expect("IE 255");
    assert_eq!(unknown.ie_type().code(), 255);
    let block = &cap.frame(1).d.payload[12..];
    let reparsed = IeList::parse(block).expect("NEW IE block parses");
    let mut out = vec![0u8; reparsed.buffer_len()];
    assert_eq!(reparsed.emit(&mut out), Ok(block.len()));
    assert_eq!(out, block, "{}: IE block with IE 255 re-emits", cap.at(1));
    // DATETIME is the capture's day, 2005-08-12 (local time of the sender).
    let dt = ies.datetime().expect("well-formed").expect("present");
    assert_eq!(
        (dt.year, dt.month, dt.day),
        (2005, 8, 12),
        "{}: DATETIME",
        cap.at(1)
    );

    // A mini frame from the caller before its first full Voice frame; that
    // frame uses the literal GSM subclass 0x02, the callee's subclass 0.
    assert_eq!(cap.mini(7).source_call_number, caller, "{}", cap.at(7));
    let voice: Vec<_> = cap
        .fulls()
        .filter(|(_, f)| f.frame_type == FrameType::Voice)
        .collect();
    assert_eq!(voice.len(), 2, "{NDPI}: one full Voice frame each way");
    let (d, gsm) = voice[0];
    assert!(
        d.number > 7 && gsm.source_call_number == caller,
        "{}",
        cap.at(d.number)
    );
    assert_eq!(
        gsm.subclass,
        Subclass(0x02),
        "{}: literal GSM",
        cap.at(d.number)
    );
    assert_eq!(gsm.subclass.voice_format(), Some(MediaFormat::GSM));
    let (d, other) = voice[1];
    assert_eq!(other.source_call_number, callee, "{}", cap.at(d.number));
    assert_eq!(
        other.subclass,
        Subclass(0),
        "{}: subclass 0",
        cap.at(d.number)
    );
    // Not present: trunk frames, CALLTOKEN, authentication, registration,
    // encryption, HANGUP.
    for (d, f) in cap.fulls() {
        let l = label(f);
        assert!(
            ["NEW", "ACK", "ACCEPT", "ANSWER", "Voice"].contains(&l.as_str()),
            "{}: unexpected {l}",
            cap.at(d.number)
        );
    }
}

#[test]
fn golden_capture() {
    let cap = Capture::load(GOLDEN);
    let frames: [(usize, &str); 26] = [
        (1, "REGREQ"),
        (2, "CALLTOKEN"),
        (3, "REGREQ"),
        (4, "REGAUTH"),
        (5, "REGREQ"),
        (6, "REGACK"),
        (7, "ACK"),
        (8, "POKE"),
        (9, "PONG"),
        (10, "ACK"),
        (11, "NEW"),
        (12, "CALLTOKEN"),
        (13, "NEW"),
        (14, "AUTHREQ"),
        (15, "AUTHREP"),
        (16, "ACCEPT"),
        (17, "ACK"),
        (18, "RINGING"),
        (27, "ANSWER"),
        (45, "DTMF_BEGIN"),
        (47, "DTMF_END"),
        (49, "PING"),
        (50, "PONG"),
        (52, "LAGRQ"),
        (53, "LAGRP"),
        (55, "HANGUP"),
    ];
    for (n, what) in frames {
        assert_eq!(label(cap.full(n)), what, "{}", cap.at(n));
    }
    // Registration: "seqnos reset" on the REGREQ with the token.
    assert_eq!(
        cap.full(2).source_call_number,
        CallNumber::STATELESS,
        "{}",
        cap.at(2)
    );
    assert_eq!(
        (cap.full(3).oseqno, cap.full(3).iseqno),
        (SeqNo(0), SeqNo(0))
    );
    // POKE to call 0 with an empty CALLTOKEN, stateless PONG, ACK to call 1.
    let poke = cap.full(8);
    assert_eq!(poke.dest_call_number, CallNumber::UNKNOWN, "{}", cap.at(8));
    assert_eq!(cap.ies(8).calltoken(), Some(&[][..]), "{}", cap.at(8));
    assert_eq!(
        cap.full(9).source_call_number,
        CallNumber::STATELESS,
        "{}",
        cap.at(9)
    );
    assert_eq!(
        cap.full(10).dest_call_number,
        CallNumber::STATELESS,
        "{}",
        cap.at(10)
    );
    // Trunk frames: 39/41/43 A->B without timestamps (calls 17001, 17002),
    // 40/42/44 B->A with them (2345, 2346); trunk ts 0/20/40.
    for (i, n) in [39, 41, 43].into_iter().enumerate() {
        let t = cap.trunk(n);
        assert!(from_a(&cap.frame(n).d), "{}", cap.at(n));
        assert_eq!(
            (t.command_data, t.trunk_timestamp),
            (0, 20 * i as u32),
            "{}",
            cap.at(n)
        );
        let calls: Vec<u16> = t.entries.iter().map(|e| e.call_number.get()).collect();
        assert_eq!(calls, [17001, 17002], "{}: entry calls", cap.at(n));
        assert!(t
            .entries
            .iter()
            .all(|e| e.payload.len() == 160 && e.timestamp.is_none()));
    }
    for (i, n) in [40, 42, 44].into_iter().enumerate() {
        let t = cap.trunk(n);
        assert!(!from_a(&cap.frame(n).d), "{}", cap.at(n));
        assert_eq!(
            (t.command_data, t.trunk_timestamp),
            (1, 20 * i as u32),
            "{}",
            cap.at(n)
        );
        let calls: Vec<u16> = t.entries.iter().map(|e| e.call_number.get()).collect();
        assert_eq!(calls, [2345, 2346], "{}: entry calls", cap.at(n));
        assert!(t
            .entries
            .iter()
            .all(|e| e.payload.len() == 160 && e.timestamp.is_some()));
    }
    // DTMF digit '5' as DTMF_BEGIN (type 12) and DTMF_END (type 1).
    for n in [45, 47] {
        assert_eq!(
            cap.full(n).subclass,
            Subclass(b'5'),
            "{}: digit 5",
            cap.at(n)
        );
    }
    assert_eq!(cap.full(45).frame_type.code(), 12);
    assert_eq!(cap.full(47).frame_type.code(), 1);
    // PONG carries RR_* IEs and echoes the PING's timestamp; LAGRP echoes
    // LAGRQ's.
    let rr = cap.ies(50).receiver_report().expect("well-formed RR");
    assert!(rr.is_some(), "{}: RR_* IEs", cap.at(50));
    assert_eq!(
        cap.full(50).timestamp,
        cap.full(49).timestamp,
        "{}: echoed ts",
        cap.at(50)
    );
    assert_eq!(
        cap.full(53).timestamp,
        cap.full(52).timestamp,
        "{}: echoed ts",
        cap.at(53)
    );
    // HANGUP with CAUSECODE 16 from A on call 1; HANGUP from B on call 2.
    assert_eq!(cap.ies(55).causecode(), Ok(Some(16)), "{}", cap.at(55));
    assert_eq!(cap.full(55).source_call_number, cn(17001), "{}", cap.at(55));
    assert_eq!(label(cap.full(57)), "HANGUP", "{}", cap.at(57));
    assert_eq!(cap.full(57).source_call_number, cn(2346), "{}", cap.at(57));

    // PROTOCOL.md 2.6: byte examples taken from this file.
    let prefixes: [(usize, &[u8]); 5] = [
        (
            13,
            &[
                0xc2, 0x69, 0, 0, 0, 0, 0, 6, 0, 0, 6, 1, 0x0b, 2, 0, 2, 1, 4, b'2', b'0', b'0',
                b'1',
            ],
        ),
        (
            12,
            &[0x80, 1, 0x42, 0x69, 0, 0, 0, 0, 0, 1, 6, 0x28, 0x36, 0x33],
        ),
        (17, &[0xc2, 0x69, 0x09, 0x29, 0, 0, 0, 9, 2, 2, 6, 4]),
        (29, &[0xc2, 0x69, 0x09, 0x29, 0, 0, 4, 0x0f, 2, 4, 2, 4]),
        (39, &[0, 0, 1, 0, 0, 0, 0, 0, 0x42, 0x69, 0, 0xa0]),
    ];
    for (n, prefix) in prefixes {
        assert!(
            cap.frame(n).d.payload.starts_with(prefix),
            "{}: PROTOCOL.md 2.6 bytes",
            cap.at(n)
        );
    }
    let t40 = &cap.frame(40).d.payload;
    assert!(t40.starts_with(&[0, 0, 1, 1, 0, 0, 0, 0, 0, 0xa0, 0x09, 0x29, 0x07, 0xcf]));
    assert_eq!(
        cap.trunk(40).entries[0].timestamp,
        Some(Timestamp16(0x07cf)),
        "{}",
        cap.at(40)
    );
    // The u-law Voice frame of the example is literal subclass 0x04.
    assert_eq!(
        cap.full(29).subclass.voice_format(),
        Some(MediaFormat::ULAW)
    );
}

#[test]
fn mini_notrunk_capture() {
    let cap = Capture::load(MINI);
    // No RINGING in this file; ANSWER at 8, stop sounds at 9.
    assert_eq!(label(cap.full(8)), "ANSWER", "{}", cap.at(8));
    assert_eq!(label(cap.full(9)), "stop sounds", "{}", cap.at(9));
    // Text A->B "hello from siteA\0" (17 bytes, type 7, subclass 0).
    let text = |n: usize| -> Vec<u8> {
        let f = cap.full(n);
        assert_eq!(
            (f.frame_type, f.subclass),
            (FrameType::Text, Subclass(0)),
            "{}",
            cap.at(n)
        );
        f.to_vec()[12..].to_vec()
    };
    assert_eq!(text(12), b"hello from siteA\0", "{}", cap.at(12));
    assert!(from_a(&cap.frame(12).d));
    // DTMF_BEGIN '9' ts 26, DTMF_END '9' ts 219.
    for (n, ft, ts) in [(14, FrameType::DtmfBegin, 26), (16, FrameType::Dtmf, 219)] {
        let f = cap.full(n);
        assert_eq!(
            (f.frame_type, f.subclass, f.timestamp),
            (ft, Subclass(b'9'), ts),
            "{}",
            cap.at(n)
        );
    }
    // A's first full Voice ts 500; A's minis from frame 20 at 520, 540, ...
    let v = cap.full(18);
    assert_eq!(
        (v.frame_type, v.source_call_number, v.timestamp),
        (FrameType::Voice, cn(7456), 500)
    );
    let a_minis: Vec<(usize, u16)> = cap
        .minis()
        .filter(|(d, _)| from_a(d))
        .map(|(d, m)| (d.number, m.timestamp.0))
        .take(3)
        .collect();
    assert_eq!(a_minis[0], (20, 520), "{MINI}: A's first mini frame");
    assert_eq!(a_minis[1].1, 540, "{MINI}: A's second mini frame");
    // B->A digits 1 2 3 4: BEGIN and END 3 ms apart (1120 -> 1123 first).
    let b_dtmf: Vec<(FrameType, u8, u32)> = cap
        .fulls()
        .filter(|(d, f)| {
            !from_a(d) && matches!(f.frame_type, FrameType::Dtmf | FrameType::DtmfBegin)
        })
        .map(|(_, f)| (f.frame_type, f.subclass.0, f.timestamp))
        .collect();
    assert_eq!(b_dtmf.len(), 8, "{MINI}: four digits from B");
    for (i, pair) in b_dtmf.chunks(2).enumerate() {
        let digit = b'1' + i as u8;
        assert_eq!((pair[0].0, pair[0].1), (FrameType::DtmfBegin, digit));
        assert_eq!((pair[1].0, pair[1].1), (FrameType::Dtmf, digit));
        assert_eq!(
            pair[1].2,
            pair[0].2 + 3,
            "{MINI}: digit {} 3 ms",
            digit as char
        );
    }
    assert_eq!(b_dtmf[0].2, 1120);
    // B's texts (137, 138), B's first full Voice at ts 2540 (142).
    assert_eq!(text(137), b"hello from siteB\0", "{}", cap.at(137));
    assert_eq!(text(138), b"hello from siteA\0", "{}", cap.at(138));
    let v = cap.full(142);
    assert_eq!(
        (v.frame_type, v.source_call_number, v.timestamp),
        (FrameType::Voice, cn(9007), 2540)
    );
    // Minis: 4-byte header + 160 bytes of u-law.
    for (d, m) in cap.minis() {
        assert_eq!(m.buffer_len(), 164, "{}", cap.at(d.number));
    }
    // HANGUP (CAUSECODE 0) from A, ACK.
    assert_eq!(label(cap.full(392)), "HANGUP");
    assert_eq!(cap.ies(392).causecode(), Ok(Some(0)), "{}", cap.at(392));
    assert_eq!(label(cap.full(393)), "ACK");
}

#[test]
fn register_poke_capture() {
    let cap = Capture::load(REGISTER);
    // PONGs answering POKEs: no IEs, from call 1, o0 i1, ACKed to call 1.
    let pokes = cap.iax(IaxSubclass::Poke);
    assert_eq!(pokes.len(), 6);
    let mut poke_calls = std::collections::BTreeSet::new();
    for (n, poke) in pokes {
        let at = cap.at(n);
        assert_eq!(
            poke.dest_call_number,
            CallNumber::UNKNOWN,
            "{at}: POKE to call 0"
        );
        assert_eq!(
            cap.ies(n).calltoken(),
            Some(&[][..]),
            "{at}: empty CALLTOKEN"
        );
        assert!(
            poke_calls.insert(poke.source_call_number),
            "{at}: new call number per POKE"
        );
        let (np, _) = cap
            .iax(IaxSubclass::Pong)
            .into_iter()
            .find(|(_, f)| f.dest_call_number == poke.source_call_number)
            .unwrap_or_else(|| panic!("{at}: no PONG"));
        let pong = cap.full(np);
        assert_eq!(
            pong.source_call_number,
            CallNumber::STATELESS,
            "{}",
            cap.at(np)
        );
        assert_eq!(
            (pong.oseqno, pong.iseqno),
            (SeqNo(0), SeqNo(1)),
            "{}",
            cap.at(np)
        );
        assert!(
            cap.ies(np).is_empty(),
            "{}: PONG to POKE has no IEs",
            cap.at(np)
        );
        let acked = cap.fulls().any(|(_, f)| {
            f.iax_subclass() == Some(IaxSubclass::Ack)
                && f.source_call_number == poke.source_call_number
                && f.dest_call_number == CallNumber::STATELESS
        });
        assert!(acked, "{at}: the poker ACKs the PONG to call 1");
    }
    // A's POKE is call 14781, B's first POKE call 13801.
    assert!(poke_calls.contains(&cn(14781)) && poke_calls.contains(&cn(13801)));
    // No token exchange for POKE: only registrations and the call get one.
    assert_eq!(cap.iax(IaxSubclass::CallToken).len(), 4);
    // The first REGREQ/REGAUTH call numbers.
    assert_eq!(cap.full(1).source_call_number, cn(14440), "{}", cap.at(1));
    let regauth = cap.iax(IaxSubclass::RegAuth);
    assert_eq!(regauth[0].1.source_call_number, cn(4297));
    // Re-registrations with new call numbers 1439 and 1594.
    assert_eq!(cap.full(31).source_call_number, cn(1439), "{}", cap.at(31));
    assert_eq!(cap.full(56).source_call_number, cn(1594), "{}", cap.at(56));
    // The silent call carries no voice at all.
    assert!(cap.fulls().all(|(_, f)| f.frame_type != FrameType::Voice));
    assert_eq!(cap.minis().count(), 0);
    // LAGRP echoes the LAGRQ's timestamp.
    for (n, rq) in cap.iax(IaxSubclass::LagRq) {
        let rp = cap
            .iax(IaxSubclass::LagRp)
            .into_iter()
            .find(|(m, f)| *m > n && f.dest_call_number == rq.source_call_number)
            .unwrap_or_else(|| panic!("{}: no LAGRP", cap.at(n)));
        assert_eq!(
            rp.1.timestamp,
            rq.timestamp,
            "{}: LAGRP echoes ts",
            cap.at(rp.0)
        );
    }
    // PONGs to PINGs: RR_JITTER 0, RR_LOSS 0, RR_PKTS 1, RR_DELAY 40,
    // RR_DROPPED 0, RR_OOO 0.
    for n in [64, 67] {
        assert_eq!(label(cap.full(n)), "PONG", "{}", cap.at(n));
        let rr = cap
            .ies(n)
            .receiver_report()
            .expect("well-formed")
            .expect("RR_* IEs");
        assert_eq!(
            (
                rr.jitter,
                rr.loss,
                rr.packets,
                rr.delay_ms,
                rr.dropped,
                rr.out_of_order
            ),
            (Some(0), Some(0), Some(1), Some(40), Some(0), Some(0)),
            "{}: receiver report",
            cap.at(n)
        );
        assert_eq!(rr.loss_percent(), Some(0));
    }
    // HANGUP from A, ACK.
    assert_eq!(label(cap.full(69)), "HANGUP");
    assert_eq!(label(cap.full(70)), "ACK");
    assert!(
        cap.iax(IaxSubclass::RegRel).is_empty(),
        "{REGISTER}: no REGREL"
    );
}

#[test]
fn reject_badauth_capture() {
    let cap = Capture::load(REJECT);
    // REJECT CAUSE / CAUSECODE per call; REGREJ in the registration test.
    let rejects: [(usize, u16, &str, u8); 3] = [
        (15, 803, "No authority found", 50),
        (22, 239, "No such context/extension", 3),
        (30, 8747, "No authority found", 50),
    ];
    for (n, from, cause, code) in rejects {
        let at = cap.at(n);
        let f = cap.full(n);
        assert_eq!(f.iax_subclass(), Some(IaxSubclass::Reject), "{at}: REJECT");
        assert_eq!(f.source_call_number, cn(from), "{at}: from B's call");
        let ies = cap.ies(n);
        assert_eq!(types(ies), [IeType::Cause, IeType::CauseCode], "{at}: IEs");
        assert_eq!(ies.cause(), Ok(Some(cause)), "{at}: CAUSE");
        assert_eq!(ies.causecode(), Ok(Some(code)), "{at}: CAUSECODE");
    }
    // REGREJ at frame 7: after B's ACK of the REGREQ, same oseqno o1.
    assert_eq!(label(cap.full(6)), "ACK");
    assert_eq!(label(cap.full(7)), "REGREJ");
    assert_eq!(cap.full(6).oseqno, SeqNo(1));
    assert_eq!(cap.full(7).oseqno, SeqNo(1));
    // Frame 15: REJECT o1 like the ACK before it, but an earlier timestamp
    // (15 after 18).
    let (ack, rej) = (cap.full(14), cap.full(15));
    assert_eq!(label(ack), "ACK");
    assert_eq!((ack.oseqno, rej.oseqno), (SeqNo(1), SeqNo(1)));
    assert_eq!((ack.timestamp, rej.timestamp), (18, 15));
    // Unknown extension: REJECT right after the AUTHREP, no separate ACK.
    assert_eq!(label(cap.full(21)), "AUTHREP");
    assert_eq!(label(cap.full(22)), "REJECT");
    // Unknown user: B still sends AUTHREQ with USERNAME ghost.
    assert_eq!(cap.ies(27).username(), Ok(Some("ghost")), "{}", cap.at(27));
    assert!(
        cap.iax(IaxSubclass::RegAck).is_empty(),
        "{REJECT}: no REGACK"
    );
}

#[test]
fn rsa_capture() {
    let cap = Capture::load(RSA);
    // Minis 23-270 (124 each way), HANGUP and ACK at 271-272.
    for n in 23..=270 {
        let m = cap.mini(n);
        assert_eq!(m.payload.len(), 160, "{}", cap.at(n));
        let want = if from_a(&cap.frame(n).d) { 15067 } else { 8285 };
        assert_eq!(m.source_call_number, cn(want), "{}", cap.at(n));
    }
    assert_eq!(label(cap.full(271)), "HANGUP");
    assert_eq!(label(cap.full(272)), "ACK");
    // First full Voice each way at ts 40.
    for n in [19, 21] {
        let f = cap.full(n);
        assert_eq!(
            (f.frame_type, f.timestamp),
            (FrameType::Voice, 40),
            "{}",
            cap.at(n)
        );
    }
    // Both RSA RESULTs are base64 (172 characters, 128 bytes).
    for (n, want) in [(5, RSA_REGREQ), (12, RSA_AUTHREP)] {
        let got = cap.ies(n).rsa_result().expect("UTF-8").expect("RSA RESULT");
        assert_eq!(got, want, "{}", cap.at(n));
        assert!(got
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        assert_eq!(
            got.len() / 4 * 3 - got.bytes().filter(|&b| b == b'=').count(),
            128
        );
    }
}

#[test]
fn encrypted_capture_clear_parts() {
    let cap = Capture::load(ENCRYPTED);
    // Frames 1-4 in clear: NEW, CALLTOKEN, NEW, AUTHREQ.
    for (n, what) in [(1, "NEW"), (2, "CALLTOKEN"), (3, "NEW"), (4, "AUTHREQ")] {
        assert_eq!(label(cap.full(n)), what, "{}", cap.at(n));
    }
    assert_eq!(
        cap.ies(1).encryption(),
        Ok(Some(Encryption::AES128 | Encryption::KEY_ROTATION)),
        "{}: ENCRYPTION 0x8001",
        cap.at(1)
    );
    assert_eq!(cap.ies(1).u16_ie(IeType::Encryption), Ok(Some(0x8001)));
    let enc = cap
        .ies(4)
        .encryption()
        .expect("well-formed")
        .expect("present");
    assert_eq!(
        enc.bits(),
        0x0001,
        "{}: B drops the rotation bit",
        cap.at(4)
    );
    assert!(!enc.contains(Encryption::KEY_ROTATION));
    assert_eq!(cap.ies(4).auth_methods(), Ok(Some(AuthMethods::MD5)));
    // From frame 5 on, only the call number bytes are in clear: full frames
    // carry 10555 -> 15099 or 15099 -> 10555, mini frames their sender's
    // call; the ciphertext is whole 16-byte blocks.
    let (a, b) = (cn(10555), cn(15099));
    for p in cap.frames.iter().filter(|p| p.d.number >= 5) {
        let at = cap.at(p.d.number);
        let len = p.d.payload.len();
        let (mine, theirs) = if from_a(&p.d) { (a, b) } else { (b, a) };
        match &p.repr {
            FrameRepr::Full(f) => {
                assert_eq!(f.source_call_number, mine, "{at}: source call in clear");
                assert_eq!(f.dest_call_number, theirs, "{at}: dest call in clear");
                assert_eq!((len - 4) % 16, 0, "{at}: 4 clear bytes + AES blocks");
            }
            FrameRepr::Mini(m) => {
                assert_eq!(m.source_call_number, mine, "{at}: call in clear");
                assert_eq!(len, 194, "{at}: encrypted mini frame size");
            }
            other => panic!("{at}: unexpected {:?}", other.kind()),
        }
    }
    // Wire sizes: AUTHREP 68, full Voice 196 (A's at 18, B's at 143),
    // RTKEY 52 (142).
    for (n, len) in [(5, 68), (18, 196), (143, 196), (142, 52)] {
        assert_eq!(
            cap.frame(n).d.payload.len(),
            len,
            "{}: wire size",
            cap.at(n)
        );
        assert_eq!(cap.frame(n).repr.kind(), FrameKind::Full, "{}", cap.at(n));
    }
    // The README's 20 encrypted ACKs are 36 bytes each (as is any other
    // full frame without payload), so at least 20 frames have that size.
    let acks = cap
        .fulls()
        .filter(|(d, _)| d.number >= 5 && d.payload.len() == 36)
        .count();
    assert!(
        acks >= 20,
        "{ENCRYPTED}: 20 ACKs of 36 bytes, got {acks} frames of 36 bytes"
    );
}

#[test]
fn capture_timestamps_are_monotonic() {
    // A sanity check on the pcap reader the other tests rely on.
    for path in common::captures() {
        let datagrams = common::read_udp(&path);
        let mut last = Duration::ZERO;
        for d in &datagrams {
            assert!(
                d.time >= last,
                "{} frame {}: time goes back",
                path.display(),
                d.number
            );
            last = d.time;
        }
    }
}
