//! The CloudEvents 1.0 JSON document (structured mode) of a recorded event,
//! and the signature of a delivery's body.

use hmac::{KeyInit, Mac};
use registry_storage::EventRecord;
use serde::{Deserialize, Serialize};

/// The header carrying a delivery's signature:
/// `sha256=<hex HMAC-SHA256 of the body, keyed with the webhook's secret>`.
pub const SIGNATURE_HEADER: &str = "X-Registry-Signature-256";

/// An event as delivered (`Content-Type: application/cloudevents+json`)
/// and as the audit trail lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique per event: receivers deduplicate by it.
    pub id: String,
    /// The registry's public URL.
    pub source: String,
    /// What happened (`io.registry.manifest.pushed`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When (RFC 3339).
    pub time: String,
    /// What it is about (`repository[:tag]`, a user, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The details: namespace, repository, tags, digest, media type, size,
    /// actor, request id, as the type has them.
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// The document of a recorded event, with `source` as its source.
    pub fn from_record(record: &EventRecord, source: &str) -> Self {
        let e = &record.event;
        let time = time::OffsetDateTime::from(e.time)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        CloudEvent {
            specversion: "1.0".to_owned(),
            id: e.id.clone(),
            source: source.to_owned(),
            event_type: e.event_type.as_str().to_owned(),
            time,
            subject: e.subject.clone(),
            datacontenttype: "application/json".to_owned(),
            data: e.data.clone(),
        }
    }
}

/// The value of [`SIGNATURE_HEADER`] for `body` signed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
