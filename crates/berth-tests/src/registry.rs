//! Debian's docker-registry, run for a test.

use crate::wait_until;
use std::path::PathBuf;
use std::process::{Child, Command};

/// A CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1, on its
/// own port and storage, stopped when dropped.
pub struct TestRegistry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    ip: String,
}

impl TestRegistry {
    /// `auth`: extra YAML under `auth:` (e.g. htpasswd), or empty.
    pub fn start(auth: &str) -> TestRegistry {
        Self::start_on("127.0.0.1", auth, "")
    }

    /// On address `ip`, with `http_extra` YAML under `http:` (e.g. `tls:`).
    pub fn start_on(ip: &str, auth: &str, http_extra: &str) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("breg-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n{http_extra}",
            dir.path().join("data").display()
        );
        if !auth.is_empty() {
            cfg.push_str("auth:\n");
            cfg.push_str(auth);
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("writing the registry's config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (Debian's docker-registry package)");
        let r = TestRegistry {
            dir,
            port,
            child,
            ip: ip.to_string(),
        };
        wait_until("the registry to listen", || {
            std::net::TcpStream::connect((ip, port)).is_ok()
        });
        r
    }

    /// `ip:port`.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps the blob `digest` (`sha256:...`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
