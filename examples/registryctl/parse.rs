//! Argument parsers used as clap `value_parser`s: durations, subjects and the
//! names that end up in URL paths. A rejected value is a usage error (exit 2).

use registry::auth::{ServiceAccountName, UserName};
use registry::core::Namespace;

/// Parses a duration such as `90s`, `30m`, `12h`, `7d`, `2w` or `1h30m` into
/// seconds. Each number needs a unit; the total must be positive.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 30m, 12h, 7d or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
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
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        rest = chars.as_str();
    }
    if total == 0 {
        return Err(format!("duration {s:?} must be longer than zero"));
    }
    Ok(total)
}

/// Validates a subject written `user:NAME`, `serviceaccount:NS:NAME` or
/// `group:NAME`, and returns it in that form. `system:serviceaccount:NS:NAME`
/// (as service accounts are listed) is accepted and rewritten.
pub fn parse_subject(s: &str) -> Result<String, String> {
    const FORMS: &str = "user:NAME, serviceaccount:NS:NAME or group:NAME";
    let sa = s
        .strip_prefix("serviceaccount:")
        .or_else(|| s.strip_prefix("system:serviceaccount:"));
    if let Some(rest) = sa {
        let (ns, name) = rest
            .split_once(':')
            .ok_or_else(|| format!("invalid subject {s:?}: expected serviceaccount:NS:NAME"))?;
        ns.parse::<Namespace>()
            .map_err(|e| format!("invalid namespace in subject {s:?}: {e}"))?;
        name.parse::<ServiceAccountName>()
            .map_err(|e| format!("invalid subject {s:?}: {e}"))?;
        return Ok(format!("serviceaccount:{ns}:{name}"));
    }
    if let Some(name) = s.strip_prefix("user:") {
        name.parse::<UserName>()
            .map_err(|e| format!("invalid subject {s:?}: {e}"))?;
        return Ok(s.to_owned());
    }
    if let Some(name) = s.strip_prefix("group:") {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'));
        if !ok {
            return Err(format!(
                "invalid subject {s:?}: group names use letters, digits and ':-_.' \
                 (e.g. group:system:authenticated)"
            ));
        }
        return Ok(s.to_owned());
    }
    Err(format!("invalid subject {s:?}: expected {FORMS}"))
}

/// Validates a namespace name.
pub fn parse_namespace(s: &str) -> Result<String, String> {
    s.parse::<Namespace>()
        .map(|n| n.as_str().to_owned())
        .map_err(|e| format!("invalid namespace {s:?}: {e}"))
}

/// Validates a user name.
pub fn parse_user(s: &str) -> Result<String, String> {
    s.parse::<UserName>()
        .map(|n| n.as_str().to_owned())
        .map_err(|e| format!("invalid user name {s:?}: {e}"))
}

/// Validates a service-account name.
pub fn parse_service_account(s: &str) -> Result<String, String> {
    s.parse::<ServiceAccountName>()
        .map(|n| n.as_str().to_owned())
        .map_err(|e| format!("invalid service account name {s:?}: {e}"))
}

/// Validates an opaque identifier (a token id) that becomes one path segment.
pub fn parse_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("invalid id {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1_800));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        for bad in [
            "", "30", "m", "1x", "-1h", "1.5h", "1h ", " 1h", "0s", "0h0m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999999999999w").is_err());
    }

    #[test]
    fn subjects() {
        assert_eq!(parse_subject("user:alice"), Ok("user:alice".into()));
        assert_eq!(
            parse_subject("serviceaccount:team:builder"),
            Ok("serviceaccount:team:builder".into())
        );
        assert_eq!(
            parse_subject("system:serviceaccount:team:builder"),
            Ok("serviceaccount:team:builder".into())
        );
        assert_eq!(
            parse_subject("group:system:authenticated"),
            Ok("group:system:authenticated".into())
        );
        for bad in [
            "alice",
            "user:",
            "user:Alice Smith",
            "serviceaccount:team",
            "serviceaccount:team:Builder",
            "serviceaccount::builder",
            "serviceaccount:team:a:b",
            "group:",
            "group:a b",
            "robot:x",
        ] {
            assert!(parse_subject(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_and_ids() {
        assert!(parse_namespace("team").is_ok());
        assert!(parse_namespace("a/b").is_err());
        assert!(parse_namespace("..").is_err());
        assert!(parse_user("alice").is_ok());
        assert!(parse_service_account("builder").is_ok());
        assert!(parse_service_account("-x").is_err());
        assert!(parse_id("01HX-abc_1").is_ok());
        for bad in ["", ".", "..", "a/b", "a?b"] {
            assert!(parse_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
