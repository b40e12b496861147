//! Decodes the IAX2 datagrams of a pcap file with trunk-core's codec and
//! prints one line per frame (and per trunk entry with `--entries`), then
//! totals per frame kind.
//!
//! ```text
//! cargo run -p trunk-core --example decode -- testdata/asterisk22-trunk-ts.pcap
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use trunk_core::wire::{Frame, FrameRepr, FrameType, IeBlock, IeRef};

fn describe_ie(ie: &IeRef<'_>) -> String {
    match core::str::from_utf8(ie.data) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => {
            format!("{}={s:?}", ie.ie_type)
        }
        _ => format!("{}=0x{}", ie.ie_type, hex(ie.data)),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut entries = false;
    let mut path = None;
    for a in args.by_ref() {
        match a.as_str() {
            "--entries" => entries = true,
            _ => path = Some(PathBuf::from(a)),
        }
    }
    let Some(path) = path else {
        eprintln!("usage: decode [--entries] FILE.pcap");
        std::process::exit(2);
    };
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    let mut trunk_entries = 0usize;
    let datagrams = match common::try_read_udp(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("decode: {e}");
            std::process::exit(1);
        }
    };
    for d in datagrams {
        let head = format!("{:>5} {} -> {}", d.number, d.src, d.dst);
        let frame = match Frame::parse(&d.payload) {
            Ok(f) => f,
            Err(e) => {
                println!("{head} DROP {e}");
                *totals.entry("dropped".into()).or_default() += 1;
                continue;
            }
        };
        let roundtrip = match FrameRepr::parse(&d.payload).and_then(|r| r.to_vec()) {
            Ok(v) if v == d.payload => "",
            Ok(_) => " [re-emit differs]",
            Err(_) => " [not strictly parseable]",
        };
        *totals.entry(format!("{:?}", frame.kind())).or_default() += 1;
        match frame {
            Frame::Full(f) => {
                let what = match (f.iax_subclass(), f.control_subclass()) {
                    (Some(s), _) => s.to_string(),
                    (_, Some(s)) => s.to_string(),
                    _ => format!("{} subclass {:#04x}", f.frame_type(), f.subclass().0),
                };
                let ies = if f.frame_type() == FrameType::Iax {
                    IeBlock::new_checked(f.payload())
                        .map(|b| {
                            b.iter()
                                .map(|ie| describe_ie(&ie))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_else(|e| format!("(bad IEs: {e})"))
                } else {
                    format!("{} bytes", f.payload().len())
                };
                println!(
                    "{head} full {}>{}{} ts {} o{} i{} {what} {ies}{roundtrip}",
                    f.source_call_number(),
                    f.dest_call_number(),
                    if f.is_retransmission() { " R" } else { "" },
                    f.timestamp(),
                    f.oseqno().0,
                    f.iseqno().0,
                );
            }
            Frame::Mini(m) => println!(
                "{head} mini {} ts16 {} {} bytes{roundtrip}",
                m.source_call_number(),
                m.timestamp().0,
                m.payload().len()
            ),
            Frame::VideoMini(v) => println!(
                "{head} video mini {} ts15 {}{} {} bytes{roundtrip}",
                v.source_call_number(),
                v.timestamp().get(),
                if v.marker() { " M" } else { "" },
                v.payload().len()
            ),
            Frame::MetaTrunk(t) => {
                let list: Vec<_> = t.entries().collect();
                trunk_entries += list.iter().filter(|e| e.is_ok()).count();
                println!(
                    "{head} trunk {:?} ts {} {} entries{roundtrip}",
                    t.layout(),
                    t.trunk_timestamp(),
                    list.len()
                );
                if entries {
                    for e in list {
                        match e {
                            Ok(e) => println!(
                                "        entry call {} ts16 {:?} {} bytes",
                                e.call_number,
                                e.timestamp.map(|t| t.0),
                                e.payload.len()
                            ),
                            Err(err) => println!("        entry error: {err}"),
                        }
                    }
                }
            }
            Frame::Meta(m) => println!(
                "{head} meta command {} data {:#04x} {} bytes{roundtrip}",
                m.meta_command(),
                m.command_data(),
                m.payload().len()
            ),
        }
    }
    println!("--");
    for (kind, n) in &totals {
        println!("{kind}: {n}");
    }
    println!("trunk entries: {trunk_entries}");
}
