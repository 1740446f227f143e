//! Search filters with the login's values in them, escaped (RFC 4515) so
//! that whatever a client sends as a user name is matched as one literal
//! value and never read as filter syntax.

use std::borrow::Cow;

/// Escapes `value` for use as an assertion value in a search filter (RFC
/// 4515 section 3): `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`,
/// `\5c` and `\00`; everything else, UTF-8 included, stays as it is.
pub fn escape_filter_value(value: &str) -> Cow<'_, str> {
    ldap3::ldap_escape(value)
}

/// Why a filter template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterTemplateError {
    /// The template does not contain a placeholder it must contain.
    #[error("filter {template:?} must contain {placeholder}")]
    MissingPlaceholder {
        /// The template.
        template: String,
        /// What it lacks (`{username}`, or `{dn}` or `{username}`).
        placeholder: &'static str,
    },
    /// The template uses a placeholder that has no value where it is used.
    #[error("filter {template:?} cannot use {placeholder} (only {allowed})")]
    UnknownPlaceholder {
        /// The template.
        template: String,
        /// The placeholder.
        placeholder: &'static str,
        /// The placeholders this filter may use.
        allowed: &'static str,
    },
    /// With values filled in, the template is not a valid search filter.
    #[error("filter {template:?} is not a valid LDAP search filter (RFC 4515)")]
    Invalid {
        /// The template.
        template: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Username,
    Dn,
}

/// A filter template such as `(uid={username})` or `(member={dn})`,
/// checked once and rendered per login in one pass (a value that contains
/// `{dn}` is never expanded again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterTemplate {
    parts: Vec<Part>,
}

const USERNAME: &str = "{username}";
const DN: &str = "{dn}";

impl FilterTemplate {
    /// The user search filter: `{username}` required, `{dn}` refused.
    pub(crate) fn user(template: &str) -> Result<Self, FilterTemplateError> {
        let parsed = Self::parse(template);
        if parsed.parts.contains(&Part::Dn) {
            return Err(FilterTemplateError::UnknownPlaceholder {
                template: template.into(),
                placeholder: DN,
                allowed: USERNAME,
            });
        }
        if !parsed.parts.contains(&Part::Username) {
            return Err(FilterTemplateError::MissingPlaceholder {
                template: template.into(),
                placeholder: USERNAME,
            });
        }
        parsed.validated(template)
    }

    /// The group search filter: `{dn}` (the user's entry) and/or
    /// `{username}` (the name logged in with), at least one.
    pub(crate) fn group(template: &str) -> Result<Self, FilterTemplateError> {
        let parsed = Self::parse(template);
        if !parsed.parts.contains(&Part::Dn) && !parsed.parts.contains(&Part::Username) {
            return Err(FilterTemplateError::MissingPlaceholder {
                template: template.into(),
                placeholder: "{dn} or {username}",
            });
        }
        parsed.validated(template)
    }

    fn parse(template: &str) -> Self {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while !rest.is_empty() {
            let (part, len) = if rest.starts_with(USERNAME) {
                (Some(Part::Username), USERNAME.len())
            } else if rest.starts_with(DN) {
                (Some(Part::Dn), DN.len())
            } else {
                let c = rest.chars().next().unwrap_or_default();
                text.push(c);
                (None, c.len_utf8())
            };
            if let Some(part) = part {
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(part);
            }
            rest = &rest[len..];
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        FilterTemplate { parts }
    }

    /// Refuses a template that does not parse with sample values in it.
    fn validated(self, template: &str) -> Result<Self, FilterTemplateError> {
        let sample = self.render("user", "uid=user,dc=example");
        if ldap3::parse_filter(&sample).is_err() {
            return Err(FilterTemplateError::Invalid {
                template: template.into(),
            });
        }
        Ok(self)
    }

    /// The filter for `username` (and the user's entry `dn`), each value
    /// escaped.
    pub(crate) fn render(&self, username: &str, dn: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Username => out.push_str(&escape_filter_value(username)),
                Part::Dn => out.push_str(&escape_filter_value(dn)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use lber::common::TagClass;
    use lber::structures::{OctetString, Sequence, Tag};
    use proptest::prelude::*;

    use super::*;

    /// (attribute, value) of one equality match.
    type Equality = (Vec<u8>, Vec<u8>);

    const EQUALITY: u64 = 3;
    const AND: u64 = 0;
    const OR: u64 = 1;

    /// The (attribute, value) of every item of a parsed filter, failing on
    /// anything but equality matches inside and/or: a substring, presence
    /// or other item means a value was read as syntax.
    fn equalities(tag: &Tag, out: &mut Vec<Equality>) -> Result<(), String> {
        match tag {
            Tag::Sequence(Sequence {
                class: TagClass::Context,
                id: EQUALITY,
                inner,
            }) => match inner.as_slice() {
                [Tag::OctetString(OctetString { inner: attr, .. }), Tag::OctetString(OctetString { inner: value, .. })] =>
                {
                    out.push((attr.clone(), value.clone()));
                    Ok(())
                }
                other => Err(format!("odd equality item {other:?}")),
            },
            Tag::Sequence(Sequence {
                class: TagClass::Context,
                id: AND | OR,
                inner,
            }) => inner.iter().try_for_each(|t| equalities(t, out)),
            other => Err(format!("not an equality match: {other:?}")),
        }
    }

    fn values_of(filter: &str) -> Result<Vec<Equality>, String> {
        let tag = ldap3::parse_filter(filter).map_err(|()| format!("unparsable: {filter:?}"))?;
        let mut out = Vec::new();
        equalities(&tag, &mut out)?;
        Ok(out)
    }

    /// Decodes an RFC 4515 value independently of ldap3's parser.
    fn unescape(escaped: &str) -> Vec<u8> {
        let bytes = escaped.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn injection_attempts_stay_literal() {
        let user = FilterTemplate::user("(uid={username})").unwrap();
        for (name, filter) in [
            ("*", r"(uid=\2a)"),
            ("admin)(uid=*", r"(uid=admin\29\28uid=\2a)"),
            ("*)(|(uid=*", r"(uid=\2a\29\28|\28uid=\2a)"),
            ("a\0b", r"(uid=a\00b)"),
            (r"back\slash", r"(uid=back\5cslash)"),
            ("émile", "(uid=émile)"),
            ("{dn}", "(uid={dn})"),
        ] {
            assert_eq!(user.render(name, "ignored"), filter);
            assert_eq!(
                values_of(filter).unwrap(),
                [(b"uid".to_vec(), name.as_bytes().to_vec())]
            );
        }
        // Unescaped, the first two would be a presence test and an OR.
        assert!(values_of("(uid=*)").is_err());
    }

    #[test]
    fn group_filter_takes_dn_and_username_in_one_pass() {
        let group = FilterTemplate::group("(|(member={dn})(memberUid={username}))").unwrap();
        assert_eq!(
            group.render("{dn}", r"uid=x\2c,ou=people"),
            r"(|(member=uid=x\5c2c,ou=people)(memberUid={dn}))"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(FilterTemplate::user("(uid=alice)").is_err());
        assert!(FilterTemplate::user("(member={dn})").is_err());
        assert!(FilterTemplate::user("(uid={username}").is_err());
        assert!(
            FilterTemplate::user("uid={username}").is_ok(),
            "RFC 4515 allows a bare item"
        );
        assert!(FilterTemplate::user("(&(objectClass=person)(uid={username}))").is_ok());
        assert!(FilterTemplate::group("(objectClass=groupOfNames)").is_err());
        assert!(FilterTemplate::group("(member={dn})").is_ok());
        assert!(FilterTemplate::group("(memberUid={username})").is_ok());
        let e = FilterTemplate::user("(uid=alice)").unwrap_err();
        assert!(e.to_string().contains("{username}"), "{e}");
    }

    /// User names as a client may send them: any unicode, filter
    /// metacharacters, NUL, long.
    fn names() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[*()\\\\\u{0}a-z{}=&|!~<>:,. é日\u{1F600}]{0,64}",
            // Oversized: a short piece of metacharacters and unicode,
            // repeated to a few kilobytes.
            ("[*()\\\\\u{0}a-zé日\u{1F600}]{1,16}", 128..512usize)
                .prop_map(|(piece, n)| piece.repeat(n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn any_name_is_exactly_one_literal_value(name in names()) {
            let user = FilterTemplate::user("(uid={username})").unwrap();
            let filter = user.render(&name, "");
            let values = values_of(&filter).map_err(TestCaseError::fail)?;
            prop_assert_eq!(values, vec![(b"uid".to_vec(), name.as_bytes().to_vec())]);
            // No metacharacter survives unescaped.
            let escaped = escape_filter_value(&name);
            prop_assert!(!escaped.contains(['*', '(', ')', '\0']));
            prop_assert_eq!(unescape(&escaped), name.as_bytes().to_vec());
        }

        #[test]
        fn compound_filters_keep_their_shape(name in names(), dn in names()) {
            let user = FilterTemplate::user(
                "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))",
            ).unwrap();
            let values = values_of(&user.render(&name, &dn)).map_err(TestCaseError::fail)?;
            let n = name.as_bytes().to_vec();
            prop_assert_eq!(values, vec![
                (b"objectClass".to_vec(), b"inetOrgPerson".to_vec()),
                (b"uid".to_vec(), n.clone()),
                (b"mail".to_vec(), n),
            ]);
            let group = FilterTemplate::group("(|(member={dn})(memberUid={username}))").unwrap();
            let values = values_of(&group.render(&name, &dn)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(values, vec![
                (b"member".to_vec(), dn.as_bytes().to_vec()),
                (b"memberUid".to_vec(), name.as_bytes().to_vec()),
            ]);
        }
    }
}
