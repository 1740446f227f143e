//! The SQL of the token records of the auth store (migration
//! `0012_tokens.sql`): refresh tokens, the token CA and token-signing keys.

use registry_auth::token::PrivateKeyDer;
use registry_auth::{
    AccessTokenId, KeyId, RefreshToken, Subject, TokenCa, TokenHash, TokenSigningKey,
};
use time::OffsetDateTime;

use super::auth::{corrupt, from_nanos, from_nanos_opt, inserted, parse, to_nanos, to_nanos_opt};
use super::auth::{Error, Result};
use super::connections::{Readers, Slot};

/// The `refresh_tokens` columns in [`RefreshRow`] order.
macro_rules! refresh_columns {
    () => {
        "id, hash, owner, provider, groups, client_id, created, expires, last_used"
    };
}

/// A `refresh_tokens` row.
type RefreshRow = (
    String,
    Vec<u8>,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

/// Why a stored hash is not a SHA-256.
#[derive(Debug, thiserror::Error)]
#[error("expected 32 bytes, found {0}")]
struct HashLength(usize);

fn refresh_token(row: RefreshRow) -> Result<RefreshToken> {
    let (id, hash, owner, provider, groups, client_id, created, expires, last_used) = row;
    let hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("refresh_tokens.hash", HashLength(hash.len())))?;
    Ok(RefreshToken {
        id: parse("refresh_tokens.id", &id)?,
        hash: TokenHash::from_bytes(hash),
        owner: parse("refresh_tokens.owner", &owner)?,
        provider,
        groups: serde_json::from_str(&groups).map_err(|e| corrupt("refresh_tokens.groups", e))?,
        client_id: parse("refresh_tokens.client_id", &client_id)?,
        created: from_nanos("refresh_tokens.created", created)?,
        expires: from_nanos_opt("refresh_tokens.expires", expires)?,
        last_used: from_nanos_opt("refresh_tokens.last_used", last_used)?,
    })
}

pub(super) async fn create_refresh_token(writer: &Slot, t: &RefreshToken) -> Result<()> {
    let groups =
        serde_json::to_string(&t.groups).map_err(|e| corrupt("refresh_tokens.groups", e))?;
    let result = sqlx::query(concat!(
        "INSERT INTO refresh_tokens (",
        refresh_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(t.id.to_string())
    .bind(t.hash.as_bytes().as_slice())
    .bind(t.owner.to_string())
    .bind(&t.provider)
    .bind(groups)
    .bind(t.client_id.as_str())
    .bind(to_nanos(t.created)?)
    .bind(to_nanos_opt(t.expires)?)
    .bind(to_nanos_opt(t.last_used)?)
    .execute(writer)
    .await;
    // An id or hash collision is reported by id, never by hash.
    inserted(result, |_| format!("refresh token {}", t.id))
}

pub(super) async fn find_refresh_token_by_hash(
    reader: &Readers,
    hash: &TokenHash,
) -> Result<Option<RefreshToken>> {
    let row: Option<RefreshRow> = sqlx::query_as(concat!(
        "SELECT ",
        refresh_columns!(),
        " FROM refresh_tokens WHERE hash = ?"
    ))
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(reader)
    .await?;
    row.map(refresh_token).transpose()
}

pub(super) async fn list_refresh_tokens(
    reader: &Readers,
    owner: Option<&Subject>,
) -> Result<Vec<RefreshToken>> {
    let rows: Vec<RefreshRow> = match owner {
        None => {
            sqlx::query_as(concat!(
                "SELECT ",
                refresh_columns!(),
                " FROM refresh_tokens ORDER BY created, id"
            ))
            .fetch_all(reader)
            .await?
        }
        Some(owner) => {
            sqlx::query_as(concat!(
                "SELECT ",
                refresh_columns!(),
                " FROM refresh_tokens WHERE owner = ? ORDER BY created, id"
            ))
            .bind(owner.to_string())
            .fetch_all(reader)
            .await?
        }
    };
    rows.into_iter().map(refresh_token).collect()
}

pub(super) async fn delete_refresh_token(
    writer: impl sqlx::SqliteExecutor<'_>,
    id: &AccessTokenId,
) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM refresh_tokens WHERE id = ?")
        .bind(id.to_string())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("refresh token {id}")));
    }
    Ok(())
}

pub(super) async fn touch_refresh_token(
    writer: &Slot,
    id: &AccessTokenId,
    at: OffsetDateTime,
) -> Result<()> {
    // Callers touch at most once a minute per token (see RefreshTokens);
    // max(): a concurrent touch with a later time is never overwritten.
    let updated = sqlx::query(
        "UPDATE refresh_tokens SET last_used = max(coalesce(last_used, ?1), ?1) WHERE id = ?2",
    )
    .bind(to_nanos(at)?)
    .bind(id.to_string())
    .execute(writer)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound(format!("refresh token {id}")));
    }
    Ok(())
}

pub(super) async fn token_ca(reader: &Readers) -> Result<Option<TokenCa>> {
    let row: Option<(Vec<u8>, Vec<u8>, i64)> =
        sqlx::query_as("SELECT certificate, private_key, created FROM token_ca WHERE id = 1")
            .fetch_optional(reader)
            .await?;
    row.map(|(certificate, key, created)| {
        Ok(TokenCa {
            certificate,
            private_key: PrivateKeyDer::from_pkcs8(key),
            created: from_nanos("token_ca.created", created)?,
        })
    })
    .transpose()
}

pub(super) async fn create_token_ca(writer: &Slot, ca: &TokenCa) -> Result<()> {
    let result = sqlx::query(
        "INSERT INTO token_ca (id, certificate, private_key, created) VALUES (1, ?, ?, ?)",
    )
    .bind(ca.certificate.as_slice())
    .bind(ca.private_key.as_bytes())
    .bind(to_nanos(ca.created)?)
    .execute(writer)
    .await;
    inserted(result, |_| "token CA".to_owned())
}

/// A `token_signing_keys` row.
type KeyRow = (String, Vec<u8>, Vec<u8>, i64, i64, i64);

fn signing_key(row: KeyRow) -> Result<TokenSigningKey> {
    let (kid, certificate, key, created, signs_from, expires) = row;
    Ok(TokenSigningKey {
        kid: parse::<KeyId>("token_signing_keys.kid", &kid)?,
        certificate,
        private_key: PrivateKeyDer::from_pkcs8(key),
        created: from_nanos("token_signing_keys.created", created)?,
        signs_from: from_nanos("token_signing_keys.signs_from", signs_from)?,
        expires: from_nanos("token_signing_keys.expires", expires)?,
    })
}

pub(super) async fn add_token_signing_key(writer: &Slot, k: &TokenSigningKey) -> Result<()> {
    let result = sqlx::query(
        "INSERT INTO token_signing_keys (kid, certificate, private_key, created, signs_from, \
         expires) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(k.kid.as_str())
    .bind(k.certificate.as_slice())
    .bind(k.private_key.as_bytes())
    .bind(to_nanos(k.created)?)
    .bind(to_nanos(k.signs_from)?)
    .bind(to_nanos(k.expires)?)
    .execute(writer)
    .await;
    inserted(result, |_| format!("token-signing key {}", k.kid))
}

pub(super) async fn list_token_signing_keys(reader: &Readers) -> Result<Vec<TokenSigningKey>> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, certificate, private_key, created, signs_from, expires \
         FROM token_signing_keys ORDER BY signs_from, kid",
    )
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(signing_key).collect()
}

pub(super) async fn delete_token_signing_key(writer: &Slot, kid: &KeyId) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM token_signing_keys WHERE kid = ?")
        .bind(kid.as_str())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("token-signing key {kid}")));
    }
    Ok(())
}
