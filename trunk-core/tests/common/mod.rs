//! Helpers shared by the integration tests: the committed captures, and
//! reading and writing classic pcap files of IPv4/UDP datagrams.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::wildcard_enum_match_arm
)]

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

/// The repository's `testdata/` folder.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every IAX2 capture in `testdata/`, sorted by name.
pub fn captures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata_dir())
        .expect("testdata/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    files
}

/// One UDP datagram of a capture.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// 1-based frame number, as tshark counts.
    pub number: usize,
    /// Capture timestamp.
    pub time: Duration,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// Reads the IPv4/UDP datagrams of a classic pcap (Ethernet, Linux cooked
/// or raw IPv4 link types). Panics on anything else: the captures are known
/// files.
pub fn read_udp(path: &Path) -> Vec<Datagram> {
    try_read_udp(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads the IPv4/UDP datagrams of a classic pcap; other packets (IPv6,
/// TCP, fragments, short records) are skipped. Errors name the file and
/// what is wrong with it.
pub fn try_read_udp(path: &Path) -> Result<Vec<Datagram>, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = File::open(path).map_err(|e| at(&e))?;
    let mut reader = PcapReader::new(BufReader::new(file))
        .map_err(|e| at(&format!("not a classic pcap file ({e})")))?;
    let datalink = reader.header().datalink;
    let mut out = Vec::new();
    let mut number = 0;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(|e| at(&format!("record {}: {e}", number + 1)))?;
        number += 1;
        let data = &packet.data[..];
        let (ethertype, ip) = match datalink {
            DataLink::ETHERNET => (data.get(12..14), data.get(14..)),
            DataLink::LINUX_SLL => (data.get(14..16), data.get(16..)),
            DataLink::RAW | DataLink::IPV4 => (Some(&[0x08, 0x00][..]), Some(data)),
            other => return Err(at(&format!("unsupported link type {other:?}"))),
        };
        if ethertype != Some(&[0x08, 0x00][..]) {
            continue;
        }
        if let Some(d) = ip.and_then(|ip| udp_in_ipv4(ip, number, packet.timestamp)) {
            out.push(d);
        }
    }
    Ok(out)
}

/// The UDP datagram inside an IPv4 packet, if it is a whole, unfragmented one.
fn udp_in_ipv4(ip: &[u8], number: usize, time: Duration) -> Option<Datagram> {
    let (&version_ihl, _) = ip.split_first()?;
    if version_ihl >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
    if fragment != 0 {
        return None;
    }
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let udp = ip.get(ihl..total)?;
    let word = |i: usize| Some(u16::from_be_bytes([*udp.get(i)?, *udp.get(i + 1)?]));
    let ulen = usize::from(word(4)?);
    let addr = |i: usize| {
        Some(Ipv4Addr::new(
            *ip.get(i)?,
            *ip.get(i + 1)?,
            *ip.get(i + 2)?,
            *ip.get(i + 3)?,
        ))
    };
    Some(Datagram {
        number,
        time,
        src: SocketAddrV4::new(addr(12)?, word(0)?),
        dst: SocketAddrV4::new(addr(16)?, word(2)?),
        payload: udp.get(8..ulen)?.to_vec(),
    })
}

/// Builds an IPv4/UDP packet (raw IPv4 link type) carrying `payload`.
/// The IPv4 header checksum is computed; the UDP checksum is 0 (none).
pub fn ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let total16 = u16::try_from(total).expect("datagram fits IPv4");
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    let sum = p
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let csum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Writes datagrams to a classic pcap with the raw IPv4 link type, one
/// packet every millisecond.
pub fn write_udp_pcap(path: &Path, datagrams: &[(SocketAddrV4, SocketAddrV4, Vec<u8>)]) {
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let header = PcapHeader {
        datalink: DataLink::IPV4,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(BufWriter::new(file), header).expect("pcap header");
    for (i, (src, dst, payload)) in datagrams.iter().enumerate() {
        let data = ipv4_udp(*src, *dst, payload);
        let len = u32::try_from(data.len()).expect("small packet");
        let packet = PcapPacket::new(Duration::from_millis(i as u64), len, &data);
        writer.write_packet(&packet).expect("write packet");
    }
}
