//! The token service from the client's side: trading a password for an
//! identity token (Docker's OAuth2 password grant with offline access) and
//! fetching the token CA.

use http::StatusCode;
use serde::Deserialize;

use super::auth::{challenge_of, refusal, success, Challenge};
use super::body::{read_within, MAX_DOCUMENT_BYTES};
use super::{Client, ClientError};

/// The path of the token CA's certificate on the registry.
const TOKEN_CA_PATH: [&str; 2] = [".well-known", "registry-token-ca.pem"];

impl Client {
    /// Trades `username` and `password` for an identity token (a refresh
    /// token): `POST` to the token realm the registry names in its Bearer
    /// challenge, `grant_type=password`, `access_type=offline`, as
    /// `client_id`. Keep the identity token instead of the password; it is
    /// accepted where the password is and can be revoked on its own.
    ///
    /// `Ok(None)` when the registry does not hand one out: no Bearer
    /// challenge, no OAuth2 form grant (404 or 405, as Distribution's
    /// token servers often answer), or no refresh token for this
    /// credential (an access token is long-lived already).
    pub async fn identity_token(
        &self,
        username: &str,
        password: &str,
        client_id: &str,
    ) -> Result<Option<String>, ClientError> {
        let url = self.url(&["v2", ""], &[]);
        let probe = self.execute(self.http().get(url)).await?;
        if probe.status() != StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        let Some(Challenge::Bearer { realm, service, .. }) = challenge_of(&probe) else {
            return Ok(None);
        };
        let realm_url = reqwest::Url::parse(&realm).map_err(|source| ClientError::InvalidUrl {
            url: realm.clone(),
            source,
        })?;
        let mut form = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", client_id),
            ("access_type", "offline"),
        ];
        if let Some(service) = &service {
            form.push(("service", service));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let request = self
            .http()
            .post(realm_url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let response = self.execute(request).await?;
        if matches!(
            response.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        #[derive(Deserialize)]
        struct Answer {
            refresh_token: Option<String>,
        }
        let body = read_within(response, MAX_DOCUMENT_BYTES).await?;
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
                url: realm_url.to_string(),
                source,
            })?;
        Ok(answer.refresh_token.filter(|t| !t.is_empty()))
    }

    /// The registry's token CA (PEM): the `rootcertbundle` of a registry
    /// that uses this one as its token server. No credentials needed.
    pub async fn token_ca_pem(&self) -> Result<String, ClientError> {
        let url = self.url(&TOKEN_CA_PATH, &[]);
        let response = success(self.execute(self.http().get(url.clone())).await?).await?;
        let pem = response
            .text()
            .await
            .map_err(|e| ClientError::transport(&url, e))?;
        if !pem.starts_with("-----BEGIN CERTIFICATE-----") {
            return Err(ClientError::Protocol {
                url: url.to_string(),
                problem: "the token CA answer is not a PEM certificate",
            });
        }
        Ok(pem)
    }
}
