//! `POST /v2/token`: Docker's OAuth2 token protocol (what containerd and
//! Docker try first). A form (`application/x-www-form-urlencoded`) with
//! `grant_type`:
//!
//! - `password`: `username` and `password` (a password, or an access or
//!   refresh token), checked by the same providers, throttling and logging
//!   as Basic credentials;
//! - `refresh_token`: `refresh_token`, a refresh token from an earlier
//!   grant;
//!
//! and `service`, `scope` (space-separated), `client_id`, and
//! `access_type=offline` to get a refresh token as well (a password grant
//! only: the other credentials are long-lived already).

use crate::http::body::SmallBody;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use registry_auth::{Credentials, Scope};

use super::token_endpoint::{answer, client_id};
use super::{authenticate_credentials, failed, Authenticated, Origin, Rejected};
use crate::http::error::{ApiError, ApiResult};
use crate::service::{Registry, RegistryError, TokenRequest};

/// The largest form accepted: credentials and scopes, not uploads.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The parsed form: each field once.
#[derive(Default)]
struct Form {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    service: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    access_type: Option<String>,
}

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, RegistryError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(RegistryError::invalid(
                "content-type",
                "the token form must be application/x-www-form-urlencoded",
            ));
        }
        if body.len() > MAX_FORM_BYTES {
            return Err(RegistryError::invalid(
                "body",
                format!("the token form is larger than {MAX_FORM_BYTES} bytes"),
            ));
        }
        let mut form = Form::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            let slot = match &*key {
                "grant_type" => &mut form.grant_type,
                "username" => &mut form.username,
                "password" => &mut form.password,
                "refresh_token" => &mut form.refresh_token,
                "service" => &mut form.service,
                "scope" => &mut form.scope,
                "client_id" => &mut form.client_id,
                "access_type" => &mut form.access_type,
                // OAuth2 lets clients send more; nothing else matters here.
                _ => continue,
            };
            if slot.is_some() {
                return Err(RegistryError::invalid(
                    key.into_owned(),
                    "given more than once",
                ));
            }
            *slot = Some(value.into_owned());
        }
        Ok(form)
    }
}

fn required(value: Option<String>, name: &str, grant: &str) -> Result<String, RegistryError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| RegistryError::invalid(name, format!("grant_type={grant} needs it")))
}

/// The `POST /v2/token` handler (behind the primary-credentials layer:
/// the credentials are in the form, so the caller there is anonymous).
pub(crate) async fn token_form(
    State(registry): State<Registry>,
    origin: Origin,
    headers: HeaderMap,
    SmallBody(body): SmallBody,
) -> ApiResult<Response> {
    let state = registry.auth().ok_or(RegistryError::AccessControlOff)?;
    let form = Form::parse(&headers, &body)?;
    let scopes =
        Scope::parse_all(form.scope.as_deref()).map_err(|e| RegistryError::invalid("scope", e))?;
    let mut request = TokenRequest::new(form.service, scopes);
    let offline = match form.access_type.as_deref() {
        None | Some("online") => false,
        Some("offline") => true,
        Some(other) => {
            return Err(RegistryError::invalid(
                "access_type",
                format!("{other:?} is neither online nor offline"),
            )
            .into())
        }
    };
    let peer = origin.client_ip(&state.settings.trusted_proxies);
    let grant = form.grant_type.unwrap_or_default();
    let authenticated = match grant.as_str() {
        "password" => {
            let credentials = Credentials::Basic {
                user: required(form.username, "username", "password")?,
                password: required(form.password, "password", "password")?,
            };
            if offline {
                let client = required(form.client_id, "client_id", "password")?;
                request = request.offline(client_id(&client)?);
            }
            authenticate_credentials(state, &credentials, peer).await
        }
        "refresh_token" => {
            let presented = required(form.refresh_token, "refresh_token", "refresh_token")?;
            match state.refresh_tokens.redeem(&presented).await {
                Ok((identity, source)) => Ok(Authenticated {
                    caller: crate::service::Caller::new(identity),
                    source,
                }),
                Err(e) => Err(failed("(refresh token)", peer, e)),
            }
        }
        "" => {
            return Err(RegistryError::invalid("grant_type", "missing").into());
        }
        other => {
            return Err(RegistryError::invalid(
                "grant_type",
                format!(
                    "{:?} is not supported (password, refresh_token)",
                    other.chars().take(32).collect::<String>()
                ),
            )
            .into())
        }
    };
    let Authenticated { caller, source } = match authenticated {
        Ok(a) => a,
        Err(Rejected::Invalid(message)) => return Err(ApiError::unauthenticated(message)),
        Err(rejected) => return Ok(super::layer::rejection(rejected)),
    };
    let granted = registry
        .issue_token(caller.identity(), source, request)
        .await?;
    Ok(answer(&granted, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        h
    }

    #[test]
    fn forms_parse_and_refuse_repeats_and_other_types() {
        let f = Form::parse(
            &form_headers(),
            b"grant_type=password&username=a%40b&password=p%26w&scope=x+y&extra=1",
        )
        .unwrap();
        assert_eq!(f.grant_type.as_deref(), Some("password"));
        assert_eq!(f.username.as_deref(), Some("a@b"));
        assert_eq!(f.password.as_deref(), Some("p&w"));
        assert_eq!(f.scope.as_deref(), Some("x y"));
        assert!(Form::parse(&form_headers(), b"password=a&password=b").is_err());
        assert!(Form::parse(&HeaderMap::new(), b"grant_type=password").is_err());
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        assert!(Form::parse(&form_headers(), &big).is_err());
    }
}
