//! Sending requests with the right credentials: the primary credentials on
//! the admin and Image APIs, the Docker token flow on the distribution API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{header, StatusCode};
use reqwest::{RequestBuilder, Response, Url};
use serde::Deserialize;

use super::body::{read_prefix, read_within, MAX_DOCUMENT_BYTES, MAX_ERROR_BYTES};
use super::{Client, ClientError, Credentials};

/// The token service a registry named in a Bearer challenge, and the
/// registry tokens obtained from it, by scope.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    state: Mutex<TokenState>,
}

#[derive(Debug, Default)]
struct TokenState {
    realm: Option<Realm>,
    tokens: HashMap<String, Kept>,
}

/// A registry token kept for a scope.
#[derive(Debug, Clone)]
struct Kept {
    token: String,
    /// When it stops being used (a little before the token service said).
    expires: Instant,
    /// When it was kept: the oldest goes first when the cache is full.
    kept: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Realm {
    url: String,
    service: Option<String>,
}

/// Most tokens a client keeps: one per scope (a proxy asks for one per
/// upstream repository), so a bound; past it the expired ones go, else
/// the oldest (it is fetched again when needed).
const MAX_TOKENS: usize = 1024;

/// How long a token lives when the token service does not say
/// (`expires_in`): 60 s, as the Docker token specification says.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A token is not used in its last seconds: a request sent with it must
/// still find it valid.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

impl TokenState {
    /// Keeps `token` for `scope` until `lifetime` from now, within
    /// [`MAX_TOKENS`].
    fn keep(&mut self, scope: &str, token: String, lifetime: Duration) {
        let now = Instant::now();
        if self.tokens.len() >= MAX_TOKENS && !self.tokens.contains_key(scope) {
            self.tokens.retain(|_, kept| kept.expires > now);
        }
        if self.tokens.len() >= MAX_TOKENS && !self.tokens.contains_key(scope) {
            let oldest = self
                .tokens
                .iter()
                .min_by_key(|(_, kept)| kept.kept)
                .map(|(scope, _)| scope.clone());
            if let Some(oldest) = oldest {
                self.tokens.remove(&oldest);
            }
        }
        let expires = now + lifetime.saturating_sub(EXPIRY_MARGIN);
        self.tokens.insert(
            scope.to_owned(),
            Kept {
                token,
                expires,
                kept: now,
            },
        );
    }

    /// The token kept for `scope`, unless it expired (then it goes).
    fn token(&mut self, scope: &str) -> Option<String> {
        let kept = self.tokens.get(scope)?;
        if kept.expires <= Instant::now() {
            self.tokens.remove(scope);
            return None;
        }
        Some(kept.token.clone())
    }
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, TokenState> {
        // The state is two maps updated in one step: a panic elsewhere
        // cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        error: Option<String>,
    },
    Basic,
}

/// Parses `Bearer realm="…",service="…",scope="a:b:pull,push"` (quoted
/// values may hold commas) or `Basic realm="…"`.
fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut rest = rest.trim_start();
    while let Some((key, tail)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = match tail.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => tail.split_at(tail.find(',').unwrap_or(tail.len())),
        };
        params.insert(key, value.to_owned());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
        error: params.remove("error"),
    })
}

pub(super) fn challenge_of(response: &Response) -> Option<Challenge> {
    response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .next()
}

/// The error answer `response`, read and sorted by meaning.
pub(crate) async fn refusal(response: Response) -> ClientError {
    let status = response.status();
    let url = response.url().clone();
    match read_prefix(response, MAX_ERROR_BYTES).await {
        Ok(body) => ClientError::from_answer(status, &body),
        Err(e) => ClientError::transport(&url, e),
    }
}

/// `response` if it is a success, else its error.
pub(crate) async fn success(response: Response) -> Result<Response, ClientError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(refusal(response).await)
    }
}

impl Client {
    pub(super) async fn execute(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let request = request
            .build()
            .map_err(|source| ClientError::Setup { source })?;
        let url = request.url().clone();
        self.inner
            .http
            .execute(request)
            .await
            .map_err(|e| ClientError::transport(&url, e))
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    fn credentials(&self) -> Option<&Credentials> {
        self.inner.credentials.as_ref()
    }

    /// An admin or Image API request with the primary credentials; the
    /// answer if it is a success.
    pub(crate) async fn primary(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let mut request = build(self.http());
        if let Some(credentials) = self.credentials() {
            request = credentials.apply(request);
        }
        success(self.execute(request).await?).await
    }

    /// A distribution API request needing `scope` (`repository:team/app:pull`,
    /// `registry:catalog:*`, or empty for `/v2/`), through the token flow;
    /// the answer if it is a success. `build` may be called twice.
    pub(crate) async fn distribution(
        &self,
        scope: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let (mut token, mut fresh) = match self.token_for(scope).await? {
            Some((token, fresh)) => (Some(token), fresh),
            None => (None, false),
        };
        let mut basic = false;
        loop {
            let mut request = build(self.http());
            match (&token, basic, self.credentials()) {
                (Some(token), _, _) => request = request.bearer_auth(token),
                (None, true, Some(credentials)) => request = credentials.apply(request),
                _ => {}
            }
            let response = self.execute(request).await?;
            if response.status() != StatusCode::UNAUTHORIZED || basic {
                return success(response).await;
            }
            match challenge_of(&response) {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: wanted,
                    error,
                }) => {
                    if fresh {
                        return Err(self.insufficient(response, error.as_deref()).await);
                    }
                    let realm = Realm {
                        url: realm,
                        service,
                    };
                    self.inner.tokens.lock().realm = Some(realm.clone());
                    let (fetched, lifetime) = self
                        .fetch_token(&realm, wanted.as_deref().unwrap_or(scope))
                        .await?;
                    self.inner
                        .tokens
                        .lock()
                        .keep(scope, fetched.clone(), lifetime);
                    token = Some(fetched);
                    fresh = true;
                }
                // A server that asks for credentials without saying how
                // gets the primary ones, once.
                Some(Challenge::Basic) | None
                    if token.is_none() && self.credentials().is_some() =>
                {
                    basic = true;
                }
                _ => return Err(refusal(response).await),
            }
        }
    }

    /// Like [`Client::distribution`] for a request that can be sent only
    /// once (a streamed body), made after one of the same scope went through
    /// [`Client::distribution`] (which learnt the realm, if there is one):
    /// the token is obtained before it is sent.
    pub(crate) async fn distribution_once(
        &self,
        scope: &str,
        request: RequestBuilder,
    ) -> Result<Response, ClientError> {
        let mut request = request;
        match self.token_for(scope).await? {
            Some((token, _)) => request = request.bearer_auth(token),
            None => {
                if let Some(credentials) = self.credentials() {
                    request = credentials.apply(request);
                }
            }
        }
        let response = self.execute(request).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let error = match challenge_of(&response) {
                Some(Challenge::Bearer { error, .. }) => error,
                _ => None,
            };
            return Err(self.insufficient(response, error.as_deref()).await);
        }
        success(response).await
    }

    /// A 401 answered to a token just obtained: with credentials and
    /// `insufficient_scope`, the caller is known and not allowed (Denied).
    async fn insufficient(&self, response: Response, error: Option<&str>) -> ClientError {
        match refusal(response).await {
            ClientError::Unauthorized { code, message }
                if error == Some("insufficient_scope") && self.credentials().is_some() =>
            {
                ClientError::Denied { code, message }
            }
            other => other,
        }
    }

    /// The token for `scope` kept from before, or a new one when the realm
    /// is known (`true`: just obtained); `None` before any challenge.
    async fn token_for(&self, scope: &str) -> Result<Option<(String, bool)>, ClientError> {
        let realm = {
            let mut state = self.inner.tokens.lock();
            if let Some(token) = state.token(scope) {
                return Ok(Some((token, false)));
            }
            match &state.realm {
                Some(realm) => realm.clone(),
                None => return Ok(None),
            }
        };
        let (token, lifetime) = self.fetch_token(&realm, scope).await?;
        self.inner
            .tokens
            .lock()
            .keep(scope, token.clone(), lifetime);
        Ok(Some((token, true)))
    }

    /// `GET realm?service=…&scope=…` with the credentials: the token and
    /// how long it lives.
    async fn fetch_token(
        &self,
        realm: &Realm,
        scope: &str,
    ) -> Result<(String, Duration), ClientError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let mut url = Url::parse(&realm.url).map_err(|source| ClientError::InvalidUrl {
            url: realm.url.clone(),
            source,
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &realm.service {
                query.append_pair("service", service);
            }
            for scope in scope.split(' ').filter(|s| !s.is_empty()) {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.http().get(url.clone());
        if let Some(credentials) = self.credentials() {
            request = credentials.apply(request);
        }
        let response = success(self.execute(request).await?).await?;
        let body = read_within(response, MAX_DOCUMENT_BYTES).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
                url: url.to_string(),
                source,
            })?;
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or(ClientError::Protocol {
                url: url.to_string(),
                problem: "the token answer holds no token",
            })?;
        Ok((token, lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://r:1/v2/token",service="registry",scope="repository:a/b:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "http://r:1/v2/token".into(),
                service: Some("registry".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="https://auth.example/token", service=hub"#),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("hub".into()),
                scope: None,
                error: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn tokens_kept_are_bounded() {
        let mut state = TokenState::default();
        let hour = Duration::from_secs(3600);
        // Before: one entry per scope ever asked for, never evicted.
        for i in 0..(MAX_TOKENS * 3) {
            state.keep(&format!("repository:r{i}:pull"), format!("t{i}"), hour);
        }
        assert_eq!(state.tokens.len(), MAX_TOKENS);
        let last = format!("repository:r{}:pull", MAX_TOKENS * 3 - 1);
        let expected = format!("t{}", MAX_TOKENS * 3 - 1);
        assert_eq!(state.token(&last), Some(expected));
        // The oldest went first: the most recent ones are all there.
        for i in (MAX_TOKENS * 2)..(MAX_TOKENS * 3) {
            assert!(state.tokens.contains_key(&format!("repository:r{i}:pull")));
        }
        // A scope kept already is replaced in place.
        state.keep(&last, "new".to_owned(), hour);
        assert_eq!(state.tokens.len(), MAX_TOKENS);
        assert_eq!(state.token(&last).as_deref(), Some("new"));
    }

    #[test]
    fn expired_tokens_are_not_used_and_go_first() {
        let mut state = TokenState::default();
        let hour = Duration::from_secs(3600);
        // Within the margin: expired as soon as kept.
        state.keep("repository:old:pull", "old".into(), EXPIRY_MARGIN);
        // Before: an expired token was sent (and refused) again and again.
        assert_eq!(state.token("repository:old:pull"), None);
        assert!(state.tokens.is_empty());
        state.keep("repository:expired:pull", "x".into(), Duration::ZERO);
        for i in 1..MAX_TOKENS {
            state.keep(&format!("repository:r{i}:pull"), format!("t{i}"), hour);
        }
        assert_eq!(state.tokens.len(), MAX_TOKENS);
        // Full: the expired one goes, not the oldest live one.
        state.keep("repository:new:pull", "new".into(), hour);
        assert_eq!(state.tokens.len(), MAX_TOKENS);
        assert!(!state.tokens.contains_key("repository:expired:pull"));
        assert_eq!(state.token("repository:r1:pull").as_deref(), Some("t1"));
    }
}
