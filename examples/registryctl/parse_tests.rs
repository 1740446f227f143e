//! Argument parsers.

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
    assert_eq!(parse_grace("0"), Ok(0));
    assert_eq!(parse_grace("0s"), Ok(0));
    assert_eq!(parse_grace("1h30m"), Ok(5400));
    assert_eq!(parse_grace("0d"), Ok(0));
    assert!(parse_grace("soon").is_err());
    // Before: accepted as 0.
    assert!(parse_grace("0smhw").is_err());
    assert!(parse_grace("0ss").is_err());
    assert!(parse_grace("").is_err());
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
fn name_tags() {
    assert!(parse_name_tag("app:v1").is_ok());
    assert!(parse_name_tag("tools/build:latest").is_ok());
    for bad in ["app", ":v1", "app:", "app:a/b"] {
        assert!(parse_name_tag(bad).is_err(), "{bad:?} accepted");
    }
}
