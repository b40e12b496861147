//! External oracle: tshark (Wireshark's IAX2 dissector) must decode every
//! frame our codec builds exactly as our codec decodes it.
//!
//! A round trip through our own parser cannot catch a misreading of the
//! protocol that the encoder and the decoder share (a swapped field, a wrong
//! bit, a wrong IE number). This test builds every frame kind with the
//! codec's owned reprs (`FullFrameRepr`, `MiniFrameRepr`,
//! `VideoMiniFrameRepr`, `MetaTrunkFrameRepr`, `TrunkFrameBuilder`, `Ie`,
//! `IeList`): full frames of every frame type, every IAX subclass (some with
//! the R bit), every control subclass, every IE of PROTOCOL.md section 9
//! (ids 1..=57, plus unknown ids), mini and video mini frames, and meta
//! trunk frames with 1, a few and 60 entries in both layouts. It writes them
//! to one pcap (UDP port 4569, so tshark picks the IAX2 dissector without
//! `-d`), runs tshark once with `-T json` and explicit `-e` fields, and
//! compares, per packet and per field, tshark's values with the values
//! computed from our codec's *parse* of the same bytes: packet type, call
//! numbers, R bit, timestamp, sequence numbers, frame type, every subclass
//! field, voice/video codec bitmasks, IE ids, lengths and decoded values
//! (strings, integers, APPARENT ADDR, DATETIME, FORMAT2/CAPABILITY2 and each
//! capability bit), trunk command data, per-entry call number, length,
//! timestamp and payload, the distinct-call count, the media payload bytes
//! and the UDP payload itself. Every field in the list is compared for every
//! packet: a field tshark shows that we do not expect fails too. tshark
//! must report no malformed packet and no expert info at all.
//!
//! # tshark quirks handled here (tshark 4.0.17; see PROTOCOL.md 16)
//!
//! - **Trunk frames without trunk timestamps (cmd data 0).** The dissector
//!   sizes each entry's subtree as `length + 6` instead of `length + 4`. The
//!   offsets of the entries are right, so every entry but the last decodes
//!   correctly; the last entry's subtree runs 2 bytes past the datagram, an
//!   exception is thrown ("Malformed Packet"), and that entry's fields and
//!   `iax2.trunk.ncalls` are missing. It does hit our frames (and the golden
//!   pcap of `testdata/` alike). For such frames the test
//!   asserts (a) that tshark's decode equals ours for every entry except the
//!   last and for every other field, (b) that the Malformed expert item is
//!   the only problem reported, and (c) the last entry (and every other)
//!   separately, against a small byte-level walk of tshark's own
//!   `udp.payload` written in this file (not our codec). On tshark <= 4.0
//!   the bug is required (if a 4.0 tshark decoded such a frame fully, the
//!   frame would not be what we think it is); on newer versions a full
//!   decode is accepted and must then equal ours in every field, and the
//!   bug pattern is still accepted with a notice.
//! - `iax2.trunk.ncalls` counts *distinct* call-number words of the frame
//!   (flag bit included), not entries.
//! - A zero-length trunk entry payload shows as `<MISSING>`.
//! - Fixed-size IEs are typed by tshark: REFRESH and MSGCOUNT are signed
//!   16-bit (65535 shows as -1); most integers show in hex, FORMAT, FORMAT2
//!   and the codec fields in decimal. IEs tshark has no field for
//!   (VARIABLE, OSPTOKEN, CALLTOKEN, CALLINGANI2, unknown ids) show by
//!   length as `unknownbyte`/`unknownshort`/`unknownlong`/`unknownstring`.
//! - Text stops at the first NUL; HTML shows a URL only for subclass 1;
//!   control, image, modem and CNG payloads are not shown; the video
//!   subclass is shown with the marker bit masked off.
//! - Video payloads go to codec dissectors (H.261, H.263), so video payloads
//!   here are long enough to be valid for them.
//!
//! The second test checks the oracle itself: deliberately truncated frames
//! (which our codec rejects) must make tshark report a malformed packet, so
//! a real breakage of our encoder would be caught. One blind spot of the
//! oracle is known: tshark clamps a *timestamped* trunk entry cut short (and
//! ignores fewer than 6 trailing bytes) without any error, so truncated
//! trunk entries are only caught by our codec; that test asserts it does.
//!
//! If tshark is missing the test fails and says to run
//! `scripts/install-test-deps`; set `IAX2_SKIP_TSHARK=1` to skip it.
#![allow(clippy::wildcard_enum_match_arm)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use trunk_core::wire::{
    decode_str, decode_u16, decode_u32, decode_u8, decode_versioned_u64, ApparentAddr, AuthMethods,
    CallNumber, ControlSubclass, Encryption, FamilyOrder, FrameRepr, FrameType, FullFramePayload,
    FullFrameRepr, IaxDateTime, IaxSubclass, Ie, IeList, IeType, MediaFormat, MetaTrunkFrameRepr,
    MiniFrameRepr, SeqNo, Subclass, Timestamp15, Timestamp16, TrunkEntryRepr, TrunkFrameBuilder,
    TrunkLayout, VideoMiniFrameRepr,
};

// ---------------------------------------------------------------------------
// tshark plumbing
// ---------------------------------------------------------------------------

/// A tshark version, (major, minor, patch).
type Version = (u32, u32, u32);

/// The last tshark version known to have the no-timestamp trunk bug.
const NOTS_BUG_KNOWN_UP_TO: (u32, u32) = (4, 0);

/// `_ws.expert.severity` of an error (Wireshark's `PI_ERROR`).
const PI_ERROR: &str = "8388608";
/// `_ws.expert.group` of a malformed packet (`PI_MALFORMED`).
const PI_MALFORMED: &str = "117440512";

/// Finds tshark and returns its version; `None` means "skip" (tshark is
/// missing and `IAX2_SKIP_TSHARK=1`). Panics when tshark is missing
/// otherwise.
fn tshark_version() -> Option<Version> {
    let output = match Command::new("tshark").arg("--version").output() {
        Ok(o) if o.status.success() => o,
        other => {
            if std::env::var("IAX2_SKIP_TSHARK").as_deref() == Ok("1") {
                eprintln!(
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !!! SKIPPED: tshark oracle test (tshark not usable: {other:?});\n\
                     !!! IAX2_SKIP_TSHARK=1 is set. Run scripts/install-test-deps.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                );
                return None;
            }
            panic!(
                "tshark is required for the IAX2 oracle test but is not usable ({other:?}). \
                 Run scripts/install-test-deps (CI does), or set IAX2_SKIP_TSHARK=1 to skip."
            );
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default();
    // "TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as 4.0.17-0+deb12u3)."
    let version = first
        .split_whitespace()
        .find_map(|word| {
            let mut parts = word.split('.').map(|p| p.parse::<u32>());
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("cannot read the tshark version from {first:?}"));
    Some(version)
}

/// tshark's values for one packet: field name -> every occurrence, in
/// order.
type Fields = BTreeMap<String, Vec<String>>;

/// A scratch directory for this test run.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("tshark_oracle")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

/// Runs tshark once over `pcap` and returns the requested fields of each
/// packet, in capture order.
fn run_tshark(pcap: &Path, fields: &[&str], config_dir: &Path) -> Vec<Fields> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "json"])
        // Our own empty profile, so no personal preference (decode-as,
        // disabled protocols) changes the dissection; UTC for DATETIME.
        .env("WIRESHARK_CONFIG_DIR", config_dir)
        .env("TZ", "UTC");
    for f in fields {
        cmd.args(["-e", f]);
    }
    let output = cmd.output().expect("run tshark");
    assert!(
        output.status.success(),
        "tshark failed on {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "tshark -T json output is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let packets = json.as_array().expect("tshark -T json prints an array");
    packets
        .iter()
        .map(|p| {
            let layers = p
                .pointer("/_source/layers")
                .and_then(Value::as_object)
                .expect("_source.layers object");
            layers
                .iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_str().expect("string field value").to_owned())
                            .collect(),
                        Value::String(s) => vec![s.clone()],
                        other => panic!("unexpected JSON for field {k}: {other}"),
                    };
                    (k.clone(), values)
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The fields compared
// ---------------------------------------------------------------------------

/// `iax2.cap.*` fields of a CAPABILITY IE (32 bits) and the format bits
/// they stand for, by our codec's names.
const CAPS_32: [(&str, MediaFormat); 26] = [
    ("iax2.cap.g723_1", MediaFormat::G723_1),
    ("iax2.cap.gsm", MediaFormat::GSM),
    ("iax2.cap.ulaw", MediaFormat::ULAW),
    ("iax2.cap.alaw", MediaFormat::ALAW),
    ("iax2.cap.g726_aal2", MediaFormat::G726_AAL2),
    ("iax2.cap.adpcm", MediaFormat::ADPCM),
    ("iax2.cap.slinear", MediaFormat::SLINEAR),
    ("iax2.cap.lpc10", MediaFormat::LPC10),
    ("iax2.cap.g729a", MediaFormat::G729),
    ("iax2.cap.speex", MediaFormat::SPEEX),
    ("iax2.cap.ilbc", MediaFormat::ILBC),
    ("iax2.cap.g726", MediaFormat::G726),
    ("iax2.cap.g722", MediaFormat::G722),
    ("iax2.cap.siren7", MediaFormat::SIREN7),
    ("iax2.cap.siren14", MediaFormat::SIREN14),
    ("iax2.cap.slinear16", MediaFormat::SLINEAR16),
    ("iax2.cap.jpeg", MediaFormat::JPEG),
    ("iax2.cap.png", MediaFormat::PNG),
    ("iax2.cap.h261", MediaFormat::H261),
    ("iax2.cap.h263", MediaFormat::H263),
    ("iax2.cap.h263_plus", MediaFormat::H263P),
    ("iax2.cap.h264", MediaFormat::H264),
    ("iax2.cap.mpeg4", MediaFormat::MP4),
    ("iax2.cap.vp8", MediaFormat::VP8),
    ("iax2.cap.t140_red", MediaFormat::T140_RED),
    ("iax2.cap.t140", MediaFormat::T140),
];

/// Asterisk's AST_FORMAT_TESTLAW (bit 47); our codec has no name for it.
const TESTLAW: MediaFormat = MediaFormat::from_bits(1 << 47);

/// The extra `iax2.cap.*` fields of a CAPABILITY2 IE (64 bits).
const CAPS_64_EXTRA: [(&str, MediaFormat); 4] = [
    ("iax2.cap.g719", MediaFormat::G719),
    ("iax2.cap.speex16", MediaFormat::SPEEX16),
    ("iax2.cap.opus", MediaFormat::OPUS),
    ("iax2.cap.testlaw", TESTLAW),
];

/// Every field compared (besides the cap fields above). Each of them must
/// show exactly the expected occurrences in every packet; absent = none.
const FIELDS: &[&str] = &[
    "udp.payload",
    "iax2.packet_type",
    "iax2.src_call",
    "iax2.dst_call",
    "iax2.retransmission",
    "iax2.timestamp",
    "iax2.oseqno",
    "iax2.iseqno",
    "iax2.type",
    "iax2.subclass",
    "iax2.dtmf.subclass",
    "iax2.control.subclass",
    "iax2.iax.subclass",
    "iax2.voice.subclass",
    "iax2.voice.codec",
    "iax2.video.subclass",
    "iax2.video.marker",
    "iax2.video.codec",
    "iax2.video.mini_marker",
    "iax2.modem.subclass",
    "iax2.text.subclass",
    "iax2.text.text",
    "iax2.html.subclass",
    "iax2.html.url",
    "iax2.payload_data",
    "iax2.trunk.metacmd",
    "iax2.trunk.cmddata",
    "iax2.trunk.cmddata.ts",
    "iax2.trunk.ncalls",
    "iax2.trunk.call.scallno",
    "iax2.trunk.call.len",
    "iax2.trunk.call.ts",
    "iax2.trunk.call.payload",
    "iax2.ie_id",
    "iax2.length",
    "iax2.version",
    "iax2.iax.called_number",
    "iax2.iax.calling_number",
    "iax2.iax.calling_ani",
    "iax2.iax.calling_name",
    "iax2.iax.called_context",
    "iax2.iax.username",
    "iax2.iax.password",
    "iax2.iax.capability",
    "iax2.iax.format",
    "iax2.iax.language",
    "iax2.iax.version",
    "iax2.iax.cpe_adsi",
    "iax2.iax.dnid",
    "iax2.iax.auth.methods",
    "iax2.iax.auth.challenge",
    "iax2.iax.auth.md5",
    "iax2.iax.auth.rsa",
    "iax2.iax.app_addr.sinfamily",
    "iax2.iax.app_addr.sinport",
    "iax2.iax.app_addr.sinaddr",
    "iax2.iax.refresh",
    "iax2.iax.dialplan_status",
    "iax2.iax.call_no",
    "iax2.iax.cause",
    "iax2.iax.iax_unknown",
    "iax2.iax.msg_count",
    "iax2.iax.autoanswer",
    "iax2.iax.moh",
    "iax2.iax.transferid",
    "iax2.iax.rdnis",
    "iax2.iax.provisioning",
    "iax2.iax.aesprovisioning",
    "iax2.iax.datetime.raw",
    "iax2.iax.datetime",
    "iax2.iax.devicetype",
    "iax2.iax.serviceident",
    "iax2.iax.firmwarever",
    "iax2.iax.fwblockdesc",
    "iax2.iax.fwblockdata",
    "iax2.iax.provver",
    "iax2.iax.callingpres",
    "iax2.iax.callington",
    "iax2.iax.callingtns",
    "iax2.iax.samplingrate",
    "iax2.iax.causecode",
    "iax2.iax.encryption",
    "iax2.iax.enckey",
    "iax2.iax.codecprefs",
    "iax2.iax.rrjitter",
    "iax2.iax.rrloss",
    "iax2.iax.rrpkts",
    "iax2.iax.rrdelay",
    "iax2.iax.rrdropped",
    "iax2.iax.rrooo",
    "iax2.iax.capability2",
    "iax2.iax.format2",
    "iax2.iax.dataformat",
    "iax2.iax.unknownbyte",
    "iax2.iax.unknownshort",
    "iax2.iax.unknownlong",
    "iax2.iax.unknownstring",
    "iax2.reassembled_in",
    "iax2.fragments",
    "_ws.malformed",
    "_ws.expert.severity",
    "_ws.expert.group",
    "_ws.expert.message",
];

/// The whole `-e` list: frame.number, FIELDS and the cap fields.
fn all_fields() -> Vec<&'static str> {
    let mut v = vec!["frame.number"];
    v.extend_from_slice(FIELDS);
    v.extend(CAPS_32.iter().map(|(f, _)| *f));
    v.extend(CAPS_64_EXTRA.iter().map(|(f, _)| *f));
    v
}

// ---------------------------------------------------------------------------
// Expected values, from our codec's decode of the bytes
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex string {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

/// tshark's rendering of a byte field: hex, or `<MISSING>` when empty.
fn bytes_field(b: &[u8]) -> String {
    if b.is_empty() {
        "<MISSING>".to_owned()
    } else {
        hex(b)
    }
}

/// Collects expected occurrences per field.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expect(BTreeMap<String, Vec<String>>);

impl Expect {
    fn add(&mut self, field: &str, value: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(value.into());
    }

    fn get(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or_default()
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// How tshark prints an absolute time in UTC.
fn tshark_time(dt: IaxDateTime) -> String {
    let month = MONTHS[usize::from(dt.month) - 1];
    format!(
        "{month} {:>2}, {} {:02}:{:02}:{:02}.000000000 UTC",
        dt.day, dt.year, dt.hour, dt.minute, dt.second
    )
}

/// The string value of a string IE (our decode), checked printable so that
/// tshark's rendering is the string itself.
fn ie_string(ie: IeType, data: &[u8]) -> String {
    let s = decode_str(ie, data).expect("test strings are UTF-8");
    assert!(
        s.chars().all(|c| c.is_ascii_graphic() || c == ' '),
        "test IE strings stay printable ASCII: {s:?}"
    );
    s.to_owned()
}

/// Expected fields of one IE, from our codec's typed decoders.
fn expect_ie(e: &mut Expect, ie: IeType, data: &[u8]) {
    e.add("iax2.ie_id", ie.code().to_string());
    e.add("iax2.length", data.len().to_string());
    let u8v = || decode_u8(ie, data).expect("one-byte IE");
    let u16v = || decode_u16(ie, data).expect("two-byte IE");
    let u32v = || decode_u32(ie, data).expect("four-byte IE");
    let string_field = match ie {
        IeType::CalledNumber => Some("iax2.iax.called_number"),
        IeType::CallingNumber => Some("iax2.iax.calling_number"),
        IeType::CallingAni => Some("iax2.iax.calling_ani"),
        IeType::CallingName => Some("iax2.iax.calling_name"),
        IeType::CalledContext => Some("iax2.iax.called_context"),
        IeType::Username => Some("iax2.iax.username"),
        IeType::Password => Some("iax2.iax.password"),
        IeType::Language => Some("iax2.iax.language"),
        IeType::Dnid => Some("iax2.iax.dnid"),
        IeType::Challenge => Some("iax2.iax.auth.challenge"),
        IeType::Md5Result => Some("iax2.iax.auth.md5"),
        IeType::RsaResult => Some("iax2.iax.auth.rsa"),
        IeType::Cause => Some("iax2.iax.cause"),
        IeType::Rdnis => Some("iax2.iax.rdnis"),
        IeType::Provisioning => Some("iax2.iax.provisioning"),
        IeType::AesProvisioning => Some("iax2.iax.aesprovisioning"),
        IeType::DeviceType => Some("iax2.iax.devicetype"),
        IeType::ServiceIdent => Some("iax2.iax.serviceident"),
        IeType::FwBlockData => Some("iax2.iax.fwblockdata"),
        IeType::EncKey => Some("iax2.iax.enckey"),
        IeType::CodecPrefs => Some("iax2.iax.codecprefs"),
        _ => None,
    };
    if let Some(field) = string_field {
        e.add(field, ie_string(ie, data));
        return;
    }
    let hex8 = |v: u8| format!("{v:#04x}");
    let hex16 = |v: u16| format!("{v:#06x}");
    let hex32 = |v: u32| format!("{v:#010x}");
    match ie {
        IeType::Capability => {
            let caps = MediaFormat::from_bits(u64::from(u32v()));
            e.add("iax2.iax.capability", hex32(u32v()));
            for (field, bit) in CAPS_32 {
                e.add(field, flag(caps.contains(bit)));
            }
        }
        IeType::Capability2 => {
            let caps = MediaFormat::from_bits(decode_versioned_u64(ie, data).expect("v0"));
            e.add("iax2.version", data[0].to_string());
            e.add("iax2.iax.capability2", format!("{:#018x}", caps.bits()));
            for (field, bit) in CAPS_32.iter().chain(CAPS_64_EXTRA.iter()) {
                e.add(field, flag(caps.contains(*bit)));
            }
        }
        IeType::Format => e.add("iax2.iax.format", u32v().to_string()),
        IeType::Format2 => {
            let bits = decode_versioned_u64(ie, data).expect("v0");
            e.add("iax2.version", data[0].to_string());
            e.add("iax2.iax.format2", bits.to_string());
        }
        IeType::Version => e.add("iax2.iax.version", hex16(u16v())),
        IeType::AdsiCpe => e.add("iax2.iax.cpe_adsi", hex16(u16v())),
        IeType::AuthMethods => e.add(
            "iax2.iax.auth.methods",
            hex16(AuthMethods::from_bits(u16v()).bits()),
        ),
        IeType::ApparentAddr => {
            let addr = ApparentAddr::parse(data).expect("valid APPARENT ADDR");
            // tshark reads the family little-endian and decodes IPv4 only.
            assert_eq!(
                addr.family_order,
                FamilyOrder::Little,
                "test uses LE family"
            );
            let SocketAddr::V4(v4) = addr.addr else {
                panic!("test uses IPv4 APPARENT ADDR only");
            };
            e.add("iax2.iax.app_addr.sinfamily", "2");
            e.add("iax2.iax.app_addr.sinport", v4.port().to_string());
            e.add("iax2.iax.app_addr.sinaddr", v4.ip().to_string());
        }
        // tshark types REFRESH and MSGCOUNT as signed 16-bit.
        IeType::Refresh => e.add("iax2.iax.refresh", (u16v() as i16).to_string()),
        IeType::MsgCount => e.add("iax2.iax.msg_count", (u16v() as i16).to_string()),
        IeType::DpStatus => e.add("iax2.iax.dialplan_status", hex16(u16v())),
        IeType::CallNo => e.add("iax2.iax.call_no", u16v().to_string()),
        IeType::IaxUnknown => e.add("iax2.iax.iax_unknown", hex(&[u8v()])),
        IeType::AutoAnswer => e.add("iax2.iax.autoanswer", "1"),
        IeType::MusicOnHold => e.add("iax2.iax.moh", "1"),
        IeType::TransferId => e.add("iax2.iax.transferid", hex32(u32v())),
        IeType::DateTime => {
            let dt = IaxDateTime::from_bits(u32v());
            e.add("iax2.iax.datetime.raw", u32v().to_string());
            e.add("iax2.iax.datetime", tshark_time(dt));
        }
        IeType::FirmwareVer => e.add("iax2.iax.firmwarever", hex16(u16v())),
        IeType::FwBlockDesc => e.add("iax2.iax.fwblockdesc", hex32(u32v())),
        IeType::ProvVer => e.add("iax2.iax.provver", hex32(u32v())),
        IeType::CallingPres => e.add("iax2.iax.callingpres", hex8(u8v())),
        IeType::CallingTon => e.add("iax2.iax.callington", hex8(u8v())),
        IeType::CallingTns => e.add("iax2.iax.callingtns", hex16(u16v())),
        IeType::SamplingRate => e.add("iax2.iax.samplingrate", hex16(u16v())),
        IeType::CauseCode => e.add("iax2.iax.causecode", hex8(u8v())),
        IeType::Encryption => e.add(
            "iax2.iax.encryption",
            hex16(Encryption::from_bits(u16v()).bits()),
        ),
        IeType::RrJitter => e.add("iax2.iax.rrjitter", hex32(u32v())),
        IeType::RrLoss => e.add("iax2.iax.rrloss", hex32(u32v())),
        IeType::RrPkts => e.add("iax2.iax.rrpkts", hex32(u32v())),
        IeType::RrDelay => e.add("iax2.iax.rrdelay", hex16(u16v())),
        IeType::RrDropped => e.add("iax2.iax.rrdropped", hex32(u32v())),
        IeType::RrOoo => e.add("iax2.iax.rrooo", hex32(u32v())),
        // tshark 4.0 has no field for these: it shows them by length.
        IeType::Variable
        | IeType::OspToken
        | IeType::CallToken
        | IeType::CallingAni2
        | IeType::Unknown(_) => match data.len() {
            1 => e.add("iax2.iax.unknownbyte", hex8(data[0])),
            2 => e.add("iax2.iax.unknownshort", hex16(u16v())),
            4 => e.add("iax2.iax.unknownlong", hex32(u32v())),
            _ => {
                // tshark reads the data as a C string: it ends at a NUL.
                assert!(data.is_ascii(), "generic IE test data stays ASCII");
                let c_string = data.split(|&b| b == 0).next().unwrap_or_default();
                e.add(
                    "iax2.iax.unknownstring",
                    c_string.iter().map(|&b| char::from(b)).collect::<String>(),
                );
            }
        },
        other => panic!("IE {other} has no expected-value mapping in this test"),
    }
}

/// What tshark must show for a datagram, computed from our codec's decode
/// of it (`repr` is `FrameRepr::parse(bytes)`).
fn expected_fields(repr: &FrameRepr, bytes: &[u8]) -> Expect {
    let mut e = Expect::default();
    e.add("udp.payload", hex(bytes));
    match repr {
        FrameRepr::Full(f) => {
            e.add("iax2.packet_type", "1");
            e.add("iax2.src_call", f.source_call_number.get().to_string());
            e.add("iax2.dst_call", f.dest_call_number.get().to_string());
            e.add("iax2.retransmission", flag(f.retransmission));
            e.add("iax2.timestamp", f.timestamp.to_string());
            e.add("iax2.oseqno", f.oseqno.0.to_string());
            e.add("iax2.iseqno", f.iseqno.0.to_string());
            e.add("iax2.type", f.frame_type.code().to_string());
            let raw_payload = match &f.payload {
                FullFramePayload::Raw(r) => r.as_slice(),
                FullFramePayload::Ies(_) => &[],
            };
            let sub = f.subclass;
            match f.frame_type {
                FrameType::Dtmf | FrameType::DtmfBegin => {
                    e.add("iax2.dtmf.subclass", char::from(sub.0).to_string());
                }
                FrameType::Voice => {
                    let format = sub.voice_format().expect("voice format");
                    e.add("iax2.voice.subclass", sub.0.to_string());
                    e.add("iax2.voice.codec", format.bits().to_string());
                    if !raw_payload.is_empty() {
                        e.add("iax2.payload_data", hex(raw_payload));
                    }
                }
                FrameType::Video => {
                    // tshark shows the subclass byte without the marker bit.
                    e.add("iax2.video.subclass", (sub.0 & !0x40).to_string());
                    e.add("iax2.video.marker", flag(sub.video_marker()));
                    e.add("iax2.video.codec", sub.video_format().bits().to_string());
                    if !raw_payload.is_empty() {
                        e.add("iax2.payload_data", hex(raw_payload));
                    }
                }
                FrameType::Control => {
                    let c = f.control_subclass().expect("control subclass");
                    e.add("iax2.control.subclass", c.code().to_string());
                }
                FrameType::Iax => {
                    let s = f.iax_subclass().expect("IAX subclass");
                    e.add("iax2.iax.subclass", s.code().to_string());
                    for ie in f.ies().expect("IAX frames carry IEs") {
                        expect_ie(&mut e, ie.ie_type(), ie.data());
                    }
                }
                FrameType::Text => {
                    e.add("iax2.text.subclass", sub.0.to_string());
                    // tshark's text stops at the first NUL.
                    let text = raw_payload.split(|&b| b == 0).next().unwrap_or_default();
                    if !text.is_empty() {
                        e.add(
                            "iax2.text.text",
                            std::str::from_utf8(text).expect("UTF-8 text"),
                        );
                    }
                }
                FrameType::Html => {
                    e.add("iax2.html.subclass", sub.0.to_string());
                    if sub.0 == 1 && !raw_payload.is_empty() {
                        e.add(
                            "iax2.html.url",
                            std::str::from_utf8(raw_payload).expect("UTF-8 URL"),
                        );
                    }
                }
                FrameType::Modem => e.add("iax2.modem.subclass", sub.0.to_string()),
                FrameType::Null | FrameType::Image | FrameType::Cng | FrameType::Unknown(_) => {
                    e.add("iax2.subclass", sub.0.to_string());
                }
            }
        }
        FrameRepr::Mini(m) => {
            e.add("iax2.packet_type", "0");
            e.add("iax2.src_call", m.source_call_number.get().to_string());
            e.add("iax2.timestamp", m.timestamp.0.to_string());
            if !m.payload.is_empty() {
                e.add("iax2.payload_data", hex(&m.payload));
            }
        }
        FrameRepr::VideoMini(v) => {
            e.add("iax2.packet_type", "2");
            e.add("iax2.src_call", v.source_call_number.get().to_string());
            e.add("iax2.timestamp", v.timestamp.get().to_string());
            e.add("iax2.video.mini_marker", flag(v.marker));
            if !v.payload.is_empty() {
                e.add("iax2.payload_data", hex(&v.payload));
            }
        }
        FrameRepr::MetaTrunk(t) => {
            e.add("iax2.packet_type", "3");
            e.add("iax2.timestamp", t.trunk_timestamp.to_string());
            e.add("iax2.trunk.metacmd", "1");
            e.add("iax2.trunk.cmddata", format!("{:#04x}", t.command_data));
            e.add(
                "iax2.trunk.cmddata.ts",
                flag(t.layout() == TrunkLayout::Timestamps),
            );
            for entry in &t.entries {
                e.add(
                    "iax2.trunk.call.scallno",
                    entry.call_number.get().to_string(),
                );
                e.add("iax2.trunk.call.len", entry.payload.len().to_string());
                if let Some(ts) = entry.timestamp {
                    e.add("iax2.trunk.call.ts", ts.0.to_string());
                }
                e.add("iax2.trunk.call.payload", bytes_field(&entry.payload));
            }
            // tshark counts distinct call-number words (flag bit included).
            let calls: BTreeSet<(u16, bool)> = t
                .entries
                .iter()
                .map(|x| (x.call_number.get(), x.flag))
                .collect();
            e.add("iax2.trunk.ncalls", calls.len().to_string());
        }
        FrameRepr::Meta(_) => panic!("this test builds no other meta frames"),
    }
    e
}

// ---------------------------------------------------------------------------
// The frames
// ---------------------------------------------------------------------------

/// One datagram of the capture: built with our codec, then parsed back
/// with it.
struct Packet {
    name: String,
    bytes: Vec<u8>,
    /// Our codec's decode of `bytes`.
    ours: FrameRepr,
}

fn cn(n: u16) -> CallNumber {
    CallNumber::new(n).expect("15-bit call number")
}

fn s(ie: IeType, v: &str) -> Ie {
    Ie::string(ie, v).expect("short string IE")
}

fn raw(bytes: &[u8]) -> FullFramePayload {
    FullFramePayload::Raw(bytes.to_vec())
}

/// Header fields of a full frame.
#[derive(Clone, Copy)]
struct Hdr {
    src: u16,
    dst: u16,
    retrans: bool,
    ts: u32,
    o: u8,
    i: u8,
}

fn full(h: Hdr, frame_type: FrameType, subclass: u8, payload: FullFramePayload) -> FullFrameRepr {
    FullFrameRepr {
        source_call_number: cn(h.src),
        dest_call_number: cn(h.dst),
        retransmission: h.retrans,
        timestamp: h.ts,
        oseqno: SeqNo(h.o),
        iseqno: SeqNo(h.i),
        frame_type,
        subclass: Subclass(subclass),
        payload,
    }
}

fn apparent(ip: [u8; 4], port: u16) -> Ie {
    Ie::apparent_addr(ApparentAddr::new(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(ip),
        port,
    ))))
}

/// The IEs each IAX subclass carries here; together they hold every IE of
/// PROTOCOL.md 9 (ids 1..=57) with representative values.
fn ies_for(sub: IaxSubclass) -> IeList {
    let dt = IaxDateTime {
        year: 2026,
        month: 11,
        day: 27,
        hour: 17,
        minute: 53,
        second: 42,
    };
    let l = IeList::new();
    match sub {
        IaxSubclass::New => l
            .with(Ie::version())
            .with(s(IeType::CalledNumber, "2001"))
            .with(s(IeType::CalledContext, "from-trunk"))
            .with(s(IeType::CallingNumber, "+4930123456"))
            .with(s(IeType::CallingAni, "4930123456"))
            .with(s(IeType::CallingName, "Alice Example"))
            .with(Ie::u8(IeType::CallingPres, 0x03))
            .with(Ie::u8(IeType::CallingTon, 0x11))
            .with(Ie::u16(IeType::CallingTns, 0x1234))
            .with(Ie::u32(IeType::CallingAni2, 0x0102_0304))
            .with(s(IeType::Username, "site-a"))
            .with(s(IeType::Language, "de"))
            .with(s(IeType::Dnid, "2001"))
            .with(s(IeType::Rdnis, "2999"))
            .with(Ie::format(MediaFormat::ULAW))
            .with(Ie::format2(MediaFormat::OPUS))
            .with(Ie::capability(
                MediaFormat::ULAW
                    | MediaFormat::ALAW
                    | MediaFormat::G726_AAL2
                    | MediaFormat::SLINEAR
                    | MediaFormat::G729
                    | MediaFormat::ILBC
                    | MediaFormat::G722
                    | MediaFormat::SIREN14
                    | MediaFormat::JPEG
                    | MediaFormat::H261
                    | MediaFormat::H263P
                    | MediaFormat::MP4
                    | MediaFormat::T140_RED,
            ))
            .with(Ie::capability2(
                MediaFormat::ULAW | MediaFormat::OPUS | MediaFormat::H264 | MediaFormat::G719,
            ))
            .with(Ie::u16(IeType::AdsiCpe, 0x0002))
            .with(s(IeType::CodecPrefs, "DEJf"))
            .with(Ie::datetime(dt))
            .with(Ie::u16(IeType::SamplingRate, 0x0005))
            .with(Ie::encryption(
                Encryption::AES128 | Encryption::KEY_ROTATION,
            ))
            .with(s(IeType::Variable, "FOO=bar"))
            .with(s(IeType::Variable, "LONG=continued"))
            .with(Ie::new(IeType::OspToken, vec![0u8, b'o', b's', b'p', b'!']).expect("short"))
            .with(Ie::new(IeType::OspToken, vec![1u8, b'o', b's', b'p', b'2']).expect("short"))
            .with(Ie::calltoken(b"").expect("empty token")),
        IaxSubclass::Pong => l
            .with(Ie::u32(IeType::RrJitter, 12))
            .with(Ie::u32(IeType::RrLoss, 0x0500_0010))
            .with(Ie::u32(IeType::RrPkts, 1000))
            .with(Ie::u16(IeType::RrDelay, 40))
            .with(Ie::u32(IeType::RrDropped, 3))
            .with(Ie::u32(IeType::RrOoo, 2)),
        IaxSubclass::Hangup | IaxSubclass::Reject | IaxSubclass::RegRej => l
            .with(s(IeType::Cause, "No such context/extension"))
            .with(Ie::u8(IeType::CauseCode, 3)),
        IaxSubclass::Accept => l
            .with(Ie::format(MediaFormat::G729))
            .with(Ie::format2(MediaFormat::G729)),
        IaxSubclass::AuthReq => l
            .with(Ie::auth_methods(AuthMethods::MD5 | AuthMethods::RSA))
            .with(s(IeType::Challenge, "214748364"))
            .with(s(IeType::Username, "site-a"))
            .with(Ie::encryption(Encryption::AES128)),
        IaxSubclass::AuthRep => l.with(s(IeType::Md5Result, "0c5b82d1f207f433199e2c3652d875d7")),
        IaxSubclass::RegReq => l
            .with(s(IeType::Username, "site-b"))
            .with(Ie::u16(IeType::Refresh, 60))
            .with(s(IeType::RsaResult, "QUJDRA=="))
            .with(
                Ie::calltoken(b"1700000004?0123456789abcdef0123456789abcdef01234567")
                    .expect("short"),
            ),
        IaxSubclass::RegAuth => l
            .with(Ie::auth_methods(AuthMethods::MD5))
            .with(s(IeType::Challenge, "1234"))
            .with(s(IeType::Username, "site-b")),
        IaxSubclass::RegAck => l
            .with(s(IeType::Username, "site-b"))
            .with(Ie::datetime(IaxDateTime {
                year: 2000,
                month: 1,
                day: 5,
                hour: 3,
                minute: 4,
                second: 6,
            }))
            // tshark reads REFRESH as signed: 65535 shows as -1.
            .with(Ie::u16(IeType::Refresh, 65535))
            .with(apparent([192, 0, 2, 10], 4571))
            .with(Ie::u16(IeType::MsgCount, 0x0102))
            .with(s(IeType::CallingNumber, "2001"))
            .with(s(IeType::CallingName, "")),
        IaxSubclass::RegRel => l
            .with(s(IeType::Username, "site-b"))
            .with(s(IeType::Password, "s3cret")),
        IaxSubclass::DpReq => l.with(s(IeType::CalledNumber, "200")),
        IaxSubclass::DpRep => l
            .with(s(IeType::CalledNumber, "200"))
            .with(Ie::u16(IeType::DpStatus, 0x8001))
            .with(Ie::u16(IeType::Refresh, 300)),
        IaxSubclass::Dial => l
            .with(s(IeType::CalledNumber, "3000"))
            .with(Ie::empty(IeType::AutoAnswer)),
        IaxSubclass::TxReq => l
            .with(apparent([198, 51, 100, 7], 4569))
            .with(Ie::callno(cn(32767)))
            .with(Ie::u32(IeType::TransferId, 0xdead_beef)),
        IaxSubclass::TxCnt | IaxSubclass::TxAcc => l.with(Ie::u32(IeType::TransferId, 7)),
        IaxSubclass::TxReady | IaxSubclass::TxRel | IaxSubclass::TxMedia => {
            l.with(Ie::callno(cn(1234)))
        }
        IaxSubclass::Quelch => l.with(s(IeType::MusicOnHold, "default")),
        IaxSubclass::Poke => l.with(Ie::calltoken(b"").expect("empty token")),
        IaxSubclass::Mwi => l.with(Ie::u16(IeType::MsgCount, 0x0305)),
        IaxSubclass::Unsupport => l.with(Ie::u8(IeType::IaxUnknown, 0x55)),
        IaxSubclass::Transfer => l
            .with(s(IeType::CalledNumber, "4000"))
            .with(s(IeType::CalledContext, "default")),
        IaxSubclass::Provision => l
            .with(s(IeType::Provisioning, "prov-data"))
            .with(s(IeType::AesProvisioning, "aes-prov"))
            .with(s(IeType::DeviceType, "iaxy"))
            .with(s(IeType::ServiceIdent, "svc-01"))
            .with(Ie::u32(IeType::ProvVer, 0x0000_0007)),
        IaxSubclass::FwDownl => l
            .with(s(IeType::DeviceType, "iaxy"))
            .with(Ie::u16(IeType::FirmwareVer, 0x0102))
            .with(Ie::u32(IeType::FwBlockDesc, 0x8000_0001)),
        IaxSubclass::FwData => l
            .with(Ie::u32(IeType::FwBlockDesc, 0x0000_0002))
            .with(s(IeType::FwBlockData, "blockdata")),
        IaxSubclass::RtKey => l
            .with(s(IeType::Challenge, "0123456789ABCDEF"))
            .with(s(IeType::EncKey, "raw-key")),
        IaxSubclass::CallToken => l.with(
            Ie::calltoken(b"1700000004?8d6f1c0e3a9b7d2f4e5a6b7c8d9e0f1a2b3c4d5e").expect("short"),
        ),
        _ => l,
    }
}

/// A trunk entry to build: call number, timestamp (low 16 bits), payload.
type EntrySpec = (u16, u16, Vec<u8>);

/// Builds a trunk frame with the builder; returns its bytes.
fn build_trunk(layout: TrunkLayout, trunk_ts: u32, entries: &[EntrySpec]) -> Vec<u8> {
    let mut buf = vec![0u8; 65_000];
    let mut b = TrunkFrameBuilder::new(&mut buf, 65_000, layout, trunk_ts).expect("header fits");
    for (call, ts, payload) in entries {
        b.push(cn(*call), Timestamp16(*ts), payload)
            .expect("entry fits the frame");
    }
    assert_eq!(b.entry_count(), entries.len());
    let len = b.finish();
    buf.truncate(len);
    // The builder's bytes must be what the owned repr emits for the same
    // entries.
    let repr = MetaTrunkFrameRepr {
        command_data: layout.command_data(),
        trunk_timestamp: trunk_ts,
        entries: entries
            .iter()
            .map(|(call, ts, payload)| TrunkEntryRepr {
                call_number: cn(*call),
                flag: false,
                timestamp: (layout == TrunkLayout::Timestamps).then_some(Timestamp16(*ts)),
                payload: payload.clone(),
            })
            .collect(),
    };
    assert_eq!(
        FrameRepr::MetaTrunk(repr).to_vec().expect("emit"),
        buf,
        "TrunkFrameBuilder and MetaTrunkFrameRepr disagree"
    );
    buf
}

/// Builds a frame from its repr and records our parse of the bytes.
fn add_repr(out: &mut Vec<Packet>, name: String, repr: FrameRepr) {
    let bytes = repr.to_vec().expect("emit");
    let ours = FrameRepr::parse(&bytes).expect("our codec parses what it built");
    assert_eq!(ours, repr, "{name}: parse(emit(repr)) != repr");
    out.push(Packet { name, bytes, ours });
}

/// Every frame of the capture, in order.
fn build_packets() -> Vec<Packet> {
    let mut out: Vec<Packet> = Vec::new();

    // A call between 17001 (A) and 2345 (B); NEW first so that tshark
    // tracks it as a call.
    let mut ts = 3u32;
    let mut seq = 0u8;
    for (n, &sub) in IaxSubclass::KNOWN.iter().enumerate() {
        let (src, dst) = match sub {
            IaxSubclass::New | IaxSubclass::Poke | IaxSubclass::RegReq => (17001, 0),
            // Stateless replies come from call 1.
            IaxSubclass::CallToken => (1, 17001),
            _ if n % 2 == 0 => (17001, 2345),
            _ => (2345, 17001),
        };
        let retrans = n % 3 == 2;
        let mut f = FullFrameRepr::iax(
            cn(src),
            cn(dst),
            ts,
            SeqNo(seq),
            SeqNo(seq.wrapping_add(1)),
            sub,
            ies_for(sub),
        );
        f.retransmission = retrans;
        let r = if retrans { " (R bit)" } else { "" };
        add_repr(&mut out, format!("IAX {sub}{r}"), FrameRepr::Full(f));
        ts = ts.wrapping_mul(3).wrapping_add(17);
        seq = seq.wrapping_add(37);
    }
    // More IAX frames: other IE values and forms.
    let h = Hdr {
        src: 32767,
        dst: 2345,
        retrans: true,
        ts: u32::MAX,
        o: 255,
        i: 254,
    };
    let extra: Vec<(&str, IaxSubclass, IeList)> = vec![
        (
            "AUTHREP with RSA RESULT",
            IaxSubclass::AuthRep,
            IeList::new().with(s(IeType::RsaResult, "c2lnbmF0dXJlIGJ5dGVz")),
        ),
        (
            "AUTHREP with PASSWORD",
            IaxSubclass::AuthRep,
            IeList::new().with(s(IeType::Password, "plain text")),
        ),
        (
            "QUELCH with empty MUSICONHOLD",
            IaxSubclass::Quelch,
            IeList::new().with(Ie::empty(IeType::MusicOnHold)),
        ),
        (
            "NEW with the other capability bits",
            IaxSubclass::New,
            IeList::new()
                .with(Ie::version())
                .with(Ie::capability(
                    MediaFormat::G723_1
                        | MediaFormat::GSM
                        | MediaFormat::ADPCM
                        | MediaFormat::LPC10
                        | MediaFormat::SPEEX
                        | MediaFormat::G726
                        | MediaFormat::SIREN7
                        | MediaFormat::SLINEAR16
                        | MediaFormat::PNG
                        | MediaFormat::H263
                        | MediaFormat::H264
                        | MediaFormat::VP8
                        | MediaFormat::T140,
                ))
                .with(Ie::capability2(
                    MediaFormat::SPEEX16 | MediaFormat::GSM | TESTLAW | MediaFormat::VP8,
                ))
                .with(Ie::format(MediaFormat::from_bits(0x8000_0000)))
                .with(Ie::format2(MediaFormat::from_bits(u64::MAX))),
        ),
        (
            "unknown IE ids of length 1, 2, 3 and 4",
            IaxSubclass::Ping,
            IeList::new()
                .with(Ie::new(IeType::Unknown(0x7e), vec![0x01]).expect("short"))
                .with(Ie::new(IeType::Unknown(0x7d), vec![0x01, 0x02]).expect("short"))
                .with(Ie::new(IeType::Unknown(0x7c), b"abc".to_vec()).expect("short"))
                .with(Ie::new(IeType::Unknown(0x7b), vec![0xde, 0xad, 0xbe, 0xef]).expect("short"))
                .with(Ie::new(IeType::OspToken, vec![1u8]).expect("short"))
                .with(Ie::new(IeType::Variable, b"AB".to_vec()).expect("short")),
        ),
        (
            "unknown IAX subclass 41",
            IaxSubclass::Unknown(41),
            IeList::new().with(s(IeType::Cause, "what is this")),
        ),
    ];
    for (name, sub, ies) in extra {
        let mut f =
            FullFrameRepr::iax(cn(h.src), cn(h.dst), h.ts, SeqNo(h.o), SeqNo(h.i), sub, ies);
        f.retransmission = h.retrans;
        add_repr(&mut out, format!("IAX {name}"), FrameRepr::Full(f));
    }

    // Every other frame type.
    let a = |ts: u32, o: u8, retrans: bool| Hdr {
        src: 17001,
        dst: 2345,
        retrans,
        ts,
        o,
        i: 3,
    };
    let b = |ts: u32, o: u8| Hdr {
        src: 2345,
        dst: 17001,
        retrans: false,
        ts,
        o,
        i: 7,
    };
    let audio: Vec<u8> = (0..160u8).map(|x| x.wrapping_mul(7)).collect();
    for (name, byte, len) in [
        ("u-law, literal 0x04", 0x04u8, 160usize),
        ("u-law, compressed 0x82", 0x82, 160),
        ("G.729, 0x88", 0x88, 20),
        ("GSM, 0x02", 0x02, 33),
        ("a-law, 0x08", 0x08, 160),
        ("slinear, 0x40", 0x40, 160),
        ("iLBC, 0x8a", 0x8a, 50),
        ("G.722, 0x8c", 0x8c, 160),
        ("Opus, 0xa2", 0xa2, 60),
        ("u-law, empty payload", 0x04, 0),
    ] {
        let hdr = a(1000 + u32::from(byte), byte, byte % 3 == 0);
        add_repr(
            &mut out,
            format!("Voice {name}"),
            FrameRepr::Full(full(hdr, FrameType::Voice, byte, raw(&audio[..len]))),
        );
    }
    let video = vec![0u8; 64];
    for (name, format, marker) in [
        ("H.264 with marker", MediaFormat::H264, true),
        ("H.264", MediaFormat::H264, false),
        ("H.263 with marker", MediaFormat::H263, true),
        ("H.261", MediaFormat::H261, false),
        ("VP8 with marker", MediaFormat::VP8, true),
        ("H.263+", MediaFormat::H263P, false),
    ] {
        let sub = Subclass::video(format, marker).expect("video subclass");
        add_repr(
            &mut out,
            format!("Video {name}"),
            FrameRepr::Full(full(
                a(5000, 9, marker),
                FrameType::Video,
                sub.0,
                raw(&video),
            )),
        );
    }
    for (n, digit) in "0123456789ABCD*#".bytes().enumerate() {
        let ft = if n % 2 == 0 {
            FrameType::DtmfBegin
        } else {
            FrameType::Dtmf
        };
        let hdr = a(6000 + n as u32, n as u8, n == 5);
        add_repr(
            &mut out,
            format!("{ft} '{}'", char::from(digit)),
            FrameRepr::Full(full(hdr, ft, digit, raw(&[]))),
        );
    }
    for (n, &c) in ControlSubclass::KNOWN.iter().enumerate() {
        let payload: &[u8] = if c == ControlSubclass::Hold {
            b"default"
        } else {
            &[]
        };
        add_repr(
            &mut out,
            format!("Control {c}"),
            FrameRepr::Full(full(
                b(7000 + n as u32, n as u8),
                FrameType::Control,
                c.code(),
                raw(payload),
            )),
        );
    }
    let others: Vec<(&str, FrameType, u8, &[u8])> = vec![
        ("Text with NUL", FrameType::Text, 0, b"hello, world\0"),
        ("Text without NUL", FrameType::Text, 0, b"plain"),
        ("Text empty", FrameType::Text, 0, b""),
        (
            "Image JPEG",
            FrameType::Image,
            0x90,
            &[0xff, 0xd8, 0xff, 0xe0],
        ),
        (
            "Image PNG",
            FrameType::Image,
            0x91,
            &[0x89, b'P', b'N', b'G'],
        ),
        ("HTML URL", FrameType::Html, 0x01, b"http://example.com/"),
        ("HTML data", FrameType::Html, 0x02, b"<b>hi</b>"),
        ("HTML begin", FrameType::Html, 0x04, b""),
        ("HTML end", FrameType::Html, 0x08, b""),
        ("HTML load complete", FrameType::Html, 0x10, b""),
        ("HTML no support", FrameType::Html, 0x11, b""),
        (
            "HTML link URL",
            FrameType::Html,
            0x12,
            b"http://example.com/x",
        ),
        ("HTML unlink", FrameType::Html, 0x13, b""),
        ("HTML reject link", FrameType::Html, 0x14, b""),
        ("CNG level 40", FrameType::Cng, 40, b""),
        ("CNG level 127", FrameType::Cng, 127, &[0x11]),
        ("Modem T.38", FrameType::Modem, 1, &[1, 2, 3]),
        ("Modem V.150", FrameType::Modem, 2, &[4, 5]),
        ("Null", FrameType::Null, 0, b""),
    ];
    for (n, (name, ft, sub, payload)) in others.into_iter().enumerate() {
        add_repr(
            &mut out,
            name.to_owned(),
            FrameRepr::Full(full(b(8000 + n as u32, n as u8), ft, sub, raw(payload))),
        );
    }

    // Mini and video mini frames (on other call numbers, so tshark does not
    // hand their bytes to a codec dissector of the tracked call).
    for (call, ts16, len) in [(5u16, 0u16, 160usize), (32767, 0xfffe, 20), (300, 1234, 0)] {
        add_repr(
            &mut out,
            format!("Mini call {call} ts {ts16} len {len}"),
            FrameRepr::Mini(MiniFrameRepr {
                source_call_number: cn(call),
                timestamp: Timestamp16(ts16),
                payload: audio[..len].to_vec(),
            }),
        );
    }
    for (call, ts15, marker, len) in [
        (5u16, 0u16, false, 64usize),
        (32767, 0x7fff, true, 64),
        (301, 4321, true, 0),
    ] {
        add_repr(
            &mut out,
            format!("Video mini call {call} ts {ts15} marker {marker} len {len}"),
            FrameRepr::VideoMini(VideoMiniFrameRepr {
                source_call_number: cn(call),
                marker,
                timestamp: Timestamp15::new(ts15),
                payload: video[..len].to_vec(),
            }),
        );
    }

    // Meta trunk frames, both layouts: 1 entry, 60 G.729 entries, 60 u-law
    // entries, and a mix (repeated calls, empty payload, wrapping ts).
    let g729 = |i: usize| -> Vec<u8> { (0..20).map(|k| (i * 31 + k) as u8).collect() };
    let ulaw = |i: usize| -> Vec<u8> { (0..160).map(|k| (i * 7 + k * 3) as u8).collect() };
    for layout in [TrunkLayout::Timestamps, TrunkLayout::NoTimestamps] {
        let lname = match layout {
            TrunkLayout::Timestamps => "timestamps",
            TrunkLayout::NoTimestamps => "no timestamps",
        };
        let sets: Vec<(&str, u32, Vec<EntrySpec>)> = vec![
            ("1 entry", 0, vec![(17001, 1999, ulaw(0))]),
            (
                "60 G.729 entries",
                20,
                (0..60)
                    .map(|i| {
                        let ts = 65_000u16.wrapping_add(20 * i as u16);
                        (16_384 + 7 * i as u16, ts, g729(i))
                    })
                    .collect(),
            ),
            (
                "60 u-law entries",
                0xffff_fff0,
                (0..60)
                    .map(|i| (2 + i as u16, 160 * i as u16, ulaw(i)))
                    .collect(),
            ),
            (
                "mixed: repeated calls, empty payload",
                4_000_000_000,
                vec![
                    (2345, 0, g729(1)),
                    (2346, 0xffff, Vec::new()),
                    (2345, 20, vec![0xab; 3]),
                    (32767, 1, g729(2)),
                    (2346, 2, g729(3)),
                ],
            ),
        ];
        for (name, trunk_ts, entries) in sets {
            let bytes = build_trunk(layout, trunk_ts, &entries);
            let ours = FrameRepr::parse(&bytes).expect("our codec parses the trunk frame");
            out.push(Packet {
                name: format!("Trunk, {lname}, {name}"),
                bytes,
                ours,
            });
        }
    }
    // The flag bit of a no-timestamp entry (never set by Asterisk) and an
    // empty last entry, through the owned repr.
    add_repr(
        &mut out,
        "Trunk, no timestamps, flag bit set, empty last entry".into(),
        FrameRepr::MetaTrunk(MetaTrunkFrameRepr {
            command_data: TrunkLayout::NoTimestamps.command_data(),
            trunk_timestamp: 77,
            entries: vec![
                TrunkEntryRepr {
                    call_number: cn(17001),
                    flag: true,
                    timestamp: None,
                    payload: vec![1; 20],
                },
                TrunkEntryRepr {
                    call_number: cn(17002),
                    flag: false,
                    timestamp: None,
                    payload: vec![2; 20],
                },
                TrunkEntryRepr {
                    call_number: cn(17003),
                    flag: false,
                    timestamp: None,
                    payload: Vec::new(),
                },
            ],
        }),
    );
    add_repr(
        &mut out,
        "Trunk, timestamps, no entries".into(),
        FrameRepr::MetaTrunk(MetaTrunkFrameRepr {
            command_data: TrunkLayout::Timestamps.command_data(),
            trunk_timestamp: 5,
            entries: Vec::new(),
        }),
    );
    out
}

/// Asserts that the capture covers what the test promises.
fn assert_coverage(packets: &[Packet]) {
    let mut ies = BTreeSet::new();
    let mut iax = BTreeSet::new();
    let mut control = BTreeSet::new();
    let mut types = BTreeSet::new();
    let mut r_bit = 0;
    let mut trunk = BTreeSet::new();
    for p in packets {
        match &p.ours {
            FrameRepr::Full(f) => {
                types.insert(f.frame_type.code());
                r_bit += usize::from(f.retransmission);
                if let Some(s) = f.iax_subclass() {
                    iax.insert(s.code());
                }
                if let Some(c) = f.control_subclass() {
                    control.insert(c.code());
                }
                for ie in f.ies().into_iter().flatten() {
                    ies.insert(ie.ie_type().code());
                }
            }
            FrameRepr::MetaTrunk(t) => {
                trunk.insert((t.command_data, t.entries.len()));
            }
            _ => {}
        }
    }
    let missing_ies: Vec<u8> = (1..=57).filter(|id| !ies.contains(id)).collect();
    assert!(missing_ies.is_empty(), "IEs not covered: {missing_ies:?}");
    for s in IaxSubclass::KNOWN {
        assert!(iax.contains(&s.code()), "IAX subclass {s} not covered");
    }
    for c in ControlSubclass::KNOWN {
        assert!(
            control.contains(&c.code()),
            "control subclass {c} not covered"
        );
    }
    for t in FrameType::KNOWN {
        assert!(types.contains(&t.code()), "frame type {t} not covered");
    }
    assert!(r_bit >= 5, "too few frames with the R bit");
    for cmd in [0u8, 1] {
        for n in [1usize, 60] {
            assert!(
                trunk.contains(&(cmd, n)),
                "no trunk frame cmd {cmd} with {n} entries"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

fn udp_endpoints(n: usize) -> (SocketAddrV4, SocketAddrV4) {
    let a = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 4569);
    let b = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 4570);
    if n.is_multiple_of(2) {
        (a, b)
    } else {
        (b, a)
    }
}

/// Writes `datagrams` to a pcap in a scratch directory and runs tshark
/// over it with every compared field; returns the per-packet fields.
fn dissect(test: &str, datagrams: &[Vec<u8>]) -> (PathBuf, Vec<Fields>) {
    let dir = scratch_dir(test);
    let pcap = dir.join("frames.pcap");
    let config = dir.join("wireshark-config");
    std::fs::create_dir_all(&config).expect("create the tshark config directory");
    let records: Vec<_> = datagrams
        .iter()
        .enumerate()
        .map(|(n, d)| {
            let (src, dst) = udp_endpoints(n);
            (src, dst, d.clone())
        })
        .collect();
    common::write_udp_pcap(&pcap, &records);
    let decoded = run_tshark(&pcap, &all_fields(), &config);
    assert_eq!(
        decoded.len(),
        datagrams.len(),
        "tshark decoded {} packets of {} in {}",
        decoded.len(),
        datagrams.len(),
        pcap.display()
    );
    for (n, fields) in decoded.iter().enumerate() {
        assert_eq!(
            fields.get("frame.number").map(Vec::as_slice),
            Some(&[(n + 1).to_string()][..]),
            "tshark packet order"
        );
    }
    (pcap, decoded)
}

fn compared_fields() -> Vec<&'static str> {
    all_fields()
        .into_iter()
        .filter(|f| *f != "frame.number")
        .collect()
}

/// Compares every compared field; returns one line per mismatch.
fn diff(name: &str, expected: &Expect, got: &Fields) -> Vec<String> {
    let mut errors = Vec::new();
    for field in compared_fields() {
        let want = expected.get(field);
        let have = got.get(field).map(Vec::as_slice).unwrap_or_default();
        if want != have {
            errors.push(format!(
                "{name}: field {field}: tshark shows {have:?}, our codec says {want:?}"
            ));
        }
    }
    errors
}

/// One entry of a no-timestamp trunk frame, read byte by byte.
#[derive(Debug, PartialEq)]
struct RawEntry {
    call: u16,
    flag: bool,
    payload: Vec<u8>,
}

/// An independent walk of a no-timestamp trunk frame (PROTOCOL.md 2.5):
/// 8-byte header, then `call word (2) | length (2) | payload` until the end.
fn walk_nots_trunk(datagram: &[u8]) -> Result<Vec<RawEntry>, String> {
    if datagram.len() < 8 || datagram[..4] != [0, 0, 1, 0] {
        return Err(format!(
            "not a cmd-data-0 trunk frame: {:02x?}",
            &datagram[..datagram.len().min(8)]
        ));
    }
    let mut entries = Vec::new();
    let mut rest = &datagram[8..];
    while !rest.is_empty() {
        let offset = datagram.len() - rest.len();
        let [w0, w1, l0, l1, payload @ ..] = rest else {
            return Err(format!("entry header cut short at offset {offset}"));
        };
        let word = u16::from_be_bytes([*w0, *w1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some(payload) = payload.get(..len) else {
            return Err(format!(
                "entry at offset {offset} needs {len} payload bytes, {} left",
                payload.len()
            ));
        };
        entries.push(RawEntry {
            call: word & 0x7fff,
            flag: word & 0x8000 != 0,
            payload: payload.to_vec(),
        });
        rest = &rest[4 + len..];
    }
    Ok(entries)
}

/// The fields of the last entry that tshark 4.0 loses on a no-timestamp
/// trunk frame.
const NOTS_LAST_ENTRY_FIELDS: [&str; 3] = [
    "iax2.trunk.call.scallno",
    "iax2.trunk.call.len",
    "iax2.trunk.call.payload",
];

/// Checks a no-timestamp trunk frame with entries (see the module doc).
fn check_nots_trunk(
    name: &str,
    t: &MetaTrunkFrameRepr,
    full: &Expect,
    got: &Fields,
    version: Version,
    errors: &mut Vec<String>,
) {
    let malformed = got.get("_ws.malformed").is_some_and(|v| !v.is_empty());
    let known_buggy = (version.0, version.1) <= NOTS_BUG_KNOWN_UP_TO;
    if !malformed {
        if known_buggy {
            errors.push(format!(
                "{}: tshark {version:?} decoded a no-timestamp trunk frame without the \
                 known 4.0.x bug; the frame may not have the layout we think",
                name
            ));
        }
        // A fixed dissector: everything must match.
        errors.extend(diff(name, full, got));
        return;
    }
    if !known_buggy {
        eprintln!(
            "note: tshark {version:?} still shows the no-timestamp trunk entry bug \
             documented for 4.0.x ({})",
            name
        );
    }
    // (a) Everything but the last entry and ncalls, exactly as ours; (b)
    // the Malformed expert item is the only problem reported.
    let mut bug = full.clone();
    for field in NOTS_LAST_ENTRY_FIELDS {
        let values = bug.0.get_mut(field).expect("entries present");
        values.pop();
        if values.is_empty() {
            bug.0.remove(field);
        }
    }
    bug.0.remove("iax2.trunk.ncalls");
    bug.add("_ws.expert.severity", PI_ERROR);
    bug.add("_ws.expert.group", PI_MALFORMED);
    bug.add(
        "_ws.expert.message",
        "Malformed Packet (Exception occurred)",
    );
    for field in compared_fields() {
        if field == "_ws.malformed" {
            continue; // presence checked above; its text is tshark's own
        }
        let want = bug.get(field);
        let have = got.get(field).map(Vec::as_slice).unwrap_or_default();
        if want != have {
            errors.push(format!(
                "{}: field {field}: tshark shows {have:?}, expected {want:?} (our decode \
                 minus the last entry lost to the tshark 4.0 no-timestamp trunk bug)",
                name
            ));
        }
    }
    // (c) Every entry, the last included, from tshark's own udp.payload,
    // walked byte by byte here.
    let Some([payload]) = got.get("udp.payload").map(Vec::as_slice) else {
        errors.push(format!("{name}: tshark shows no single udp.payload"));
        return;
    };
    let walked = match walk_nots_trunk(&unhex(payload)) {
        Ok(w) => w,
        Err(why) => {
            errors.push(format!("{}: byte walk of udp.payload failed: {why}", name));
            return;
        }
    };
    let ours: Vec<RawEntry> = t
        .entries
        .iter()
        .map(|e| RawEntry {
            call: e.call_number.get(),
            flag: e.flag,
            payload: e.payload.clone(),
        })
        .collect();
    if walked != ours {
        errors.push(format!(
            "{}: byte walk of udp.payload gives {} entries, ours {}; last walked {:?}, \
             last ours {:?}",
            name,
            walked.len(),
            ours.len(),
            walked.last(),
            ours.last()
        ));
    }
}

#[test]
fn tshark_decodes_every_frame_kind_like_our_codec() {
    let Some(version) = tshark_version() else {
        return;
    };
    let packets = build_packets();
    assert_coverage(&packets);
    let datagrams: Vec<Vec<u8>> = packets.iter().map(|p| p.bytes.clone()).collect();
    let (pcap, decoded) = dissect("agree", &datagrams);

    let mut errors = Vec::new();
    let mut nots_frames = 0;
    for (n, (p, got)) in packets.iter().zip(&decoded).enumerate() {
        let name = format!("packet #{} ({})", n + 1, p.name);
        let expected = expected_fields(&p.ours, &p.bytes);
        match &p.ours {
            FrameRepr::MetaTrunk(t)
                if t.layout() == TrunkLayout::NoTimestamps && !t.entries.is_empty() =>
            {
                nots_frames += 1;
                check_nots_trunk(&name, t, &expected, got, version, &mut errors);
            }
            _ => {
                if let Some(m) = got.get("_ws.malformed") {
                    errors.push(format!("{name}: tshark reports a malformed packet: {m:?}"));
                }
                errors.extend(diff(&name, &expected, got));
            }
        }
    }
    assert!(nots_frames >= 4, "no-timestamp trunk frames were checked");
    assert!(
        errors.is_empty(),
        "tshark {version:?} disagrees with our codec on {} point(s) (capture: {}):\n{}",
        errors.len(),
        pcap.display(),
        errors.join("\n")
    );
    std::fs::remove_dir_all(pcap.parent().expect("scratch dir")).ok();
}

#[test]
fn tshark_flags_truncated_frames_as_malformed() {
    let Some(version) = tshark_version() else {
        return;
    };
    let new = FrameRepr::Full(FullFrameRepr::iax(
        cn(17001),
        cn(0),
        6,
        SeqNo(0),
        SeqNo(0),
        IaxSubclass::New,
        ies_for(IaxSubclass::New),
    ))
    .to_vec()
    .expect("emit");
    let voice = FrameRepr::Full(full(
        Hdr {
            src: 17001,
            dst: 2345,
            retrans: false,
            ts: 1000,
            o: 1,
            i: 1,
        },
        FrameType::Voice,
        0x04,
        raw(&[0x55; 160]),
    ))
    .to_vec()
    .expect("emit");
    let mini = FrameRepr::Mini(MiniFrameRepr {
        source_call_number: cn(17001),
        timestamp: Timestamp16(5),
        payload: vec![1; 20],
    })
    .to_vec()
    .expect("emit");
    let video_mini = FrameRepr::VideoMini(VideoMiniFrameRepr {
        source_call_number: cn(17001),
        marker: false,
        timestamp: Timestamp15::new(5),
        payload: vec![1; 20],
    })
    .to_vec()
    .expect("emit");
    let trunk_ts = build_trunk(TrunkLayout::Timestamps, 9, &[(17001, 1, vec![1; 20])]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("NEW cut inside its last IE", new[..new.len() - 3].to_vec()),
        ("NEW ending in a lone IE type byte", {
            let mut v = new[..12].to_vec();
            v.push(IeType::Version.code());
            v
        }),
        ("full frame cut to 11 bytes", voice[..11].to_vec()),
        ("mini frame cut to 3 bytes", mini[..3].to_vec()),
        ("video mini frame cut to 5 bytes", video_mini[..5].to_vec()),
        ("trunk frame cut inside its header", trunk_ts[..6].to_vec()),
    ];
    for (name, bytes) in &cases {
        assert!(
            FrameRepr::parse(bytes).is_err(),
            "{name}: our codec must reject the truncated frame"
        );
    }
    // Oracle blind spot (not sent to tshark): tshark 4.0 clamps a
    // timestamped trunk entry whose payload is cut short and silently stops
    // when fewer than 6 bytes remain, without any expert info. Only our
    // codec can catch those; it must.
    let two = build_trunk(
        TrunkLayout::Timestamps,
        9,
        &[(17001, 1, vec![1; 20]), (17002, 2, vec![2; 20])],
    );
    for cut in [5, 22] {
        assert!(
            FrameRepr::parse(&two[..two.len() - cut]).is_err(),
            "our codec must reject a timestamped trunk frame cut by {cut} bytes"
        );
    }

    let datagrams: Vec<Vec<u8>> = cases.iter().map(|(_, b)| b.clone()).collect();
    let (pcap, decoded) = dissect("truncated", &datagrams);
    let mut errors = Vec::new();
    for ((name, _), got) in cases.iter().zip(&decoded) {
        let malformed = got.get("_ws.malformed").is_some_and(|v| !v.is_empty());
        let error = got
            .get("_ws.expert.severity")
            .is_some_and(|v| v.iter().any(|s| s == PI_ERROR));
        if !(malformed && error) {
            errors.push(format!(
                "{name}: tshark {version:?} did not flag the truncated frame as malformed \
                 (fields: {got:?})"
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "the oracle would miss broken frames (capture: {}):\n{}",
        pcap.display(),
        errors.join("\n")
    );
    std::fs::remove_dir_all(pcap.parent().expect("scratch dir")).ok();
}
