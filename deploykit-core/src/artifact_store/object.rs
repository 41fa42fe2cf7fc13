//! [`ObjectDir`]: artifacts in object storage through the `object_store` crate —
//! an S3-compatible bucket (`s3://bucket/prefix`) or a filesystem
//! (`file:///path`) — so backups outlive the machine that took them (a CI runner
//! is thrown away after each job).
//!
//! # Layout and promises
//!
//! Keys are `<prefix>/<env>/<name>` with the metadata at `<…>/<name>.json`, so each
//! environment has its own prefix and removing one environment's backups can
//! never touch another's. The data is streamed as a multipart upload (8 MiB
//! parts, at most 4 in flight: memory stays bounded whatever the dump's size),
//! which is invisible until completed; the metadata is written only after the
//! upload completed. A failed upload is aborted; a killed process leaves an
//! incomplete multipart upload, which S3 never lists (a bucket lifecycle rule
//! `AbortIncompleteMultipartUpload` reclaims its space). Listing counts only
//! data objects whose metadata exists and names them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::{ArtifactBackend, ArtifactMetadata, ArtifactReader, ArtifactSink, METADATA_SUFFIX};
use crate::error::{Error, Result};
use crate::next_step::NextStep;
use crate::secret::{redact, Secret};

#[cfg(test)]
#[path = "object_tests.rs"]
mod tests;

/// Size of each multipart part (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once; bounds memory to about `(1 + this) * PART_SIZE`.
const PARTS_IN_FLIGHT: usize = 4;

/// Where and how to reach an object store. Credentials are [`Secret`]s: they are
/// handed to the client and never appear in messages.
#[derive(Debug, Clone, Default)]
pub struct ObjectStoreSpec {
    /// `s3://bucket/prefix` or `file:///absolute/path`.
    pub url: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS when unset.
    pub endpoint: Option<String>,
    /// The bucket's region (`us-east-1` when unset).
    pub region: Option<String>,
    /// Access key id; the `AWS_ACCESS_KEY_ID` environment variable when unset.
    pub access_key_id: Option<Secret>,
    /// Secret access key; `AWS_SECRET_ACCESS_KEY` when unset.
    pub secret_access_key: Option<Secret>,
}

/// Artifacts under a prefix of an object store.
#[derive(Clone)]
pub struct ObjectDir {
    store: Arc<dyn ObjectStore>,
    /// What paths and messages start with: `s3://bucket/prefix`, no credentials.
    url: String,
    prefix: String,
    /// A `file://` store's root, whose files are made owner-only after writing.
    local_root: Option<PathBuf>,
    secrets: Vec<Secret>,
}

/// Shows the store's URL only: the client's own `Debug` holds its credentials.
impl std::fmt::Debug for ObjectDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectDir")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ObjectDir {
    /// Artifacts under `prefix` of `store`, shown as `url/<env>/<name>` (e.g. an
    /// `InMemory` store in tests).
    pub fn new(store: Arc<dyn ObjectStore>, url: &str, prefix: &str) -> Self {
        Self {
            store,
            url: url.trim_end_matches('/').to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            local_root: None,
            secrets: Vec::new(),
        }
    }

    /// Connects to the store `spec` describes. Nothing is sent yet: a bucket
    /// that is down or missing is reported by the first backup, list or restore.
    pub fn connect(spec: &ObjectStoreSpec) -> Result<Self> {
        let url = spec.url.trim_end_matches('/');
        let bad = |why: &str| {
            Error::part("backup.store", url, why.to_string()).with_hint(
                "set the backup's `store` to `s3://bucket/prefix` (with `endpoint` for an \
                 S3-compatible server) or `file:///absolute/path`",
            )
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the store URL names no bucket"));
            }
            crate::http::install_crypto_provider();
            // `endpoint = "${VAR}"` with VAR empty means "not set" (AWS itself).
            let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(set(&spec.region).unwrap_or_else(|| "us-east-1".into()))
                .with_retry(object_store::RetryConfig {
                    backoff: Default::default(),
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(30),
                })
                .with_client_options(
                    object_store::ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(5))
                        .with_timeout(Duration::from_secs(300)),
                );
            if let Some(endpoint) = &set(&spec.endpoint) {
                b = b
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let mut secrets = Vec::new();
            if let Some(k) = &spec.access_key_id {
                b = b.with_access_key_id(k.expose());
                secrets.push(k.clone());
            }
            if let Some(k) = &spec.secret_access_key {
                b = b.with_secret_access_key(k.expose());
                secrets.push(k.clone());
            }
            let store = b
                .build()
                .map_err(|e| bad(&redact(&e.to_string(), &refs(&secrets))))?;
            let mut dir = Self::new(Arc::new(store), url, prefix);
            dir.secrets = secrets;
            Ok(dir)
        } else if let Some(root) = url.strip_prefix("file://") {
            let root = PathBuf::from(root);
            if !root.is_absolute() {
                return Err(bad("a file:// store needs an absolute path (file:///…)"));
            }
            // 0700: the files object_store writes follow the umask until they are
            // made 0600; nobody else can reach them meanwhile.
            crate::private_fs::create_dir_all(&root)
                .map_err(|e| Error::io("create backup store directory", &root, e))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| bad(&e.to_string()))?
                .with_automatic_cleanup(true);
            let mut dir = Self::new(Arc::new(store), url, "");
            dir.local_root = Some(root);
            Ok(dir)
        } else {
            Err(bad("unknown store URL scheme"))
        }
    }

    fn key(&self, rel: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn path_of(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("{}/{rel}", self.url))
    }

    /// The store-relative `<env>/<name>` of an artifact path of this store.
    fn rel_of(&self, path: &Path) -> Result<String> {
        let s = path.to_string_lossy();
        s.strip_prefix(&format!("{}/", self.url))
            .filter(|rel| rel.split('/').count() == 2 && !rel.contains(".."))
            .map(str::to_string)
            .ok_or_else(|| {
                Error::part(
                    "backup.store",
                    self.url.clone(),
                    format!("{s} is not an artifact of this store"),
                )
                .with_next_step(NextStep::PickListedBackup { env: None })
            })
    }

    fn fail(&self, step: &str, what: &str, e: object_store::Error) -> Error {
        store_error(&self.url, &self.secrets, step, what, e)
    }

    fn make_private(&self, key: &Key) {
        #[cfg(unix)]
        if let Some(root) = &self.local_root {
            use std::os::unix::fs::PermissionsExt;
            let file = root.join(key.as_ref());
            let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

fn refs(secrets: &[Secret]) -> Vec<&Secret> {
    secrets.iter().collect()
}

/// An object-store failure naming the store and what to do next.
fn store_error(
    url: &str,
    secrets: &[Secret],
    step: &str,
    what: &str,
    e: object_store::Error,
) -> Error {
    let message = redact(&format!("{what} failed: {e}"), &refs(secrets));
    let next = NextStep::CheckBackupStore {
        url: url.to_string(),
        env: None,
        run_again: step == "backup.create",
    };
    Error::part(step, format!("backup store {url}"), message).with_next_step(next)
}

#[async_trait]
impl ArtifactBackend for ObjectDir {
    fn location(&self) -> String {
        self.url.clone()
    }

    async fn create(&self, env: &str, name: &str) -> Result<Option<Box<dyn ArtifactSink>>> {
        let rel = format!("{env}/{name}");
        let key = self.key(&rel);
        match self.store.head(&key).await {
            Ok(_) => return Ok(None),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail("backup.create", "checking the artifact name", e)),
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.fail("backup.create", "starting the upload", e))?;
        Ok(Some(Box::new(ObjectSink {
            dir: self.clone(),
            path: self.path_of(&rel),
            meta_key: self.key(&format!("{rel}{METADATA_SUFFIX}")),
            key,
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
        })))
    }

    async fn list(&self) -> Result<Vec<(PathBuf, ArtifactMetadata)>> {
        let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.fail("backup.list", "listing the backups", e))?;
        let keys: std::collections::HashSet<String> =
            objects.iter().map(|o| o.location.to_string()).collect();
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Vec::new();
        for meta_key in keys.iter().filter(|k| k.ends_with(METADATA_SUFFIX)) {
            let data_key = &meta_key[..meta_key.len() - METADATA_SUFFIX.len()];
            if !keys.contains(data_key) {
                continue;
            }
            let Some(rel) = data_key.strip_prefix(&strip) else {
                continue;
            };
            let Some((env, name)) = rel.split_once('/') else {
                continue;
            };
            let bytes = match self.store.get(&Key::from(meta_key.as_str())).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.fail("backup.list", "reading backup metadata", e)),
            };
            // Metadata that does not parse, or names another artifact or
            // environment, makes nothing valid.
            match serde_json::from_slice::<ArtifactMetadata>(&bytes) {
                Ok(meta) if meta.file == name && meta.env == env => {
                    out.push((self.path_of(rel), meta))
                }
                _ => continue,
            }
        }
        Ok(out)
    }

    async fn open(&self, path: &Path) -> Result<ArtifactReader> {
        let key = self.key(&self.rel_of(path)?);
        let got = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.fail("backup.read", &format!("reading {}", path.display()), e))?;
        let stream = got.into_stream().map(|r| r.map_err(std::io::Error::from));
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    async fn remove(&self, path: &Path) -> Result<()> {
        let rel = self.rel_of(path)?;
        for key in [self.key(&format!("{rel}{METADATA_SUFFIX}")), self.key(&rel)] {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(self.fail("backup.remove", &format!("removing {key}"), e));
                }
            }
        }
        Ok(())
    }
}

/// One artifact being uploaded.
struct ObjectSink {
    dir: ObjectDir,
    path: PathBuf,
    key: Key,
    meta_key: Key,
    upload: Option<WriteMultipart>,
}

#[async_trait]
impl ArtifactSink for ObjectSink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn partial_path(&self) -> Option<&Path> {
        None
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(Error::part(
                "backup.create",
                self.path.display().to_string(),
                "the artifact was already finished or abandoned",
            ));
        };
        // Waiting here is the back-pressure that keeps memory bounded when the
        // store is slower than the dump.
        if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
            return Err(self.dir.fail("backup.create", "uploading the backup", e));
        }
        upload.write(bytes);
        Ok(())
    }

    async fn commit(&mut self, meta: &ArtifactMetadata) -> Result<()> {
        let Some(upload) = self.upload.take() else {
            return Err(Error::part(
                "backup.create",
                self.path.display().to_string(),
                "the artifact was already finished or abandoned",
            ));
        };
        upload
            .finish()
            .await
            .map_err(|e| self.dir.fail("backup.create", "completing the upload", e))?;
        self.dir.make_private(&self.key);
        let json = serde_json::to_vec_pretty(meta).expect("metadata serialises");
        if let Err(e) = self
            .dir
            .store
            .put(&self.meta_key, PutPayload::from(json))
            .await
        {
            // Without metadata the data never lists; remove it so nothing
            // half-finished stays around.
            let _ = self.dir.store.delete(&self.key).await;
            return Err(self.dir.fail("backup.create", "writing the metadata", e));
        }
        self.dir.make_private(&self.meta_key);
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for ObjectSink {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}
