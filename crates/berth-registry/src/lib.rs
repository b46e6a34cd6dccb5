//! A client for the OCI distribution API (Docker's registry protocol): manifests,
//! blobs, uploads, and the registries' authentication (Bearer token and Basic).
//! Digests are for the caller to check; this crate only moves bytes.

pub mod auth;
pub mod client;
pub mod manifest;
pub use berth_tls as tls;

pub use client::{Error, Registry};

/// Docker Hub's names: `docker.io` in references, `registry-1.docker.io` on the wire.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// Where a familiar repository name lives: its registry and its path there
/// (`busybox` is `docker.io` + `library/busybox`; `localhost:5000/app` is
/// `localhost:5000` + `app`).
pub fn split_repo(repo: &str) -> (String, String) {
    let mut parts = repo.splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    match parts.next() {
        Some(rest) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        Some(_) => (DOCKER_HUB.to_string(), repo.to_string()),
        None => (DOCKER_HUB.to_string(), format!("library/{repo}")),
    }
}

/// sha256 of `data` as `sha256:<hex>`.
pub fn digest_of(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_split_like_docker() {
        let s = |r: &str| split_repo(r);
        assert_eq!(s("busybox"), ("docker.io".into(), "library/busybox".into()));
        assert_eq!(s("me/app"), ("docker.io".into(), "me/app".into()));
        assert_eq!(
            s("localhost:5000/app"),
            ("localhost:5000".into(), "app".into())
        );
        assert_eq!(
            s("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000".into(), "a/b".into())
        );
        assert_eq!(s("localhost/app"), ("localhost".into(), "app".into()));
        assert_eq!(s("quay.io/x/y"), ("quay.io".into(), "x/y".into()));
    }
}
