//! The vocabulary of registry events: what happened ([`EventType`], the
//! CloudEvents `type`) and an event as raised ([`NewEvent`]). Shared by the
//! crates that raise events (the service core), carry them into a
//! transaction (the metadata and auth stores) and deliver them.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::Namespace;

macro_rules! event_types {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// What happened: the CloudEvents `type` of an event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventType {
            $(#[doc = $doc] $variant,)*
        }

        impl EventType {
            /// Every type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The CloudEvents `type` string.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                match s {
                    $($name => Ok(EventType::$variant),)*
                    _ => Err(UnknownEventType(s.to_owned())),
                }
            }
        }
    };
}

event_types! {
    ManifestPushed => "io.registry.manifest.pushed", "A manifest was pushed (with every tag the push applied).";
    ManifestPulled => "io.registry.manifest.pulled", "A manifest was pulled (only for webhooks with `include_pulls`).";
    ManifestDeleted => "io.registry.manifest.deleted", "A manifest was deleted from a repository.";
    TagMoved => "io.registry.tag.moved", "A push moved an existing tag from another manifest.";
    TagDeleted => "io.registry.tag.deleted", "A tag was deleted.";
    ImageStreamDeleted => "io.registry.imagestream.deleted", "An ImageStream (repository) was deleted.";
    NamespaceCreated => "io.registry.namespace.created", "A namespace was created.";
    NamespaceDeleted => "io.registry.namespace.deleted", "A namespace was deleted.";
    PolicyChanged => "io.registry.namespace.policy.changed", "A namespace's policy was replaced.";
    RoleBindingCreated => "io.registry.rolebinding.created", "A role binding was created.";
    RoleBindingDeleted => "io.registry.rolebinding.deleted", "A role binding was deleted.";
    UserCreated => "io.registry.user.created", "A local user was created.";
    UserDeleted => "io.registry.user.deleted", "A local user was deleted.";
    PasswordChanged => "io.registry.user.password.changed", "A user's password was changed.";
    ServiceAccountCreated => "io.registry.serviceaccount.created", "A service account was created.";
    ServiceAccountDeleted => "io.registry.serviceaccount.deleted", "A service account was deleted.";
    TokenCreated => "io.registry.token.created", "An access token was created (never its secret).";
    TokenDeleted => "io.registry.token.deleted", "An access token was deleted.";
    PullSecretRotated => "io.registry.pullsecret.rotated", "A managed pull secret was issued or rotated.";
}

impl EventType {
    /// Whether this is a pull, which only webhooks with `include_pulls` receive.
    pub fn is_pull(self) -> bool {
        self == EventType::ManifestPulled
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that names no [`EventType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

/// An event to record with the change that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id (the CloudEvents `id`, receivers deduplicate by it).
    pub id: String,
    /// What happened.
    pub event_type: EventType,
    /// The namespace it happened in; `None` for cluster-wide changes
    /// (users), which only cluster-wide sinks receive.
    pub namespace: Option<Namespace>,
    /// What it is about (`repository[:tag]`, a user, a binding), the
    /// CloudEvents `subject`.
    pub subject: Option<String>,
    /// Who did it.
    pub actor: String,
    /// When.
    pub time: SystemTime,
    /// The event's `data` (a JSON object; never a secret).
    pub data: serde_json::Value,
}
