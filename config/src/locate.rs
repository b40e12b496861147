//! Finding the key path of a YAML position.
//!
//! serde-saphyr reports where an error is (line and column) but not under
//! which keys. This walks the parser events of the same text (the parser
//! serde-saphyr itself uses, so positions agree) and names the node at a
//! position: `peers.site-b.trunkfreq`, `routes[1].to`.
//!
//! It runs only when an error is reported. It never recurses (an explicit
//! stack) and stops at the given position, at a syntax error or below
//! [`MAX_DEPTH`] levels, so hostile input costs it no more than the parse.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// Deeper nodes are named by their ancestor at this depth.
const MAX_DEPTH: usize = 64;
/// Longer keys are cut in paths.
const MAX_KEY_CHARS: usize = 64;

/// Which node to pick when several start at the position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The outermost node starting exactly at the position (a block map
    /// starts where its first key does: errors about a whole map, such as
    /// a missing key, point there); else the innermost before it.
    Outer,
    /// The innermost node starting at or before the position (errors about
    /// a key, such as an unknown key, point at the key).
    Inner,
}

/// What the node at a position is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A scalar with its text, and whether it is a plain (unquoted) scalar.
    Scalar(String, bool),
    /// A sequence.
    Seq,
    /// A mapping.
    Map,
    /// An alias (`*name`).
    Alias,
}

impl Found {
    /// How a message names this value: `` `lots` ``, `a list`, ...
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Scalar(text, plain) => {
                let empty = *plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                if empty {
                    "an empty value".to_owned()
                } else {
                    format!("`{}`", shorten(text, 40))
                }
            }
            Self::Seq => "a list".to_owned(),
            Self::Map => "a map".to_owned(),
            Self::Alias => "an alias".to_owned(),
        }
    }
}

/// The key path and the node found at a position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Located {
    /// The keys and list indices leading to the node; empty for the
    /// document itself.
    pub(crate) path: Vec<Segment>,
    /// The node, if one was found.
    pub(crate) node: Option<Found>,
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A map key (cut to a readable length).
    Key(String),
    /// A list index.
    Index(usize),
}

/// A key path as displayed: keys joined by `.`, indices as `[i]`.
pub(crate) fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// One open collection.
enum Frame {
    /// A mapping: its current key and what comes next.
    Map { key: String, state: MapState },
    /// A sequence: the index of the current item.
    Seq { index: usize },
}

/// Where a mapping is between its entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MapState {
    /// The next node is a key.
    WantKey,
    /// Inside a key (a complex key can be a collection).
    InKey,
    /// The next node, or the one open, is the value of `key`.
    Value,
}

/// A walk over the events, calling `visit(node number, line, column,
/// stack, node)` for every node; `visit` returns false to stop.
#[allow(clippy::wildcard_enum_match_arm)] // see the wildcard arm
fn walk<F>(text: &str, mut visit: F)
where
    F: FnMut(usize, (u64, u64), &[Frame], &Found) -> bool,
{
    let mut stack: Vec<Frame> = Vec::new();
    let mut nodes = 0usize;
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { return };
        let pos = (
            span.start.line() as u64,
            span.start.col().saturating_add(1) as u64,
        );
        let (found, opens) = match event {
            Event::Scalar(value, style, _, _) => {
                let plain = matches!(style, ScalarStyle::Plain);
                (Found::Scalar(value.into_owned(), plain), false)
            }
            Event::SequenceStart(..) => (Found::Seq, true),
            Event::MappingStart(..) => (Found::Map, true),
            Event::Alias(_) => (Found::Alias, false),
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                end_of_node(&mut stack);
                continue;
            }
            // Stream and document markers, comments and anchor metadata
            // are not nodes. (Which of these exist depends on parser
            // features other crates may switch on, hence the wildcard.)
            _ => continue,
        };
        if stack.len() > MAX_DEPTH {
            return;
        }
        if let Some(Frame::Map { key, state }) = stack.last_mut() {
            if *state == MapState::WantKey {
                *key = match &found {
                    Found::Scalar(text, _) => shorten(text, MAX_KEY_CHARS),
                    Found::Seq | Found::Map | Found::Alias => "?".to_owned(),
                };
                *state = MapState::InKey;
            }
        }
        if !visit(nodes, pos, &stack, &found) {
            return;
        }
        nodes += 1;
        if opens {
            stack.push(if found == Found::Map {
                Frame::Map {
                    key: String::new(),
                    state: MapState::WantKey,
                }
            } else {
                Frame::Seq { index: 0 }
            });
        } else {
            end_of_node(&mut stack);
        }
    }
}

/// A node has ended: advance its parent.
fn end_of_node(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { state, .. }) => {
            *state = match *state {
                MapState::InKey => MapState::Value,
                MapState::WantKey | MapState::Value => MapState::WantKey,
            }
        }
        Some(Frame::Seq { index }) => *index += 1,
        None => {}
    }
}

/// The path of the current node from the open frames.
fn path_of(stack: &[Frame]) -> Vec<Segment> {
    stack
        .iter()
        .map(|frame| match frame {
            Frame::Map { key, .. } => Segment::Key(key.clone()),
            Frame::Seq { index } => Segment::Index(*index),
        })
        .collect()
}

/// Names the node at (`line`, `column`) of `text`.
pub(crate) fn locate(text: &str, line: u64, column: u64, pick: Pick) -> Located {
    let target = (line, column);
    // First pass: which node (by number).
    let mut chosen: Option<usize> = None;
    walk(text, |n, pos, _, _| {
        if pos > target {
            return false;
        }
        if pos == target && pick == Pick::Outer {
            chosen = Some(n);
            return false;
        }
        chosen = Some(n);
        true
    });
    let Some(chosen) = chosen else {
        return Located::default();
    };
    // Second pass: its path, built once.
    let mut out = Located::default();
    walk(text, |n, _, stack, found| {
        if n == chosen {
            out = Located {
                path: path_of(stack),
                node: Some(found.clone()),
            };
            return false;
        }
        true
    });
    out
}

/// `text` cut to `max` characters (with `...`), control characters
/// escaped (`\n`, `\u{0}`) so a message stays on one line.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max) {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
listen: 0.0.0.0:4569
peers:
  a:
    host: 127.0.0.1
    permit: [10.0.0.0/8, 1.2.3.4]
  b:
    kind: pbx
routes:
  - to: a
  - from: b
    to: a
";

    fn at(line: u64, column: u64, pick: Pick) -> (String, Option<Found>) {
        let l = locate(DOC, line, column, pick);
        (display_path(&l.path), l.node)
    }

    #[test]
    fn paths() {
        assert_eq!(at(1, 1, Pick::Inner).0, "listen");
        assert_eq!(at(1, 1, Pick::Outer).0, "");
        assert_eq!(
            at(1, 9, Pick::Inner),
            (
                "listen".into(),
                Some(Found::Scalar("0.0.0.0:4569".into(), true))
            )
        );
        assert_eq!(at(3, 3, Pick::Inner).0, "peers.a");
        assert_eq!(at(4, 5, Pick::Outer).0, "peers.a");
        assert_eq!(at(4, 5, Pick::Inner).0, "peers.a.host");
        assert_eq!(at(4, 11, Pick::Inner).0, "peers.a.host");
        assert_eq!(at(5, 13, Pick::Outer).0, "peers.a.permit");
        assert_eq!(at(5, 26, Pick::Inner).0, "peers.a.permit[1]");
        assert_eq!(at(6, 3, Pick::Inner).0, "peers.b");
        assert_eq!(at(7, 11, Pick::Inner).0, "peers.b.kind");
        assert_eq!(at(9, 5, Pick::Outer).0, "routes[0]");
        assert_eq!(at(9, 9, Pick::Inner).0, "routes[0].to");
        assert_eq!(at(11, 9, Pick::Inner).0, "routes[1].to");
    }

    #[test]
    fn broken_and_empty_text() {
        assert_eq!(locate("", 1, 1, Pick::Inner), Located::default());
        let l = locate("peers:\n  a:\n    host: [x\n", 3, 11, Pick::Inner);
        assert_eq!(display_path(&l.path), "peers.a.host");
        assert_eq!(shorten("abc\n", 10), "abc\\n");
        assert_eq!(shorten("abcdef", 3), "abc...");
    }
}
