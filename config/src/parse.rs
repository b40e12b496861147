//! Reading the text: size limit, serde-saphyr with a budget, and turning
//! its errors into [`ConfigError`]s.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error as YamlError, MessageFormatter, UserMessageFormatter};

use crate::error::{ConfigError, ErrorKind};
use crate::locate::{display_path, locate, shorten, Found, Pick, Segment};
use crate::raw::RawConfig;
use crate::schema;
use crate::MAX_FILE_BYTES;

/// Nesting allowed in the file; the schema itself needs 4 levels.
const MAX_DEPTH: usize = 16;

/// The parser options: no snippets (we render one line), duplicate keys
/// refused, and a budget sized for configuration files rather than the
/// crate's permissive defaults, against alias bombs and deep nesting.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_FILE_BYTES),
            max_events: 200_000,
            max_nodes: 100_000,
            max_aliases: 10_000,
            max_anchors: 10_000,
            // Off: a large file may well use one anchor (`&office-acl`)
            // for hundreds of peers; the replay limits below bound the work.
            enforce_alias_anchor_ratio: false,
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_documents: 1,
            max_total_scalar_bytes: MAX_FILE_BYTES,
            max_merge_keys: 1_000,
            max_recorded_anchor_events: 20_000,
            max_recorded_anchor_bytes: MAX_FILE_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: MAX_DEPTH,
            max_alias_expansions_per_anchor: 10_000,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
}

/// The error for a text over [`MAX_FILE_BYTES`].
pub(crate) fn too_large(origin: &str, bytes: u64) -> ConfigError {
    ConfigError {
        file: origin.to_owned(),
        line: 1,
        column: 1,
        key_path: String::new(),
        message: format!("the file is too large ({bytes} bytes)"),
        allowed: Some(format!("at most {MAX_FILE_BYTES} bytes (1 MiB)")),
        kind: ErrorKind::TooLarge,
    }
}

/// Parses `text` into the raw structs.
pub(crate) fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(origin, text.len() as u64));
    }
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| convert(&e, text, origin))
}

/// The error under the snippet and alias wrappers.
#[allow(clippy::wildcard_enum_match_arm)] // non_exhaustive foreign enum
fn innermost(mut err: &YamlError) -> &YamlError {
    loop {
        err = err.without_snippet();
        match err {
            YamlError::AliasError { error, .. } => err = error,
            _ => return err,
        }
    }
}

/// A serde-saphyr error as a [`ConfigError`].
fn convert(err: &YamlError, text: &str, origin: &str) -> ConfigError {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|&(line, _)| line > 0)
        .unwrap_or((1, 1));
    let inner = innermost(err);
    let make = |kind, path: &[Segment], message: String, allowed: Option<String>| ConfigError {
        file: origin.to_owned(),
        line,
        column: column.max(1),
        key_path: display_path(path),
        message,
        allowed,
        kind,
    };
    #[allow(clippy::wildcard_enum_match_arm)] // non_exhaustive foreign enum
    match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let at = locate(text, line, column, Pick::Inner);
            make(
                ErrorKind::UnknownKey,
                &at.path,
                format!("unknown key `{}`", shorten(field, 40)),
                Some(format!("the keys {}", expected.join(", "))),
            )
        }
        YamlError::SerdeMissingField { field, .. } => {
            let mut path = locate(text, line, column, Pick::Outer).path;
            path.push(Segment::Key((*field).to_owned()));
            let allowed = schema::expected_at(&path).map(|e| e.allowed.to_owned());
            make(
                ErrorKind::MissingKey,
                &path,
                "this required key is missing".to_owned(),
                allowed,
            )
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            let at = locate(text, line, column, Pick::Inner);
            let key = key
                .as_deref()
                .map_or_else(|| "?".to_owned(), |k| shorten(k, 64));
            let in_peers = matches!(at.path.as_slice(), [Segment::Key(p), _] if p == "peers");
            let (message, allowed) = if in_peers {
                (
                    format!("peer name `{key}` is defined twice"),
                    Some("each peer name once".to_owned()),
                )
            } else {
                (
                    format!("key `{key}` is given twice"),
                    Some("each key once per map".to_owned()),
                )
            };
            make(ErrorKind::DuplicateKey, &at.path, message, allowed)
        }
        YamlError::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        }
        | YamlError::MultipleDocuments { .. } => make(
            ErrorKind::Syntax,
            &[],
            "more than one YAML document (a second `---`)".to_owned(),
            Some("one document".to_owned()),
        ),
        YamlError::Budget { breach, .. } => {
            let at = locate(text, line, column, Pick::Inner);
            make(
                ErrorKind::Limit,
                &at.path,
                format!(
                    "the YAML exceeds a parser limit: {}",
                    describe_breach(breach)
                ),
                Some(LIMITS.to_owned()),
            )
        }
        YamlError::AliasReplayCounterOverflow { .. }
        | YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. } => {
            let at = locate(text, line, column, Pick::Inner);
            make(
                ErrorKind::Limit,
                &at.path,
                format!(
                    "the YAML exceeds a parser limit: {}",
                    library_message(inner)
                ),
                Some(LIMITS.to_owned()),
            )
        }
        YamlError::Eof { .. } => make(
            ErrorKind::Syntax,
            &[],
            "the file holds no settings".to_owned(),
            Some(schema::TOP.to_owned()),
        ),
        YamlError::InvalidScalar { .. }
        | YamlError::SerdeInvalidType { .. }
        | YamlError::SerdeInvalidValue { .. }
        | YamlError::SerdeInvalidLength { .. }
        | YamlError::SerdeUnknownVariant { .. }
        | YamlError::Unexpected { .. }
        | YamlError::InvalidBooleanStrict { .. }
        | YamlError::NullIntoString { .. }
        | YamlError::QuotingRequired { .. }
        | YamlError::TaggedScalarCannotDeserializeIntoString { .. }
        | YamlError::NonFiniteFloat { .. }
        | YamlError::UnexpectedValueForUnit { .. }
        | YamlError::BytesNotSupportedMissingBinaryTag { .. }
        | YamlError::InvalidBinaryBase64 { .. }
        | YamlError::BinaryNotUtf8 { .. }
        | YamlError::MergeValueNotMapOrSeqOfMaps { .. } => {
            let at = locate(text, line, column, Pick::Outer);
            // A secret's text is never repeated in an error.
            let secret = schema::is_secret(&at.path);
            match (schema::expected_at(&at.path), &at.node) {
                (Some(expect), Some(Found::Scalar(..))) if secret => make(
                    ErrorKind::WrongType,
                    &at.path,
                    format!("expected {}, found a tagged value (not shown)", expect.noun),
                    Some(expect.allowed.to_owned()),
                ),
                (Some(expect), Some(found)) => make(
                    ErrorKind::WrongType,
                    &at.path,
                    format!("expected {}, found {}", expect.noun, found.describe()),
                    Some(expect.allowed.to_owned()),
                ),
                (Some(expect), None) if secret => make(
                    ErrorKind::WrongType,
                    &at.path,
                    format!("expected {}", expect.noun),
                    Some(expect.allowed.to_owned()),
                ),
                (Some(_), None) | (None, _) => {
                    make(ErrorKind::WrongType, &at.path, library_message(inner), None)
                }
            }
        }
        YamlError::ExternalMessage { msg, .. } if msg.contains("recursion limit") => make(
            ErrorKind::Limit,
            &[],
            format!(
                "the YAML exceeds a parser limit: {}",
                library_message(inner)
            ),
            Some(LIMITS.to_owned()),
        ),
        _ => {
            let at = locate(text, line, column, Pick::Inner);
            make(
                ErrorKind::Syntax,
                &at.path,
                format!("invalid YAML: {}", library_message(inner)),
                None,
            )
        }
    }
}

/// The limits of [`options`], in words.
const LIMITS: &str =
    "nesting up to 16 levels, 100000 values, 10000 aliases expanding to 100000 values";

/// A budget breach in words.
fn describe_breach(breach: &BudgetBreach) -> String {
    #[allow(clippy::wildcard_enum_match_arm)] // non_exhaustive foreign enum
    match breach {
        BudgetBreach::Depth { depth } => format!("nesting {depth} levels deep"),
        BudgetBreach::Nodes { nodes } => format!("more than {nodes} values"),
        BudgetBreach::Events { events } => format!("more than {events} parser events"),
        BudgetBreach::Aliases { aliases } => format!("{aliases} aliases"),
        BudgetBreach::Anchors { anchors } => format!("{anchors} anchors"),
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors")
        }
        BudgetBreach::RecordedAnchorEvents {
            recorded_anchor_events,
        } => format!("anchors and merges copying {recorded_anchor_events} values"),
        other => format!("{other:?}"),
    }
}

/// serde-saphyr's own wording, without its location suffix, on one line.
fn library_message(err: &YamlError) -> String {
    let text = UserMessageFormatter.format_message(err);
    shorten(&text.replace('\n', " "), 200)
}
