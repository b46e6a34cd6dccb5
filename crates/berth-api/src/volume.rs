//! Volumes: create, inspect, list, prune.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /volumes/create` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeCreateOptions {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A volume as inspect, list and `system df` show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: String,
    pub name: String,
    pub options: Option<BTreeMap<String, String>>,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsageData>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeUsageData {
    pub size: i64,
    pub ref_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VolumePruneResponse {
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}
