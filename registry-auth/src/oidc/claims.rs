//! Reading tokens: the cheap "is this one of our issuer's?" test, and the
//! verified claims turned into a user name and groups with kube-apiserver's
//! rules.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use serde::Deserialize;

use super::{OidcConfig, OidcRefusal};
use crate::{ExternalUserName, GroupName};

/// base64url as JWTs use it (no padding; padding tolerated).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn is_b64url(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `iss` claim, unverified, of text shaped like a compact JWS (three
/// base64url parts, the last possibly empty) of at most `max_len` bytes;
/// `None` for anything else. Costs a base64 decode and a JSON scan: it only
/// decides whether a token is ours to verify (or refuse).
pub(crate) fn unverified_issuer(token: &str, max_len: usize) -> Option<String> {
    if token.len() > max_len {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].iter().all(|p| is_b64url(p))
    {
        return None;
    }
    #[derive(Deserialize)]
    struct Issuer<'a> {
        #[serde(borrow)]
        iss: Option<Cow<'a, str>>,
    }
    let payload = B64.decode(payload).ok()?;
    let claims: Issuer<'_> = serde_json::from_slice(&payload).ok()?;
    claims.iss.map(Cow::into_owned)
}

/// The JOSE header fields read before verification.
#[derive(Debug, Deserialize)]
pub(crate) struct UnverifiedHeader {
    /// The algorithm, as text: `none` and unknown names must be refusals
    /// the log can name, not parse errors.
    pub alg: String,
    /// The key id.
    #[serde(default)]
    pub kid: Option<String>,
}

impl UnverifiedHeader {
    pub(crate) fn parse(token: &str) -> Option<Self> {
        let header = token.split('.').next()?;
        serde_json::from_slice(&B64.decode(header).ok()?).ok()
    }
}

/// A claim's value, as far as the registry reads claims.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ClaimValue {
    /// A string.
    Text(String),
    /// A list of strings.
    Texts(Vec<String>),
    /// A boolean (`email_verified`).
    Flag(bool),
    /// Anything else (numbers, objects, mixed lists, null), kept out of
    /// the way.
    Other(serde::de::IgnoredAny),
}

/// The claims of a verified token.
#[derive(Debug, Deserialize)]
pub(crate) struct VerifiedClaims {
    /// Expiry (required and validated by the JWT check; optional here so
    /// that its absence is reported as such).
    pub exp: Option<f64>,
    #[serde(flatten)]
    pub other: HashMap<String, ClaimValue>,
}

/// The user a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub name: ExternalUserName,
    pub groups: Vec<GroupName>,
}

fn prefixed(prefix: Option<&str>, value: &str) -> String {
    format!("{}{value}", prefix.unwrap_or(""))
}

/// Names the user of verified `claims` with `config`'s claims and
/// prefixes. A user name that cannot be formed fails; groups that cannot
/// be are dropped (they only ever add permissions), and so are `system:`
/// groups, which only the registry hands out.
pub(crate) fn name_user(
    config: &OidcConfig,
    claims: &VerifiedClaims,
) -> Result<Named, OidcRefusal> {
    let claim = config.username_claim.as_str();
    let value = match claims.other.get(claim) {
        Some(ClaimValue::Text(text)) => text,
        Some(_) => return Err(OidcRefusal::ClaimType(claim.to_owned())),
        None => return Err(OidcRefusal::MissingClaim(claim.to_owned())),
    };
    if claim == "email" {
        match claims.other.get("email_verified") {
            None | Some(ClaimValue::Flag(true)) => {}
            Some(ClaimValue::Text(t)) if t == "true" => {}
            Some(_) => return Err(OidcRefusal::EmailNotVerified),
        }
    }
    let name = prefixed(config.username_prefix.as_deref(), value)
        .parse::<ExternalUserName>()
        .map_err(|e| OidcRefusal::UserName(e.to_string()))?;
    let raw: &[String] = match config
        .groups_claim
        .as_deref()
        .and_then(|c| claims.other.get(c))
    {
        None => &[],
        Some(ClaimValue::Text(one)) => std::slice::from_ref(one),
        Some(ClaimValue::Texts(many)) => many,
        Some(_) => {
            let claim = config.groups_claim.clone().unwrap_or_default();
            return Err(OidcRefusal::ClaimType(claim));
        }
    };
    if raw.len() > config.limits.max_groups {
        return Err(OidcRefusal::TooManyGroups(raw.len()));
    }
    let mut groups = BTreeSet::new();
    for group in raw {
        if group.starts_with("system:") {
            continue;
        }
        match prefixed(config.groups_prefix.as_deref(), group).parse::<GroupName>() {
            Ok(g) => {
                groups.insert(g);
            }
            Err(e) => {
                tracing::info!(target: "auth", user = %name, group = %group.escape_debug(), error = %e, "OIDC group dropped: not a valid group name");
            }
        }
    }
    Ok(Named {
        name,
        groups: groups.into_iter().collect(),
    })
}
