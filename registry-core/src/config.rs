//! The subset of an OCI / Docker image configuration the Image API shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One entry of an image's build history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryEntry {
    /// When the step ran (RFC 3339 as written by the builder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that produced the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step produced no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Runtime configuration subset (`config` in the image config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// Image labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Image configuration fields the registry reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Creation time as written by the builder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Runtime configuration (labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RuntimeConfig>,
    /// Build history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// Why a config blob could not be read.
#[derive(Debug, thiserror::Error)]
#[error("image config is not valid JSON: {0}")]
pub struct ImageConfigError(#[from] serde_json::Error);

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageConfigError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The image's labels (empty when none).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_style_config() {
        let c = ImageConfig::parse(
            br#"{"architecture":"arm64","variant":"v8","os":"linux","created":"2024-01-01T00:00:00Z",
                "author":"me","config":{"Labels":{"a":"b"},"Env":["X=1"]},
                "rootfs":{"type":"layers","diff_ids":[]},
                "history":[{"created_by":"RUN x","empty_layer":true}]}"#,
        )
        .unwrap();
        assert_eq!(c.architecture, "arm64");
        assert_eq!(c.variant.as_deref(), Some("v8"));
        assert_eq!(c.labels()["a"], "b");
        assert!(c.history[0].empty_layer);
        assert!(ImageConfig::parse(b"[").is_err());
    }
}
