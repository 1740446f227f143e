//! Repository names, tags and references, validated against the
//! distribution-spec grammar.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Longest repository name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag accepted, in bytes.
pub const MAX_TAG_LEN: usize = 128;

/// Why a string is not a valid repository name or namespace. The text
/// says what is wrong with the name, not which kind of name it is: the
/// caller says that ("invalid repository name \"Team/app\": contains
/// invalid character 'T' …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("is {0} bytes, longer than 255")]
    TooLong(usize),
    /// The name has only one component; names are `namespace/stream[/more]`.
    #[error("needs a namespace: use <namespace>/<name>")]
    MissingNamespace,
    /// A path component is empty (`a//b`, leading or trailing `/`).
    #[error("has an empty path component")]
    EmptyComponent,
    /// A character outside `[a-z0-9._-]` appears.
    #[error("contains invalid character {0:?} (names are lowercase letters and digits, separated by `.`, `_`, `__` or dashes)")]
    InvalidCharacter(char),
    /// A component starts or ends with a separator, or separators are
    /// combined in a way the grammar forbids (`a..b`, `a_-b`, `a___b`).
    #[error("component {0:?} has misplaced separators (`.`, `_`, `__` or dashes go between letters and digits)")]
    InvalidSeparator(String),
}

/// A validated repository name: `namespace/stream[/more]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    repr: Box<str>,
}

fn validate_component(c: &str) -> Result<(), NameError> {
    if c.is_empty() {
        return Err(NameError::EmptyComponent);
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        if let Some(bad) = c.chars().find(|&ch| !is_name_char(ch)) {
            return Err(NameError::InvalidCharacter(bad));
        }
        return Err(NameError::InvalidSeparator(c.to_owned()));
    }
    // Separators between alphanumeric runs: '.', '_', '__', or one or more '-'.
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        if !is_name_char(b as char) {
            let ch = c[i..].chars().next().unwrap_or('?');
            return Err(NameError::InvalidCharacter(ch));
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            if !is_name_char(bytes[i] as char) {
                let ch = c[i..].chars().next().unwrap_or('?');
                return Err(NameError::InvalidCharacter(ch));
            }
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(NameError::InvalidSeparator(c.to_owned()));
        }
    }
    Ok(())
}

fn is_name_char(ch: char) -> bool {
    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '.' || ch == '_' || ch == '-'
}

impl RepositoryName {
    /// The first path component: the namespace that owns the repository.
    pub fn namespace(&self) -> &str {
        self.repr.split_once('/').map_or(&self.repr, |(ns, _)| ns)
    }

    /// The namespace as its validated type.
    pub fn to_namespace(&self) -> Namespace {
        Namespace {
            repr: self.namespace().into(),
        }
    }

    /// Everything after the namespace: the ImageStream's name within it.
    pub fn stream(&self) -> &str {
        self.repr.split_once('/').map_or("", |(_, rest)| rest)
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// Builds a name from a namespace and a stream, validating both.
    pub fn from_parts(namespace: &str, stream: &str) -> Result<Self, NameError> {
        format!("{namespace}/{stream}").parse()
    }
}

/// A validated namespace: one component of the repository grammar. It owns
/// repositories and is the scope of role bindings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    repr: Box<str>,
}

impl Namespace {
    /// The namespace text.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for Namespace {
    type Err = NameError;

    fn from_str(ns: &str) -> Result<Self, Self::Err> {
        if ns.is_empty() {
            return Err(NameError::Empty);
        }
        if ns.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(ns.len()));
        }
        if ns.contains('/') {
            return Err(NameError::InvalidCharacter('/'));
        }
        validate_component(ns)?;
        Ok(Namespace { repr: ns.into() })
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({})", self.repr)
    }
}

impl FromStr for RepositoryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(s.len()));
        }
        let mut components = 0;
        for c in s.split('/') {
            validate_component(c)?;
            components += 1;
        }
        if components < 2 {
            return Err(NameError::MissingNamespace);
        }
        Ok(RepositoryName { repr: s.into() })
    }
}

/// Lets ordered maps keyed by name be searched with any string (an opaque
/// listing cursor). Consistent with `Eq`, `Ord` and `Hash`, which all
/// derive from the one string field.
impl std::borrow::Borrow<str> for RepositoryName {
    fn borrow(&self) -> &str {
        &self.repr
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryName({})", self.repr)
    }
}

/// Why a string is not a valid tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The tag is empty.
    #[error("tag is empty")]
    Empty,
    /// The tag is longer than [`MAX_TAG_LEN`].
    #[error("tag is {0} bytes, longer than 128")]
    TooLong(usize),
    /// The first character is not `[a-zA-Z0-9_]`.
    #[error("tag must start with a letter, digit or '_', not {0:?}")]
    InvalidStart(char),
    /// A later character is not `[a-zA-Z0-9._-]`.
    #[error("tag contains invalid character {0:?}")]
    InvalidCharacter(char),
}

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    repr: Box<str>,
}

impl Tag {
    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for Tag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let first = chars.next().ok_or(TagError::Empty)?;
        if s.len() > MAX_TAG_LEN {
            return Err(TagError::TooLong(s.len()));
        }
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(TagError::InvalidStart(first));
        }
        if let Some(bad) =
            chars.find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
        {
            return Err(TagError::InvalidCharacter(bad));
        }
        Ok(Tag { repr: s.into() })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.repr)
    }
}

/// Why a string is neither a tag nor a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// It contains `:` so it was read as a digest, and is not a valid one.
    #[error("invalid digest reference: {0}")]
    Digest(#[from] DigestError),
    /// It was read as a tag, and is not a valid one.
    #[error("invalid tag reference: {0}")]
    Tag(#[from] TagError),
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A mutable tag.
    Tag(Tag),
    /// An immutable content digest.
    Digest(Digest),
}

impl Reference {
    /// The digest, when the reference is one.
    pub fn as_digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }

    /// The tag, when the reference is one.
    pub fn as_tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Implements `Serialize` and `Deserialize` for a type through its
/// `Display` and `FromStr` forms, so that serde sees the same validated
/// string as every other caller. The calling crate needs `serde`.
#[macro_export]
macro_rules! serde_via_str {
    ($t:ty) => {
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

serde_via_str!(RepositoryName);
serde_via_str!(Tag);
serde_via_str!(Namespace);
serde_via_str!(Reference);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for n in [
            "a/b",
            "ns/app",
            "my-ns/my.app/sub_dir/x__y",
            "a0/b---c",
            "library/ubuntu",
        ] {
            let name: RepositoryName = n.parse().unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(name.as_str(), n);
        }
        let n: RepositoryName = "team/web/frontend".parse().unwrap();
        assert_eq!(n.namespace(), "team");
        assert_eq!(n.to_namespace(), "team".parse::<Namespace>().unwrap());
        assert_eq!(
            "a/b".parse::<Namespace>(),
            Err(NameError::InvalidCharacter('/'))
        );
        assert!(matches!(
            "-a".parse::<Namespace>(),
            Err(NameError::InvalidSeparator(_))
        ));
        assert_eq!(n.stream(), "web/frontend");
    }

    #[test]
    fn invalid_names_have_precise_errors() {
        assert_eq!("".parse::<RepositoryName>(), Err(NameError::Empty));
        assert_eq!(
            "single".parse::<RepositoryName>(),
            Err(NameError::MissingNamespace)
        );
        assert_eq!(
            "a//b".parse::<RepositoryName>(),
            Err(NameError::EmptyComponent)
        );
        assert_eq!(
            "a/B".parse::<RepositoryName>(),
            Err(NameError::InvalidCharacter('B'))
        );
        assert!(matches!(
            "a/b..c".parse::<RepositoryName>(),
            Err(NameError::InvalidSeparator(_))
        ));
        assert!(matches!(
            "a/-b".parse::<RepositoryName>(),
            Err(NameError::InvalidSeparator(_))
        ));
        assert!(matches!(
            "a/b___c".parse::<RepositoryName>(),
            Err(NameError::InvalidSeparator(_))
        ));
        let long = format!("a/{}", "b".repeat(254));
        assert_eq!(long.parse::<RepositoryName>(), Err(NameError::TooLong(256)));
    }

    #[test]
    fn tags() {
        assert!("latest".parse::<Tag>().is_ok());
        assert!("_v1.2-rc".parse::<Tag>().is_ok());
        assert_eq!("".parse::<Tag>(), Err(TagError::Empty));
        assert_eq!(".x".parse::<Tag>(), Err(TagError::InvalidStart('.')));
        assert_eq!("a/b".parse::<Tag>(), Err(TagError::InvalidCharacter('/')));
        assert!("a".repeat(128).parse::<Tag>().is_ok());
        assert_eq!("a".repeat(129).parse::<Tag>(), Err(TagError::TooLong(129)));
    }

    #[test]
    fn references() {
        assert!(matches!(
            "latest".parse::<Reference>(),
            Ok(Reference::Tag(_))
        ));
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            d.to_string().parse::<Reference>(),
            Ok(Reference::Digest(d.clone()))
        );
        assert!(matches!(
            "sha256:nothex".parse::<Reference>(),
            Err(ReferenceError::Digest(_))
        ));
    }
}
