//! The build context as the client sends it: a tar (plain, gzip, bzip2 or xz) unpacked into
//! the build's scratch directory, its Dockerfile and `.dockerignore` read.

use berth_build::exec::Context;
use berth_build::ignore::Ignore;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The build's scratch directory, removed (whatever happened) when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(p: PathBuf) -> std::io::Result<Scratch> {
        std::fs::create_dir_all(&p)?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Received {
    pub dockerfile: String,
    pub context: Context,
}

/// Unpacks the context into `dir` and reads the Dockerfile named `name` from it.
pub fn receive<R: Read>(body: R, dir: &Path, name: &str) -> Result<Received, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, body);
    let head = r
        .fill_buf()
        .map_err(|e| format!("reading the context: {e}"))?
        .to_vec();
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2_rs::DecoderReader::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        // xz: decompressed into the scratch directory first (the decoder writes).
        let tar = dir.with_extension("tar");
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tar).map_err(|e| format!("creating {}: {e}", tar.display()))?,
        );
        lzma_rs::xz_decompress(&mut r, &mut out)
            .map_err(|e| format!("decompressing the build context (xz): {e}"))?;
        drop(out);
        Box::new(BufReader::new(
            std::fs::File::open(&tar).map_err(|e| format!("reading {}: {e}", tar.display()))?,
        ))
    } else {
        Box::new(r)
    };
    if !head.is_empty() {
        let mut a = tar::Archive::new(reader);
        a.set_preserve_permissions(true);
        a.set_preserve_mtime(true);
        a.set_overwrite(true);
        a.set_unpack_xattrs(false);
        // unpack() keeps every entry beneath `dir` (no `..`, no writing through a
        // symlink the archive made).
        a.unpack(dir)
            .map_err(|e| format!("unpacking the build context: {e}"))?;
    }
    read(dir, name)
}

/// A downloaded remote context: a tar (possibly compressed) is the context; any
/// other file is the Dockerfile, alone.
pub fn receive_file(file: &Path, dir: &Path, name: &str) -> Result<Received, String> {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("reading {}: {e}", file.display()))?;
    let compressed = head[..n].starts_with(&[0x1f, 0x8b])
        || head[..n].starts_with(b"BZh")
        || head[..n].starts_with(&[0xfd, b'7', b'z', b'X', b'Z']);
    if compressed || (n >= 262 && &head[257..262] == b"ustar") {
        let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
        return receive(f, dir, name);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::copy(file, dir.join("Dockerfile")).map_err(|e| e.to_string())?;
    read(dir, "Dockerfile")
}

/// The Dockerfile `name` and the `.dockerignore` of the context in `dir`.
pub fn read(dir: &Path, name: &str) -> Result<Received, String> {
    let df_path = berth_build::rootfs::scoped(dir, name, true);
    let dockerfile = std::fs::read_to_string(&df_path)
        .map_err(|_| format!("Cannot locate specified Dockerfile: {name}"))?;
    let specific = berth_build::rootfs::scoped(dir, &format!("{name}.dockerignore"), true);
    let ignore_text = std::fs::read_to_string(&specific)
        .or_else(|_| std::fs::read_to_string(dir.join(".dockerignore")))
        .unwrap_or_default();
    let ignore = Ignore::parse(&ignore_text).map_err(|e| e.to_string())?;
    Ok(Received {
        dockerfile,
        context: Context {
            dir: dir.to_path_buf(),
            ignore,
        },
    })
}

/// A context a BuildKit client serves through its session: the Dockerfile (and
/// its own ignore file) from the `dockerfile` directory, the `.dockerignore`, then
/// the context without what it excludes.
pub async fn from_session(
    session: &super::sessions::Session,
    scratch: &Path,
    dir: &Path,
    name: &str,
    reads: &(dyn Fn(&str) -> Option<Vec<String>> + Send + Sync),
) -> Result<Received, String> {
    use berth_buildkit::filesync::{receive, Request};
    let base = name.rsplit('/').next().unwrap_or(name).to_string();
    let df_dir = scratch.join("session-dockerfile");
    let ig_dir = scratch.join("session-ignore");
    for d in [dir, &df_dir, &ig_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let sync = |dir_name: &str, include: Vec<String>, exclude: Vec<String>| Request {
        dir_name: dir_name.to_string(),
        include,
        exclude,
        follow: Vec::new(),
    };
    let failed = |what: &str, e: berth_buildkit::filesync::Error| {
        format!("failed to read {what} from the client's session: {e}")
    };
    receive(
        &session.channel,
        &sync(
            "dockerfile",
            vec![base.clone(), format!("{base}.dockerignore")],
            Vec::new(),
        ),
        &df_dir,
    )
    .await
    .map_err(|e| failed("the Dockerfile", e))?;
    let dockerfile = std::fs::read_to_string(df_dir.join(&base)).map_err(|_| {
        format!("failed to read dockerfile: open {base}: no such file or directory")
    })?;
    let ignore_text = match std::fs::read_to_string(df_dir.join(format!("{base}.dockerignore"))) {
        Ok(t) => t,
        Err(_) => {
            receive(
                &session.channel,
                &sync("context", vec![".dockerignore".into()], Vec::new()),
                &ig_dir,
            )
            .await
            .map_err(|e| failed(".dockerignore", e))?;
            std::fs::read_to_string(ig_dir.join(".dockerignore")).unwrap_or_default()
        }
    };
    let excludes: Vec<String> = ignore_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    // Only what the build reads, as BuildKit's frontend asks (its followpaths):
    // nothing at all for a Dockerfile that reads none of it.
    let got = match reads(&dockerfile) {
        Some(paths) if paths.is_empty() => Default::default(),
        follow => {
            let mut req = sync("context", Vec::new(), excludes);
            req.follow = follow.unwrap_or_default();
            receive(&session.channel, &req, dir)
                .await
                .map_err(|e| failed("the context", e))?
        }
    };
    tracing::info!(
        files = got.files,
        bytes = got.bytes,
        kept = got.kept,
        "context received through the session"
    );
    let ignore = Ignore::parse(&ignore_text).map_err(|e| e.to_string())?;
    Ok(Received {
        dockerfile,
        context: Context {
            dir: dir.to_path_buf(),
            ignore,
        },
    })
}

/// A directory of the client's session (a named context's `local:NAME`), whole,
/// into `dest`.
pub async fn from_session_dir(
    session: &super::sessions::Session,
    dir_name: &str,
    dest: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    let req = berth_buildkit::filesync::Request {
        dir_name: dir_name.to_string(),
        ..Default::default()
    };
    berth_buildkit::filesync::receive(&session.channel, &req, dest)
        .await
        .map(|_| ())
        .map_err(|e| format!("failed to read {dir_name} from the client's session: {e}"))
}
