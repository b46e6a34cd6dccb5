//! `GET /system/df`: what images, containers, volumes and the build cache take on
//! disk, as `docker system df` shows it.

use crate::daemon::system::System;
use crate::error::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

impl System {
    /// `types`: the `type` query values (empty: all of them).
    pub fn disk_usage(&self, types: &[String]) -> ApiResult<Value> {
        for t in types {
            if !["container", "image", "volume", "build-cache"].contains(&t.as_str()) {
                return Err(ApiError::invalid(format!(
                    "invalid type {t:?}: use container, image, volume or build-cache"
                )));
            }
        }
        let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        let mut out = json!({ "LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": [] });
        if want("image") {
            let images = self.images.list(false, &HashMap::new())?;
            // A layer used by several images counts once in LayersSize, and as
            // shared in each image that has it.
            let mut users: HashMap<String, i64> = HashMap::new();
            let resolved: Vec<_> = images
                .iter()
                .filter_map(|i| self.images.store().resolve(&i.id).ok())
                .collect();
            for i in &resolved {
                for (d, _) in i.layers.iter().collect::<HashSet<_>>() {
                    *users.entry(d.clone()).or_default() += 1;
                }
            }
            let mut seen = HashSet::new();
            let mut layers_size = 0i64;
            let mut list = Vec::new();
            for (summary, img) in images.iter().zip(&resolved) {
                let shared: i64 = img
                    .layers
                    .iter()
                    .filter(|(d, _)| users.get(d).copied().unwrap_or(0) > 1)
                    .map(|(_, s)| *s)
                    .sum();
                for (d, s) in &img.layers {
                    if seen.insert(d.clone()) {
                        layers_size += s;
                    }
                }
                let mut v = serde_json::to_value(summary).expect("serialises");
                v["SharedSize"] = json!(shared);
                list.push(v);
            }
            out["LayersSize"] = json!(layers_size);
            out["Images"] = json!(list);
        }
        if want("container") {
            out["Containers"] =
                serde_json::to_value(self.containers.list(true, None, &HashMap::new(), true)?)
                    .expect("serialises");
        }
        if want("volume") {
            let vols: Vec<berth_api::Volume> = self
                .volumes
                .all()
                .iter()
                .map(|v| {
                    let mut j = self.volumes.view(v);
                    j.usage_data = Some(berth_api::VolumeUsageData {
                        size: crate::daemon::paths::dir_size(&self.volumes.data_dir(&v.name))
                            as i64,
                        ref_count: self.volumes.users(&v.name).len() as i64,
                    });
                    j
                })
                .collect();
            out["Volumes"] = json!(vols);
        }
        if want("build-cache") {
            out["BuildCache"] = json!(self.build_cache()?);
        }
        Ok(out)
    }

    /// The build cache as `docker system df -v` lists it: each step's record
    /// (the bytes only it holds) and each `RUN --mount=type=cache` directory.
    fn build_cache(&self) -> ApiResult<Vec<Value>> {
        let time = |secs: i64| {
            chrono::DateTime::from_timestamp(secs, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let mut list: Vec<Value> = self
            .images
            .store()
            .cache_records()?
            .into_iter()
            .map(|r| {
                json!({
                    "ID": &r.key[..25.min(r.key.len())],
                    "Type": "regular",
                    "Description": r.description,
                    "InUse": false,
                    "Shared": false,
                    "Size": r.size,
                    "CreatedAt": time(r.created),
                    "LastUsedAt": time(r.last_used),
                    "UsageCount": r.usage,
                })
            })
            .collect();
        let mounts = self.data_root.join("build").join("cache");
        for e in std::fs::read_dir(&mounts).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            list.push(json!({
                "ID": e.file_name().to_string_lossy().chars().take(25).collect::<String>(),
                "Type": "exec.cachemount",
                "Description": "cached mount of a RUN step",
                "InUse": false,
                "Shared": false,
                "Size": crate::daemon::paths::dir_size(&e.path()) as i64,
                "CreatedAt": time(modified),
                "LastUsedAt": time(modified),
                "UsageCount": 0,
            }));
        }
        Ok(list)
    }
}
