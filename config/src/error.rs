//! The one error type of this crate.

use std::fmt;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read (it has no line or column).
    Io,
    /// The file is larger than [`crate::MAX_FILE_BYTES`].
    TooLarge,
    /// The text is not well-formed YAML.
    Syntax,
    /// The YAML exceeds a parser limit (nesting, node count, aliases...).
    Limit,
    /// A key the schema does not know.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A key appears twice in one map (for `peers`: a duplicate peer name).
    DuplicateKey,
    /// A value of the wrong type (text where a number belongs, a list where
    /// a single value belongs, ...).
    WrongType,
    /// A value of the right type that is not allowed: out of range, not an
    /// address, a route to an unknown peer, two peers on one address, ...
    Invalid,
}

/// A configuration error, located in the file.
///
/// It displays as one line:
///
/// ```text
/// site-a.yaml:12:16: peers.site-b.trunkfreq: 5 is out of range; allowed: 10 to 1000 (milliseconds)
/// ```
///
/// that is `file:line:column: key.path: message; allowed: what`. The key
/// path is left out when the error concerns the whole document, and the
/// `allowed` part when there is nothing useful to say. Only
/// [`ErrorKind::Io`] errors have no position (line and column 0); they
/// display as `file: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file name given to [`crate::load`] or the `origin` given to
    /// [`crate::from_yaml_str`].
    pub file: String,
    /// 1-based line (0 only for [`ErrorKind::Io`]).
    pub line: u64,
    /// 1-based column in characters (0 only for [`ErrorKind::Io`]).
    pub column: u64,
    /// Where in the document: keys joined by `.`, list items as `[index]`,
    /// e.g. `peers.site-b.trunkfreq` or `routes[1].to`. Empty for the
    /// document itself.
    pub key_path: String,
    /// What is wrong.
    pub message: String,
    /// What would be accepted, when that can be said.
    pub allowed: Option<String>,
    /// The kind of problem.
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.key_path.is_empty() {
            write!(f, " {}:", self.key_path)?;
        }
        write!(f, " {}", self.message)?;
        if let Some(allowed) = &self.allowed {
            write!(f, "; allowed: {allowed}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// `file:line:column`, the position alone.
    pub fn position(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line() {
        let e = ConfigError {
            file: "site-a.yaml".into(),
            line: 12,
            column: 16,
            key_path: "peers.site-b.trunkfreq".into(),
            message: "5 is out of range".into(),
            allowed: Some("10 to 1000 (milliseconds)".into()),
            kind: ErrorKind::Invalid,
        };
        assert_eq!(
            e.to_string(),
            "site-a.yaml:12:16: peers.site-b.trunkfreq: 5 is out of range; allowed: 10 to 1000 (milliseconds)"
        );
        assert_eq!(e.position(), "site-a.yaml:12:16");
        let io = ConfigError {
            file: "x.yaml".into(),
            line: 0,
            column: 0,
            key_path: String::new(),
            message: "cannot read the file: gone".into(),
            allowed: None,
            kind: ErrorKind::Io,
        };
        assert_eq!(io.to_string(), "x.yaml: cannot read the file: gone");
    }
}
