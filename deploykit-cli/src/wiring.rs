//! From an environment's config to the parts of a pipeline. The only place that
//! knows which adapter implements which `kind`.

use std::sync::Arc;

use deploykit_core::{Backup, HealthProbe, Migrator, Target};

use crate::config::{Environment, LoadedConfig, TargetConfig};
use crate::local_target::LocalTarget;

/// The parts of one environment, ready to go into a pipeline.
#[derive(Default)]
pub struct Parts {
    /// Where releases go.
    pub target: Option<Arc<dyn Target>>,
    /// The local target, when that is the kind (the demo stops its app at the end).
    pub local: Option<Arc<LocalTarget>>,
    /// How backups are taken.
    pub backup: Option<Arc<dyn Backup>>,
    /// How migrations are applied.
    pub migrator: Option<Arc<dyn Migrator>>,
    /// Health probes.
    pub probes: Vec<Arc<dyn HealthProbe>>,
}

/// A config that names something this build cannot do.
#[derive(Debug)]
pub struct WiringError(pub String);

impl std::fmt::Display for WiringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WiringError {}

/// Builds the environment's parts.
pub async fn parts(
    loaded: &LoadedConfig,
    name: &str,
    env: &Environment,
) -> Result<Parts, WiringError> {
    let mut parts = Parts::default();
    match &env.target {
        None => {}
        Some(TargetConfig::Local {
            deploy_to,
            repo,
            build,
            start,
            port,
        }) => {
            let t = Arc::new(LocalTarget::new(
                loaded.resolve(deploy_to),
                loaded.resolve(repo),
                build.clone(),
                start.clone(),
                *port,
            ));
            parts.local = Some(t.clone());
            parts.target = Some(t);
        }
        Some(other) => {
            return Err(WiringError(format!(
                "environment {name}: target kind {:?} is not wired into this build yet",
                kind_name(other)
            )))
        }
    }
    if env.backup.is_some() || env.migrations.is_some() || !env.probes.is_empty() {
        return Err(WiringError(format!(
            "environment {name}: database parts are not wired into this build yet"
        )));
    }
    Ok(parts)
}

fn kind_name(t: &TargetConfig) -> &'static str {
    match t {
        TargetConfig::Local { .. } => "local",
        TargetConfig::Pm2(_) => "pm2",
        TargetConfig::Compose(_) => "compose",
    }
}
