//! Manifests: Docker's schema 2 and OCI image manifests, Docker's manifest lists and
//! OCI indexes, and choosing a platform from a list.

use serde::{Deserialize, Serialize};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What a pull asks for, in order of preference.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A manifest list or OCI index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// A fetched manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Reads a manifest by its media type (the response's Content-Type, or the
    /// document's own `mediaType` when the header says nothing useful).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Manifest, ManifestError> {
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        let own = doc.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let kind = if [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX].contains(&ct) {
            ct
        } else if !own.is_empty() {
            own
        } else if doc.get("manifests").is_some() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        };
        let bad = |e: serde_json::Error| ManifestError::Invalid(e.to_string());
        match kind {
            DOCKER_MANIFEST | OCI_MANIFEST => {
                Ok(Manifest::Image(serde_json::from_value(doc).map_err(bad)?))
            }
            DOCKER_LIST | OCI_INDEX => {
                Ok(Manifest::Index(serde_json::from_value(doc).map_err(bad)?))
            }
            other => Err(ManifestError::MediaType(other.to_string())),
        }
    }
}

/// Parses `os/arch[/variant]`.
pub fn parse_platform(s: &str) -> Option<Platform> {
    let mut p = s.split('/');
    let os = p.next().filter(|s| !s.is_empty())?.to_string();
    let architecture = p.next().filter(|s| !s.is_empty())?.to_string();
    let variant = p.next().map(String::from);
    if p.next().is_some() {
        return None;
    }
    Some(Platform {
        architecture,
        os,
        variant,
    })
}

/// The entry of an index for `want` (a variant matches when not asked for).
pub fn select<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.architecture
                && (want.variant.is_none() || p.variant == want.variant)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_indexes_parse_and_select() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let Manifest::Index(i) = Manifest::parse("application/json", idx).unwrap() else {
            panic!()
        };
        assert_eq!(
            select(&i, &parse_platform("linux/amd64").unwrap())
                .unwrap()
                .digest,
            "sha256:bb"
        );
        assert_eq!(
            select(&i, &parse_platform("linux/arm64").unwrap())
                .unwrap()
                .digest,
            "sha256:aa"
        );
        assert!(select(&i, &parse_platform("linux/s390x").unwrap()).is_none());
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:cc","size":2},"layers":[]}"#;
        assert!(matches!(
            Manifest::parse(DOCKER_MANIFEST, m).unwrap(),
            Manifest::Image(_)
        ));
        assert!(matches!(
            Manifest::parse("", m).unwrap(),
            Manifest::Image(_)
        ));
        assert!(Manifest::parse(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            b"{\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}"
        )
        .is_err());
        assert!(Manifest::parse(DOCKER_MANIFEST, b"not json").is_err());
        assert!(parse_platform("linux").is_none());
        assert_eq!(
            parse_platform("linux/arm/v7").unwrap().variant.as_deref(),
            Some("v7")
        );
    }
}
