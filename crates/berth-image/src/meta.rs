//! The metadata database: images, tags, layers and container records in one SQLite
//! file (WAL mode), so that every change is one transaction and a crash at any moment
//! leaves a consistent store. Files on disk (layer directories) are created before
//! the row that names them and removed after it, and anything on disk without a row
//! is collected when the store opens.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    config BLOB NOT NULL,
    loaded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    diff_id TEXT NOT NULL REFERENCES layers(diff_id),
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_diff ON image_layers(diff_id);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS blob_digests (
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    repo TEXT NOT NULL,
    PRIMARY KEY (diff_id, repo)
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    config BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    usage INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS build_cache_layers (
    key TEXT NOT NULL REFERENCES build_cache(key) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    diff_id TEXT NOT NULL REFERENCES layers(diff_id),
    PRIMARY KEY (key, idx)
);
CREATE INDEX IF NOT EXISTS build_cache_layers_diff ON build_cache_layers(diff_id);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    data BLOB NOT NULL
);
";

pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL with synchronous=NORMAL: a commit is atomic and survives a crash of
    // berthd; only a power loss can drop the last commits, never tear one.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// A container's row: its JSON record belongs to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRow {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub data: Vec<u8>,
}

pub(crate) fn image_tags(conn: &Connection, image_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
    let rows = st.query_map([image_id], |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn image_layers(
    conn: &Connection,
    image_id: &str,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT l.diff_id, l.size FROM image_layers il JOIN layers l ON l.diff_id = il.diff_id
         WHERE il.image_id = ?1 ORDER BY il.idx",
    )?;
    let rows = st.query_map([image_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub(crate) fn image_config(conn: &Connection, image_id: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT config FROM images WHERE id = ?1", [image_id], |r| {
        r.get(0)
    })
    .optional()
}

pub(crate) fn container_users(conn: &Connection, image_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT id FROM containers WHERE image_id = ?1")?;
    let rows = st.query_map([image_id], |r| r.get(0))?;
    rows.collect()
}

/// Deletes layers no image and no build cache record refers to any more; returns
/// their diff ids.
pub(crate) fn delete_unused_layers(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT diff_id FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)
         AND diff_id NOT IN (SELECT diff_id FROM build_cache_layers)",
    )?;
    let unused: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for d in &unused {
        conn.execute("DELETE FROM layers WHERE diff_id = ?1", params![d])?;
    }
    Ok(unused)
}

pub(crate) fn image_repo_digests(
    conn: &Connection,
    image_id: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name")?;
    let rows = st.query_map([image_id], |r| r.get(0))?;
    rows.collect()
}
