//! Argument parsers used as clap `value_parser`s: durations and subjects.
//! A rejected value is a usage error (exit 2).

use registry::auth::{ServiceAccountName, UserName};
use registry::core::Namespace;

/// Why an argument is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// Not a duration.
    #[error("invalid duration {0:?}: use e.g. 30m, 12h, 7d or 1h30m")]
    Duration(String),
    /// A duration that overflows.
    #[error("duration {0:?} is too long")]
    DurationTooLong(String),
    /// A zero duration where one is needed.
    #[error("duration {0:?} must be longer than zero")]
    DurationZero(String),
    /// Not a subject.
    #[error("invalid subject {input:?}: {problem}")]
    Subject {
        /// The argument.
        input: String,
        /// What is wrong.
        problem: String,
    },
    /// Not `NAME:TAG`.
    #[error("expected NAME:TAG, e.g. app:v1, got {0:?}")]
    NameTag(String),
}

/// Parses a duration such as `90s`, `30m`, `12h`, `7d`, `2w` or `1h30m` into
/// seconds. Each number needs a unit; the total must be positive.
pub fn parse_duration(s: &str) -> Result<u64, ArgError> {
    let bad = || ArgError::Duration(s.to_owned());
    if s.is_empty() {
        return Err(bad());
    }
    let (mut total, mut rest) = (0u64, s);
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let mut chars = tail.chars();
        let unit = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = number
            .checked_mul(unit)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| ArgError::DurationTooLong(s.to_owned()))?;
        rest = chars.as_str();
    }
    if total == 0 {
        return Err(ArgError::DurationZero(s.to_owned()));
    }
    Ok(total)
}

/// A duration like [`parse_duration`], but zero (`0`, `0s`) is allowed.
pub fn parse_grace(s: &str) -> Result<u64, ArgError> {
    match s {
        "0" | "0s" | "0m" | "0h" | "0d" | "0w" => Ok(0),
        _ => parse_duration(s),
    }
}

/// Validates a subject written `user:NAME`, `serviceaccount:NS:NAME` or
/// `group:NAME`, and returns it in that form. `system:serviceaccount:NS:NAME`
/// (as service accounts are listed) is accepted and rewritten.
pub fn parse_subject(s: &str) -> Result<String, ArgError> {
    let bad = |problem: &str| ArgError::Subject {
        input: s.to_owned(),
        problem: problem.to_owned(),
    };
    let sa = s
        .strip_prefix("serviceaccount:")
        .or_else(|| s.strip_prefix("system:serviceaccount:"));
    if let Some(rest) = sa {
        let (ns, name) = rest
            .split_once(':')
            .ok_or_else(|| bad("expected serviceaccount:NS:NAME"))?;
        ns.parse::<Namespace>().map_err(|e| bad(&e.to_string()))?;
        name.parse::<ServiceAccountName>()
            .map_err(|e| bad(&e.to_string()))?;
        return Ok(format!("serviceaccount:{ns}:{name}"));
    }
    if let Some(name) = s.strip_prefix("user:") {
        name.parse::<UserName>().map_err(|e| bad(&e.to_string()))?;
        return Ok(s.to_owned());
    }
    if let Some(name) = s.strip_prefix("group:") {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'));
        if !ok {
            return Err(bad(
                "group names use letters, digits and ':-_.' (e.g. group:system:authenticated)",
            ));
        }
        return Ok(s.to_owned());
    }
    Err(bad(
        "expected user:NAME, serviceaccount:NS:NAME or group:NAME",
    ))
}

/// Splits `NAME:TAG` (both non-empty; the tag has no `/`).
pub fn parse_name_tag(s: &str) -> Result<(String, registry::core::Tag), ArgError> {
    let bad = || ArgError::NameTag(s.to_owned());
    match s.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() => {
            Ok((name.to_owned(), tag.parse().map_err(|_| bad())?))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
