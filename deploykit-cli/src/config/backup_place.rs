//! Where an environment's backups live: a local `dir` or an object `store`,
//! exactly one of them, decided once from its `[backup]` table.

use std::path::PathBuf;

use deploykit_core::Secret;

use super::BackupConfig;

/// Where one environment's backups are kept, from its `[backup]`.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupPlace {
    /// A local directory (relative to the config file).
    Dir(PathBuf),
    /// An object store.
    Store {
        /// `s3://bucket/prefix` or `file:///path`.
        url: String,
        /// S3-compatible endpoint.
        endpoint: Option<String>,
        /// Region.
        region: Option<String>,
        /// Access key id.
        access_key_id: Option<Secret>,
        /// Secret access key.
        secret_access_key: Option<Secret>,
    },
}

impl BackupConfig {
    /// Where this backup's artifacts live: exactly one of `dir` and `store`
    /// must be set (the error says which key to add or remove).
    pub fn place(&self) -> Result<BackupPlace, String> {
        let (dir, store, endpoint, region, key, secret) = match self {
            BackupConfig::Sqlite { dir, .. } => return Ok(BackupPlace::Dir(dir.clone())),
            BackupConfig::PgDump {
                dir,
                store,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                ..
            }
            | BackupConfig::ComposeExec {
                dir,
                store,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                ..
            } => (
                dir,
                store,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            ),
        };
        match (dir, store) {
            (Some(_), Some(_)) => Err("set either `dir` (a local directory) or `store` (an object store), not both".into()),
            (None, None) => Err("set `dir = \"backups\"` (a local directory) or `store = \"s3://bucket/prefix\"` (an object store, which outlives a CI runner)".into()),
            (Some(dir), None) => {
                if endpoint.is_some() || region.is_some() || key.is_some() || secret.is_some() {
                    return Err("`endpoint`, `region`, `access_key_id` and `secret_access_key` apply to a `store`, not to a `dir`".into());
                }
                Ok(BackupPlace::Dir(dir.clone()))
            }
            (None, Some(url)) => Ok(BackupPlace::Store {
                url: url.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                access_key_id: key.clone(),
                secret_access_key: secret.clone(),
            }),
        }
    }
}
