//! Property tests: whatever the text, `from_yaml_str` returns (never
//! panics), and every error is one located line.
#![allow(clippy::unwrap_used)]

use iax2_config::{from_yaml_str, fuzzing};
use proptest::prelude::*;

const SITE_A: &str = include_str!("../examples/site-a.yaml");
const SITE_B: &str = include_str!("../examples/site-b.yaml");

/// Characters that matter to YAML, to reach deeper than random bytes do.
const YAML_BITS: &[&str] = &[
    ":",
    " ",
    "  ",
    "\n",
    "-",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: ",
    "?",
    "!",
    "!!str ",
    "#",
    "'",
    "\"",
    "|",
    ">",
    "~",
    "null",
    "yes",
    "0x10",
    "-1",
    "99999999999999999999",
    "dynamic",
    "peers:",
    "routes:",
    "host:",
    "kind:",
    "trunk:",
    "to:",
    "from:",
    "prefix:",
    "permit:",
    "secret:",
    "register:",
    "username:",
    "outkey:",
    "inkeys:",
    "retry_max:",
    "\t",
    "\u{feff}",
    "é",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
];

fn check(text: &str) {
    fuzzing::yaml_text(text);
}

/// One edit to a text.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (
            any::<usize>(),
            prop::collection::vec(prop::sample::select(YAML_BITS), 1..4)
        )
            .prop_map(|(at, bits)| Edit::Insert(at, bits.concat())),
        (any::<usize>(), "[ -~]{1,8}").prop_map(|(at, s)| Edit::Insert(at, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::Indent),
    ]
}

/// The nearest char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    match edit {
        Edit::Delete(at, len) => {
            let start = boundary(text, *at);
            let end = boundary(text, start + len.min(&(text.len() - start)));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::Insert(at, s) => {
            let i = boundary(text, *at);
            format!("{}{s}{}", &text[..i], &text[i..])
        }
        Edit::DuplicateLine(i) => {
            let line = lines[i % n];
            lines.insert(i % n, line);
            lines.join("\n")
        }
        Edit::SwapLines(a, b) => {
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Edit::Indent(i) => {
            let indented = format!("  {}", lines[i % n]);
            lines[i % n] = &indented;
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_soup_never_panics(bits in prop::collection::vec(prop::sample::select(YAML_BITS), 0..64)) {
        check(&bits.concat());
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut text = if which { SITE_A } else { SITE_B }.to_owned();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text);
    }
}

#[test]
fn examples_pass_the_check() {
    check(SITE_A);
    check(SITE_B);
    assert!(from_yaml_str(SITE_A, "a").is_ok());
}

/// Every file of a target's committed corpus (`config/fuzz/corpus/<target>`).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{} holds {} files",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn the_yaml_corpus_replays() {
    let files = corpus("yaml");
    let loaded = files
        .iter()
        .filter(|(_, bytes)| from_yaml_str(&String::from_utf8_lossy(bytes), "x").is_ok())
        .count();
    for (_, bytes) in &files {
        fuzzing::yaml(bytes);
    }
    // Most seeds are working configurations, so the fuzzer starts deep.
    assert!(loaded * 2 > files.len(), "{loaded} of {} load", files.len());
}

#[test]
fn the_key_file_corpus_replays() {
    for (_, bytes) in corpus("key_file") {
        fuzzing::key_file(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Key files with bytes overwritten, cut or doubled: refused with a
    /// clean error, never a panic or a copy of the file in the message.
    #[test]
    fn mutated_key_files_never_panic(
        which in 0..4usize,
        at in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let names = ["gw-a.key", "gw-a.pub", "gw-a-pkcs8.key", "gw-a-pkcs1.pub"];
        let path = format!("{}/tests/keys/{}", env!("CARGO_MANIFEST_DIR"), names[which]);
        let mut bytes = std::fs::read(path).unwrap();
        let i = at % bytes.len();
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        fuzzing::key_file(&bytes);
    }
}
