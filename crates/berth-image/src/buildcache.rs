//! The builder's cache in the store: each record is a step's result (an image
//! configuration and its layers) under the step's cache key. Records keep their
//! layers alive as images do; the layers of a step are moved in before the record
//! that names them, all under the store's writer lock.

use crate::{hex_of, io_err, meta, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use std::fs;
use std::io::Read;

/// A step's cached result: its image configuration and layers.
pub type CachedStep = (Vec<u8>, Vec<(String, i64)>);

/// One record, for `docker system df` and `docker builder prune`.
#[derive(Debug, Clone)]
pub struct CacheRecord {
    pub key: String,
    /// Bytes of the layers only this record (and no image) holds.
    pub size: i64,
    pub created: i64,
    pub last_used: i64,
    pub usage: i64,
    pub description: String,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

impl Store {
    /// Moves a layer tar into the store, unless it holds no entry at all (then
    /// `None`). The layer belongs to nothing until a record or image names it.
    pub fn add_layer<R: Read>(&self, reader: R) -> Result<Option<(String, i64)>, StoreError> {
        let _w = self.lock_writer();
        let staged = self.stage_layer(0, reader, None)?;
        let diff = staged.tmp.join("diff");
        let empty = fs::read_dir(&diff)
            .map_err(io_err("reading", &diff))?
            .next()
            .is_none();
        if empty {
            return Ok(None);
        }
        let (diff_id, size) = staged.commit(self)?;
        Ok(Some((diff_id, size)))
    }

    pub fn cache_get(&self, key: &str) -> Result<Option<CachedStep>, StoreError> {
        let db = self.db();
        let config: Option<Vec<u8>> = db
            .query_row(
                "SELECT config FROM build_cache WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        let Some(config) = config else {
            return Ok(None);
        };
        let mut st = db.prepare_cached(
            "SELECT l.diff_id, l.size FROM build_cache_layers c JOIN layers l ON l.diff_id = c.diff_id
             WHERE c.key = ?1 ORDER BY c.idx",
        )?;
        let layers: Vec<(String, i64)> = st
            .query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        db.execute(
            "UPDATE build_cache SET last_used = ?2, usage = usage + 1 WHERE key = ?1",
            params![key, now()],
        )?;
        Ok(Some((config, layers)))
    }

    /// Records a step's result; its layers must be in the store already.
    pub fn cache_put(
        &self,
        key: &str,
        config: &[u8],
        layers: &[(String, i64)],
    ) -> Result<(), StoreError> {
        let _w = self.lock_writer();
        for (d, _) in layers {
            let dir = self.layer_dir(d);
            if !dir.exists() {
                return Err(StoreError::Io {
                    what: "finding layer",
                    path: dir,
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        for (d, size) in layers {
            tx.execute(
                "INSERT OR IGNORE INTO layers (diff_id, size) VALUES (?1, ?2)",
                params![d, size],
            )?;
        }
        let t = now();
        tx.execute("DELETE FROM build_cache WHERE key = ?1", [key])?;
        tx.execute(
            "INSERT INTO build_cache (key, config, created, last_used, usage) VALUES (?1, ?2, ?3, ?3, 0)",
            params![key, config, t],
        )?;
        for (i, (d, _)) in layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO build_cache_layers (key, idx, diff_id) VALUES (?1, ?2, ?3)",
                params![key, i as i64, d],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The records, with the size of what each alone keeps.
    pub fn cache_records(&self) -> Result<Vec<CacheRecord>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT key, created, last_used, usage, config,
               (SELECT COALESCE(SUM(l.size), 0) FROM build_cache_layers c JOIN layers l ON l.diff_id = c.diff_id
                WHERE c.key = b.key AND c.idx = (SELECT MAX(idx) FROM build_cache_layers WHERE key = b.key)
                  AND c.diff_id NOT IN (SELECT diff_id FROM image_layers))
             FROM build_cache b ORDER BY last_used, created",
        )?;
        let rows = st.query_map([], |r| {
            let config: Vec<u8> = r.get(4)?;
            let description = serde_json::from_slice::<berth_api::ImageConfigBlob>(&config)
                .ok()
                .and_then(|c| c.history.last().and_then(|h| h.created_by.clone()))
                .unwrap_or_default();
            Ok(CacheRecord {
                key: r.get(0)?,
                created: r.get(1)?,
                last_used: r.get(2)?,
                usage: r.get(3)?,
                size: r.get(5)?,
                description,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes the records `remove` picks (given each record), then the layers
    /// nothing holds any more. Returns the keys removed and the bytes freed.
    pub fn cache_prune(
        &self,
        remove: &dyn Fn(&CacheRecord) -> bool,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let records = self.cache_records()?;
        let _w = self.lock_writer();
        let gone: Vec<String> = records
            .iter()
            .filter(|r| remove(r))
            .map(|r| r.key.clone())
            .collect();
        let removed_layers = {
            let mut db = self.db();
            let tx = db.transaction()?;
            for k in &gone {
                tx.execute("DELETE FROM build_cache WHERE key = ?1", [k])?;
            }
            let sizes: Vec<(String, i64)> = {
                let mut st = tx.prepare(
                    "SELECT diff_id, size FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)
                     AND diff_id NOT IN (SELECT diff_id FROM build_cache_layers)",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            meta::delete_unused_layers(&tx)?;
            tx.commit()?;
            sizes
        };
        let mut freed = 0;
        for (d, size) in removed_layers {
            let dir = self.layer_dir(&d);
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(layer = %hex_of(&d), error = %io_err("removing", &dir)(e), "pruning the build cache");
            }
            freed += size;
        }
        Ok((gone, freed))
    }

    /// Stores a built image (its layers are in the store); returns the ID and
    /// whether the image is new.
    pub fn insert_built(
        &self,
        config: &[u8],
        layers: &[(String, i64)],
        tags: &[String],
    ) -> Result<(String, bool), StoreError> {
        let _w = self.lock_writer();
        let id = format!("sha256:{}", crate::sha256_hex(config));
        let existed = self
            .db()
            .query_row("SELECT 1 FROM images WHERE id = ?1", [&id], |_| Ok(()))
            .optional()?
            .is_some();
        let (id, _) = self.insert_image(config, layers, tags)?;
        Ok((id, !existed))
    }

    /// Removes an image no tag, digest or container names (a build step's
    /// temporary image); its layers stay while anything else holds them.
    pub fn remove_if_unused(&self, id: &str) -> Result<bool, StoreError> {
        let _w = self.lock_writer();
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute(
            "DELETE FROM images WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM tags WHERE image_id = ?1)
             AND NOT EXISTS (SELECT 1 FROM repo_digests WHERE image_id = ?1)
             AND NOT EXISTS (SELECT 1 FROM containers WHERE image_id = ?1)",
            [id],
        )?;
        let removed = if n > 0 {
            meta::delete_unused_layers(&tx)?
        } else {
            Vec::new()
        };
        tx.commit()?;
        drop(db);
        for d in removed {
            let _ = fs::remove_dir_all(self.layer_dir(&d));
        }
        Ok(n > 0)
    }
}
