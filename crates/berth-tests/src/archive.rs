//! Builds docker-archive tars for tests, with layers written raw (so that hostile
//! entry names reach berthd unchanged).

use sha2::{Digest, Sha256};

pub struct Layer(tar::Builder<Vec<u8>>);

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn raw(self, kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) -> Layer {
        let mode = if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        };
        self.raw_mode(kind, name, link, data, mode)
    }

    fn raw_mode(
        mut self,
        kind: tar::EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
        mode: u32,
    ) -> Layer {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        let g = h.as_gnu_mut().expect("gnu header");
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        self.0
            .append(&h, data)
            .expect("appending to a tar in memory");
        self
    }

    /// A regular file with mode 0755.
    pub fn executable(self, name: &str, data: &[u8]) -> Layer {
        self.raw_mode(tar::EntryType::Regular, name, None, data, 0o755)
    }

    pub fn file(self, name: &str, data: &[u8]) -> Layer {
        self.raw(tar::EntryType::Regular, name, None, data)
    }

    pub fn dir(self, name: &str) -> Layer {
        self.raw(tar::EntryType::Directory, name, None, &[])
    }

    pub fn symlink(self, name: &str, target: &str) -> Layer {
        self.raw(tar::EntryType::Symlink, name, Some(target), &[])
    }

    pub fn hardlink(self, name: &str, target: &str) -> Layer {
        self.raw(tar::EntryType::Link, name, Some(target), &[])
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("tar in memory")
    }
}

fn put(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).expect("tar in memory");
}

/// A docker-archive with `layers` (uncompressed tars), tagged `tag`, running `cmd`.
pub fn image(layers: &[Vec<u8>], tag: &str, cmd: &[&str]) -> Vec<u8> {
    image_for(layers, tag, cmd, "amd64")
}

/// [`image`] for the architecture `arch` (Docker's name: arm64, s390x, ...).
pub fn image_for(layers: &[Vec<u8>], tag: &str, cmd: &[&str], arch: &str) -> Vec<u8> {
    let hex = |d: &[u8]| hex::encode(Sha256::digest(d));
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hex(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": { "Cmd": cmd, "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = serde_json::to_vec(&config).expect("json");
    let chex = hex(&config);
    let mut b = tar::Builder::new(Vec::new());
    let mut names = Vec::new();
    for l in layers {
        let n = format!("blobs/sha256/{}", hex(l));
        put(&mut b, &n, l);
        names.push(n);
    }
    put(&mut b, &format!("blobs/sha256/{chex}"), &config);
    let manifest = serde_json::json!([{ "Config": format!("blobs/sha256/{chex}"), "RepoTags": [tag], "Layers": names }]);
    put(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    b.into_inner().expect("tar in memory")
}
