//! The hook runner's twin: records every hook it was asked to run (with its
//! variables) and fails, hangs or prints as scripted, so each point's rule is
//! proven without a shell.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::hook::{Hook, HookPoint, HookRun, HookRunner};

/// What a scripted hook does.
#[derive(Debug, Clone)]
pub enum HookScript {
    /// Exits with this status, printing these lines.
    Exit(i32, Vec<String>),
    /// Never finishes by itself (the runner's timeout ends it, as the real one does).
    Hang,
}

/// One call the twin received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    /// The point.
    pub point: HookPoint,
    /// Its argv.
    pub argv: Vec<String>,
    /// The variables it got.
    pub vars: Vec<(String, String)>,
}

/// An in-memory [`HookRunner`]: every hook exits 0 unless scripted per point.
#[derive(Debug, Clone, Default)]
pub struct MemoryHooks {
    scripts: Arc<Mutex<HashMap<HookPoint, HookScript>>>,
    calls: Arc<Mutex<Vec<HookCall>>>,
}

impl MemoryHooks {
    /// Scripts what the hooks of `point` do.
    pub fn script(&self, point: HookPoint, script: HookScript) {
        self.scripts.lock().unwrap().insert(point, script);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<HookCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl HookRunner for MemoryHooks {
    async fn run(&self, hook: &Hook, vars: &[(String, String)]) -> Vec<HookRun> {
        self.calls.lock().unwrap().push(HookCall {
            point: hook.point,
            argv: hook.argv.clone(),
            vars: vars.to_vec(),
        });
        let script = self.scripts.lock().unwrap().get(&hook.point).cloned();
        let location = "twin".to_string();
        match script {
            None => vec![HookRun {
                location,
                status: Some(0),
                output: Vec::new(),
                error: None,
            }],
            Some(HookScript::Exit(status, output)) => vec![HookRun {
                location: location.clone(),
                status: Some(status),
                output,
                error: (status != 0)
                    .then(|| format!("hook {} on {location} exited {status}", hook.point)),
            }],
            Some(HookScript::Hang) => {
                match tokio::time::timeout(hook.timeout, std::future::pending::<()>()).await {
                    Ok(()) => unreachable!("pending never ends"),
                    Err(_) => vec![HookRun {
                        location: location.clone(),
                        status: None,
                        output: Vec::new(),
                        error: Some(format!(
                            "hook {} on {location} timed out after {} s and was killed",
                            hook.point,
                            hook.timeout.as_secs()
                        )),
                    }],
                }
            }
        }
    }
}
