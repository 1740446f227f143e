//! A namespace's lifecycle policy: retention, immutable tags and a byte
//! quota. Stored by the [`MetadataStore`](crate::MetadataStore); enforced
//! by the registry's service core.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use registry_core::{serde_via_str, Tag};
use serde::{Deserialize, Serialize};

/// What a namespace keeps, refuses and may store. Every field is optional:
/// the default policy keeps everything, protects no tag and has no quota.
/// JSON: an object, unknown fields refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// The derived code becomes inherent functions that the trait impls below
// call: deserializing accepts only a map (serde's derive also takes a
// sequence of field values, so `[]` would read as the empty policy).
#[serde(remote = "Self", deny_unknown_fields)]
#[non_exhaustive]
pub struct NamespacePolicy {
    /// Retention: the N most recent images of each tag's history are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_tag_revisions: Option<u32>,
    /// Retention: images pushed more recently than this are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_younger_than: Option<PolicyDuration>,
    /// Retention: manifests no tag (and no kept index) references go this
    /// long after their push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_untagged_after: Option<PolicyDuration>,
    /// Tags matching one of these patterns may be created, never moved to
    /// another image or deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub immutable_tags: Vec<TagPattern>,
    /// Bytes the namespace may store, each blob counted once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
}

impl Serialize for NamespacePolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        NamespacePolicy::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for NamespacePolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = NamespacePolicy;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a namespace policy object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                NamespacePolicy::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

impl NamespacePolicy {
    /// The first immutable-tag pattern `tag` matches, if any.
    pub fn immutable_rule(&self, tag: &Tag) -> Option<&TagPattern> {
        self.immutable_tags.iter().find(|p| p.matches(tag))
    }
}

/// Longest tag pattern accepted, in bytes (a tag's own limit).
pub const MAX_TAG_PATTERN_LEN: usize = 128;

/// Why a string is not a tag pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagPatternError {
    /// The pattern is empty.
    #[error("tag pattern is empty")]
    Empty,
    /// The pattern is longer than [`MAX_TAG_PATTERN_LEN`].
    #[error("tag pattern is {0} bytes, longer than 128")]
    TooLong(usize),
    /// A character no tag contains and that is not `*` or `?`.
    #[error("tag pattern contains {0:?}: tags hold [A-Za-z0-9_.-], patterns also * and ?")]
    InvalidCharacter(char),
}

/// A glob over tags: `*` matches any run of characters (also none), `?`
/// exactly one, anything else itself (`v*`, `release-*`, `v?.*`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagPattern {
    repr: Box<str>,
}

impl TagPattern {
    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// Whether `tag` matches the whole pattern.
    pub fn matches(&self, tag: &Tag) -> bool {
        glob(self.repr.as_bytes(), tag.as_str().as_bytes())
    }
}

/// Iterative glob match with one backtracking point (the last `*`): linear
/// in practice, never exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl FromStr for TagPattern {
    type Err = TagPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(TagPatternError::Empty);
        }
        if s.len() > MAX_TAG_PATTERN_LEN {
            return Err(TagPatternError::TooLong(s.len()));
        }
        if let Some(bad) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*' | '?')))
        {
            return Err(TagPatternError::InvalidCharacter(bad));
        }
        Ok(TagPattern { repr: s.into() })
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagPattern({})", self.repr)
    }
}

/// Why a string is not a policy duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDurationError {
    /// Not `<whole number><unit>` with unit `s`, `m`, `h`, `d` or `w`.
    #[error("duration {0:?} is not <number><unit> with unit s, m, h, d or w (e.g. 30d, 12h)")]
    Malformed(String),
    /// Longer than 100 years.
    #[error("duration {0:?} is longer than 100 years")]
    TooLong(String),
}

/// A duration written `<whole number><unit>`: `90s`, `30m`, `12h`, `30d`,
/// `2w`. Shown in the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyDuration(Duration);

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];
const MAX_POLICY_SECONDS: u64 = 100 * 365 * 86_400;

impl PolicyDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for PolicyDuration {
    type Err = PolicyDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || PolicyDurationError::Malformed(s.to_owned());
        let unit = s.chars().last().ok_or_else(malformed)?;
        let number = &s[..s.len() - unit.len_utf8()];
        let seconds_per = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(malformed)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let count: u64 = number
            .parse()
            .map_err(|_| PolicyDurationError::TooLong(s.to_owned()))?;
        let seconds = count
            .checked_mul(seconds_per)
            .filter(|&n| n <= MAX_POLICY_SECONDS)
            .ok_or_else(|| PolicyDurationError::TooLong(s.to_owned()))?;
        Ok(PolicyDuration(Duration::from_secs(seconds)))
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (unit, per) = UNITS
            .iter()
            .copied()
            .find(|(_, per)| secs % per == 0 && secs > 0)
            .unwrap_or(('s', 1));
        write!(f, "{}{unit}", secs / per)
    }
}

serde_via_str!(TagPattern);
serde_via_str!(PolicyDuration);

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        s.parse().unwrap()
    }

    #[test]
    fn globs() {
        let cases = [
            ("v*", "v1.2", true),
            ("v*", "v", true),
            ("v*", "latest", false),
            ("release-*", "release-2026", true),
            ("release-*", "prerelease-1", false),
            ("v?.*", "v1.0", true),
            ("v?.*", "v10.0", false),
            ("*-rc*", "v1-rc2", true),
            ("*", "anything", true),
            ("latest", "latest", true),
            ("latest", "latest2", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
        ];
        for (pattern, t, expected) in cases {
            let p: TagPattern = pattern.parse().unwrap();
            assert_eq!(p.matches(&tag(t)), expected, "{pattern} vs {t}");
        }
        // Many stars over a long non-matching tag stay cheap (no blow-up).
        let p: TagPattern = "*a*a*a*a*a*a*a*b".parse().unwrap();
        assert!(!p.matches(&tag(&"a".repeat(128))));
    }

    #[test]
    fn bad_patterns() {
        assert_eq!("".parse::<TagPattern>(), Err(TagPatternError::Empty));
        assert_eq!(
            "a".repeat(129).parse::<TagPattern>(),
            Err(TagPatternError::TooLong(129))
        );
        assert_eq!(
            "v[0-9]".parse::<TagPattern>(),
            Err(TagPatternError::InvalidCharacter('['))
        );
    }

    #[test]
    fn durations() {
        for (text, secs, shown) in [
            ("90s", 90, "90s"),
            ("120s", 120, "2m"),
            ("12h", 43_200, "12h"),
            ("30d", 2_592_000, "30d"),
            ("14d", 1_209_600, "2w"),
            ("0d", 0, "0s"),
        ] {
            let d: PolicyDuration = text.parse().unwrap();
            assert_eq!(d.get().as_secs(), secs, "{text}");
            assert_eq!(d.to_string(), shown);
        }
        for bad in ["", "d", "10", "10y", "-1d", "1.5h", " 1d", "1d "] {
            assert!(
                matches!(
                    bad.parse::<PolicyDuration>(),
                    Err(PolicyDurationError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            "99999999999999999999w".parse::<PolicyDuration>(),
            Err(PolicyDurationError::TooLong(_))
        ));
        assert!(matches!(
            "101000d".parse::<PolicyDuration>(),
            Err(PolicyDurationError::TooLong(_))
        ));
    }

    #[test]
    fn json_refuses_unknown_fields() {
        let p: NamespacePolicy = serde_json::from_str(
            r#"{"keep_tag_revisions":3,"keep_younger_than":"30d","immutable_tags":["v*"],"quota_bytes":1024}"#,
        )
        .unwrap();
        assert_eq!(p.keep_tag_revisions, Some(3));
        assert_eq!(p.immutable_rule(&tag("v1")).unwrap().as_str(), "v*");
        assert!(p.immutable_rule(&tag("latest")).is_none());
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<NamespacePolicy>(&json).unwrap(), p);
        assert!(serde_json::from_str::<NamespacePolicy>(r#"{"keep":1}"#).is_err());
        for not_an_object in ["[]", "[3]", "null", "3", r#""v*""#] {
            assert!(
                serde_json::from_str::<NamespacePolicy>(not_an_object).is_err(),
                "{not_an_object}"
            );
        }
        assert!(serde_json::from_str::<NamespacePolicy>(r#"{"immutable_tags":["v["]}"#).is_err());
        assert_eq!(
            serde_json::from_str::<NamespacePolicy>("{}").unwrap(),
            NamespacePolicy::default()
        );
    }
}
