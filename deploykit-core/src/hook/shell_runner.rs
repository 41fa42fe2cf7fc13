//! The real hook runner: a hook's argv as a [`Cmd`] on this machine's shell or on
//! each host's shell (the run's SSH connections), under its timeout.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::{last_lines, Hook, HookPlace, HookRun, HookRunner, HOOK_OUTPUT_LINES};
use crate::shell::{Cmd, Shell};

/// Runs hooks over shells: `local` for [`HookPlace::Local`], every one of `hosts`
/// (in order) for [`HookPlace::Hosts`].
#[derive(Clone)]
pub struct ShellHookRunner {
    local: Arc<dyn Shell>,
    local_cwd: Option<PathBuf>,
    hosts: Vec<Arc<dyn Shell>>,
    hosts_cwd: Option<PathBuf>,
}

impl ShellHookRunner {
    /// Local hooks on `local`; no hosts until [`hosts`](Self::hosts).
    pub fn new(local: Arc<dyn Shell>) -> Self {
        Self {
            local,
            local_cwd: None,
            hosts: Vec::new(),
            hosts_cwd: None,
        }
    }

    /// The directory local hooks run in (the project's, so `./scripts/x` works).
    pub fn local_cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_cwd = Some(dir.into());
        self
    }

    /// The target's hosts, and the directory host hooks run in (e.g. the app's
    /// `deploy_to`, whose `current` is the live release).
    pub fn hosts(mut self, hosts: Vec<Arc<dyn Shell>>, cwd: Option<PathBuf>) -> Self {
        self.hosts = hosts;
        self.hosts_cwd = cwd;
        self
    }

    /// The command a place runs. On a host it is wrapped in coreutils `timeout`
    /// so the host itself kills the hook: dropping the SSH client would leave the
    /// remote process running. The variables are plain env assignments, not
    /// secrets, so they travel on the command line like arguments.
    fn command(hook: &Hook, vars: &[(String, String)], remote: bool, cwd: Option<&PathBuf>) -> Cmd {
        let (program, rest) = hook.argv.split_first().expect("a hook has a program");
        let mut cmd = if remote {
            Cmd::new("timeout")
                .arg("-k")
                .arg("5")
                .arg(format!("{}", hook.timeout.as_secs().max(1)))
                .arg(program.clone())
        } else {
            Cmd::new(program.clone())
        };
        cmd = cmd.args(rest.iter().cloned());
        for (k, v) in vars {
            cmd = cmd.public_env(k.clone(), v.clone());
        }
        if let Some(dir) = cwd {
            cmd = cmd.cwd(dir.clone());
        }
        cmd
    }

    async fn run_on(
        shell: &dyn Shell,
        hook: &Hook,
        vars: &[(String, String)],
        remote: bool,
        cwd: Option<&PathBuf>,
    ) -> HookRun {
        let cmd = Self::command(hook, vars, remote, cwd);
        let location = shell.location().to_string();
        // A host's command lines are public (`ps`): a hook's argv that holds a
        // masked secret (a `${TOKEN}` from the config) is not sent at all.
        if remote
            && hook
                .argv
                .iter()
                .any(|w| crate::secret::redact(w, &[]) != *w)
        {
            return HookRun {
                location: location.clone(),
                status: None,
                output: Vec::new(),
                error: Some(format!(
                    "hook {} (`{}`) was not run on {location}: its arguments hold a secret, \
                     which a host's command line would show to every user; read it on the \
                     host instead (e.g. from shared/.env)",
                    hook.point,
                    hook.command()
                )),
            };
        }
        let timed_out = || HookRun {
            location: location.clone(),
            status: None,
            output: Vec::new(),
            error: Some(format!(
                "hook {} (`{}`) on {location} timed out after {} s and was killed",
                hook.point,
                hook.command(),
                hook.timeout.as_secs()
            )),
        };
        // Locally the child is killed when this future is dropped (kill_on_drop);
        // remotely `timeout` kills it, and this deadline (a little later) only
        // stops waiting for a host that does not answer.
        let limit = if remote {
            hook.timeout + std::time::Duration::from_secs(10)
        } else {
            hook.timeout
        };
        match tokio::time::timeout(limit, shell.run(&cmd, None)).await {
            Err(_) => timed_out(),
            // coreutils `timeout` exits 124 when it had to stop the command.
            Ok(Ok(out)) if remote && (out.status == 124 || out.status == 137) => {
                let mut run = timed_out();
                run.output = last_lines(&out.tail(usize::MAX), HOOK_OUTPUT_LINES);
                run
            }
            Ok(Ok(out)) => HookRun {
                location: location.clone(),
                status: Some(out.status),
                output: last_lines(&out.tail(usize::MAX), HOOK_OUTPUT_LINES),
                error: (!out.success()).then(|| {
                    format!(
                        "hook {} (`{}`) on {location} exited {}",
                        hook.point,
                        hook.command(),
                        out.status
                    )
                }),
            },
            Ok(Err(e)) => HookRun {
                location: location.clone(),
                status: None,
                output: Vec::new(),
                error: Some(format!(
                    "hook {} (`{}`) on {location} could not run: {e}",
                    hook.point,
                    hook.command()
                )),
            },
        }
    }
}

impl std::fmt::Debug for ShellHookRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellHookRunner")
            .field("local", &self.local.location())
            .field(
                "hosts",
                &self
                    .hosts
                    .iter()
                    .map(|h| h.location().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HookRunner for ShellHookRunner {
    async fn run(&self, hook: &Hook, vars: &[(String, String)]) -> Vec<HookRun> {
        match hook.runs_on {
            HookPlace::Local => vec![
                Self::run_on(
                    self.local.as_ref(),
                    hook,
                    vars,
                    false,
                    self.local_cwd.as_ref(),
                )
                .await,
            ],
            HookPlace::Hosts => {
                let mut runs = Vec::new();
                for host in &self.hosts {
                    runs.push(
                        Self::run_on(host.as_ref(), hook, vars, true, self.hosts_cwd.as_ref())
                            .await,
                    );
                }
                runs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::HookPoint;
    use crate::shell::LocalShell;
    use std::time::Duration;

    fn vars() -> Vec<(String, String)> {
        vec![("DEPLOYKIT_RELEASE".into(), "v2".into())]
    }

    #[tokio::test]
    async fn a_local_hook_gets_its_variables_and_its_output_is_kept() {
        let runner = ShellHookRunner::new(Arc::new(LocalShell::new()));
        let hook = Hook::new(
            HookPoint::PostActivate,
            HookPlace::Local,
            vec![
                "sh".into(),
                "-c".into(),
                "echo release=$DEPLOYKIT_RELEASE; exit 3".into(),
            ],
        );
        let runs = runner.run(&hook, &vars()).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, Some(3));
        assert_eq!(runs[0].output, vec!["release=v2".to_string()]);
        let error = runs[0].error.as_deref().unwrap();
        assert!(
            error.contains("post_activate") && error.contains("exited 3"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_and_named() {
        let runner = ShellHookRunner::new(Arc::new(LocalShell::new()));
        let hook = Hook::new(
            HookPoint::PreDeploy,
            HookPlace::Local,
            vec!["sleep".into(), "30".into()],
        )
        .timeout(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let runs = runner.run(&hook, &vars()).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let error = runs[0].error.as_deref().unwrap();
        assert!(
            error.contains("pre_deploy") && error.contains("timed out"),
            "{error}"
        );
        assert!(error.contains("local"), "names the place: {error}");
    }

    #[tokio::test]
    async fn a_host_hook_whose_argv_holds_a_secret_is_not_sent() {
        crate::secret::mask(&crate::secret::Secret::new("hook-token-4711"));
        let runner = ShellHookRunner::new(Arc::new(LocalShell::new()))
            .hosts(vec![Arc::new(LocalShell::new())], None);
        let hook = Hook::new(
            HookPoint::PostDeploy,
            HookPlace::Hosts,
            vec!["touch".into(), "--token=hook-token-4711".into()],
        );
        let runs = runner.run(&hook, &vars()).await;
        let error = runs[0].error.as_deref().unwrap();
        assert!(error.contains("hold a secret"), "{error}");
        assert!(!error.contains("hook-token-4711"), "{error}");
        assert_eq!(runs[0].status, None, "never ran");
    }

    #[test]
    fn a_host_command_is_wrapped_in_timeout_with_plain_variables() {
        let hook = Hook::new(
            HookPoint::PostDeploy,
            HookPlace::Hosts,
            vec!["./warm.sh".into(), "--quick".into()],
        )
        .timeout(Duration::from_secs(7));
        let cmd = ShellHookRunner::command(&hook, &vars(), true, Some(&PathBuf::from("/srv/app")));
        assert_eq!(
            cmd.to_string(),
            "cd /srv/app && DEPLOYKIT_RELEASE=v2 timeout -k 5 7 ./warm.sh --quick"
        );
        assert!(cmd.secret_env().is_empty(), "nothing goes the secret way");
    }
}
