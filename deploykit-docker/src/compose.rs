//! Docker Compose through its command line, as pure [`Cmd`] builders.
//!
//! Compose has no engine API of its own, and its two generations differ only in how
//! they are invoked (`docker compose …` v2 plugin, `docker-compose …` v1), so every
//! command is built here as data, with the project name, the compose files and the env
//! file always passed explicitly: nothing depends on the working directory or on an
//! implicit `.env` being picked up.

use std::path::{Path, PathBuf};

use deploykit_core::{Cmd, Error, Result, Shell};

/// Which Compose is installed on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeCli {
    /// The v2 plugin: `docker compose …`; names containers `project-service-1`.
    V2Plugin,
    /// The v1 standalone tool: `docker-compose …`; names containers `project_service_1`.
    V1Standalone,
}

impl ComposeCli {
    /// The commands that tell whether each flavour is installed, in order of preference.
    ///
    /// v1 is only looked up on `PATH`, not started: it is a Python program that takes
    /// a second or more to start on a busy host, and a broken install still fails
    /// loudly at the first real compose command.
    pub fn probes() -> [(ComposeCli, Cmd); 2] {
        [
            (
                ComposeCli::V2Plugin,
                Cmd::new("docker").args(["compose", "version"]),
            ),
            (
                ComposeCli::V1Standalone,
                Cmd::new("sh").args(["-c", "command -v docker-compose"]),
            ),
        ]
    }

    /// Finds the Compose installed where `shell` runs, preferring the v2 plugin.
    pub async fn detect(shell: &dyn Shell) -> Result<ComposeCli> {
        for (cli, cmd) in Self::probes() {
            // A missing program is an error from the shell; treat it like a non-zero exit.
            if let Ok(out) = shell.run(&cmd, None).await {
                if out.success() {
                    return Ok(cli);
                }
            }
        }
        Err(Error::part(
            "compose.detect",
            shell.location(),
            "neither `docker compose` (v2 plugin) nor `docker-compose` (v1) runs here",
        )
        .with_hint("install the docker compose plugin (or docker-compose) on that host"))
    }

    /// The name Compose gives the image it builds for a service that has no `image:`.
    pub fn built_image_name(self, project: &str, service: &str) -> String {
        match self {
            ComposeCli::V2Plugin => format!("{project}-{service}"),
            ComposeCli::V1Standalone => format!("{project}_{service}"),
        }
    }

    fn base(self) -> Cmd {
        match self {
            ComposeCli::V2Plugin => Cmd::new("docker").arg("compose"),
            ComposeCli::V1Standalone => Cmd::new("docker-compose"),
        }
    }
}

/// One Compose project on one host: everything every compose command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeProject {
    /// The project name (`-p`); also the `com.docker.compose.project` label.
    pub name: String,
    /// The compose files (`-f`), in order; later ones override earlier ones.
    pub files: Vec<PathBuf>,
    /// The env file (`--env-file`), always passed: by default `<directory>/.env`,
    /// the file compose would otherwise pick up implicitly. It must exist.
    pub env_file: PathBuf,
    /// The project directory relative paths in the files are resolved against.
    pub directory: PathBuf,
    /// `DOCKER_HOST` for compose, when the engine is not at the default socket.
    pub docker_host: Option<String>,
    /// Which Compose runs the commands.
    pub cli: ComposeCli,
}

impl ComposeProject {
    /// A project named `name` from `files`, rooted at the first file's directory.
    pub fn new(name: &str, files: Vec<PathBuf>, cli: ComposeCli) -> Result<Self> {
        validate_compose_name("compose project name", name)?;
        let first = files.first().ok_or_else(|| Error::Invalid {
            what: "compose files",
            value: String::new(),
            reason: "at least one compose file is needed".into(),
        })?;
        let directory = first
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self {
            name: name.to_string(),
            files,
            env_file: directory.join(".env"),
            directory,
            docker_host: None,
            cli,
        })
    }

    /// Uses `path` as the env file.
    pub fn env_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.env_file = path.into();
        self
    }

    /// Talks to the engine at `host` (e.g. `unix:///run/user/1000/docker.sock`).
    pub fn docker_host(mut self, host: impl Into<String>) -> Self {
        self.docker_host = Some(host.into());
        self
    }

    /// `compose` with the project's global options and `extra` files after its own.
    fn cmd(&self, extra_files: &[&Path]) -> Cmd {
        let mut cmd = self.cli.base().arg("--project-name").arg(&self.name);
        cmd = cmd
            .arg("--project-directory")
            .arg(self.directory.to_string_lossy());
        for f in self
            .files
            .iter()
            .map(PathBuf::as_path)
            .chain(extra_files.iter().copied())
        {
            cmd = cmd.arg("--file").arg(f.to_string_lossy());
        }
        cmd = cmd.arg("--env-file").arg(self.env_file.to_string_lossy());
        if let Some(host) = &self.docker_host {
            cmd = cmd.public_env("DOCKER_HOST", host);
        }
        cmd
    }

    /// `build <service>` from the project's own files only, so a pinned release
    /// tag can never be overwritten by a build.
    pub fn build(&self, service: &str) -> Cmd {
        self.cmd(&[]).arg("build").arg(service)
    }

    /// `pull <service>` from the project's own files only.
    pub fn pull(&self, service: &str) -> Cmd {
        self.cmd(&[]).arg("pull").arg(service)
    }

    /// `docker pull <reference>` on the project's engine: an image CI built and
    /// pushed, whatever the compose file names.
    pub fn pull_image(&self, reference: &str) -> Cmd {
        let mut cmd = Cmd::new("docker").arg("pull").arg(reference);
        if let Some(host) = &self.docker_host {
            cmd = cmd.public_env("DOCKER_HOST", host);
        }
        cmd
    }

    /// `up -d --no-deps --no-build <service>` with the `pin` override naming the image.
    pub fn up(&self, service: &str, pin: &Path) -> Cmd {
        self.cmd(&[pin])
            .args(["up", "-d", "--no-deps", "--no-build"])
            .arg(service)
    }

    /// `up -d --no-deps --no-build --no-recreate --scale <service>=<replicas> <service>`
    /// with the `pin` override naming the image: the start-first step. Containers
    /// that already exist are left as they are (old release, still serving) and one
    /// more is created from the pinned image. Same argv for v1 and v2.
    pub fn up_scaled(&self, service: &str, pin: &Path, replicas: usize) -> Cmd {
        self.cmd(&[pin])
            .args([
                "up",
                "-d",
                "--no-deps",
                "--no-build",
                "--no-recreate",
                "--scale",
            ])
            .arg(format!("{service}={replicas}"))
            .arg(service)
    }

    /// `config`: the resolved configuration of the project's own files (env
    /// interpolated, extends applied): YAML from v1 (which has no `--format`),
    /// JSON from v2 (`--format json`). Both parse as YAML.
    pub fn config(&self) -> Cmd {
        let cmd = self.cmd(&[]).arg("config");
        match self.cli {
            ComposeCli::V2Plugin => cmd.args(["--format", "json"]),
            ComposeCli::V1Standalone => cmd,
        }
    }

    /// `run --rm --no-deps -T <service> <argv…>`: a one-off container of the image
    /// `pin` names, never the live one.
    pub fn run(&self, service: &str, pin: &Path, argv: &[String]) -> Cmd {
        self.cmd(&[pin])
            .args(["run", "--rm", "--no-deps", "-T"])
            .arg(service)
            .args(argv.iter().cloned())
    }

    /// `stop <service>`.
    pub fn stop(&self, service: &str) -> Cmd {
        self.cmd(&[]).arg("stop").arg(service)
    }
}

/// Compose project and service names end up in labels, container names and argv.
pub(crate) fn validate_compose_name(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what,
            value: value.chars().take(80).collect(),
            reason: "use lowercase letters, digits, '_' and '-', starting with a letter or digit"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(cli: ComposeCli) -> ComposeProject {
        ComposeProject::new("crm", vec!["/srv/crm/docker-compose.yml".into()], cli)
            .unwrap()
            .env_file("/srv/crm/.env.production")
    }

    #[test]
    fn v2_up_passes_project_files_env_and_the_pin_last() {
        let cmd =
            project(ComposeCli::V2Plugin).up("backend", Path::new("/srv/crm/.deploykit/pin.yml"));
        assert_eq!(
            cmd.to_string(),
            "docker compose --project-name crm --project-directory /srv/crm \
             --file /srv/crm/docker-compose.yml --file /srv/crm/.deploykit/pin.yml \
             --env-file /srv/crm/.env.production up -d --no-deps --no-build backend"
        );
    }

    #[test]
    fn start_first_up_scales_by_one_without_recreating_in_both_generations() {
        let pin = Path::new("/srv/crm/.deploykit/pin.yml");
        for cli in [ComposeCli::V1Standalone, ComposeCli::V2Plugin] {
            let cmd = project(cli).up_scaled("backend", pin, 2);
            let tail: Vec<&str> = cmd
                .args
                .iter()
                .map(String::as_str)
                .skip_while(|a| *a != "/srv/crm/.deploykit/pin.yml")
                .collect();
            assert_eq!(
                tail,
                [
                    "/srv/crm/.deploykit/pin.yml",
                    "--env-file",
                    "/srv/crm/.env.production",
                    "up",
                    "-d",
                    "--no-deps",
                    "--no-build",
                    "--no-recreate",
                    "--scale",
                    "backend=2",
                    "backend"
                ],
                "{cli:?}"
            );
        }
        assert_eq!(
            project(ComposeCli::V2Plugin)
                .up_scaled("backend", pin, 2)
                .program,
            "docker"
        );
        assert_eq!(
            project(ComposeCli::V1Standalone)
                .up_scaled("backend", pin, 2)
                .program,
            "docker-compose"
        );
    }

    #[test]
    fn config_reads_the_projects_own_files_as_json_where_compose_can() {
        let v2 = project(ComposeCli::V2Plugin).config();
        assert_eq!(
            v2.to_string(),
            "docker compose --project-name crm --project-directory /srv/crm \
             --file /srv/crm/docker-compose.yml --env-file /srv/crm/.env.production \
             config --format json"
        );
        let v1 = project(ComposeCli::V1Standalone).config();
        assert_eq!(v1.program, "docker-compose");
        assert_eq!(v1.args.last().map(String::as_str), Some("config"));
        assert!(!v1.args.iter().any(|a| a.contains(".deploykit")));
    }

    #[test]
    fn v1_build_never_sees_the_pin_and_the_default_env_file_is_explicit() {
        let p = ComposeProject::new(
            "crm",
            vec!["/srv/crm/a.yml".into(), "/srv/crm/b.yml".into()],
            ComposeCli::V1Standalone,
        )
        .unwrap()
        .docker_host("unix:///tmp/d.sock");
        let cmd = p.build("backend");
        assert_eq!(cmd.program, "docker-compose");
        assert_eq!(
            cmd.args,
            [
                "--project-name",
                "crm",
                "--project-directory",
                "/srv/crm",
                "--file",
                "/srv/crm/a.yml",
                "--file",
                "/srv/crm/b.yml",
                "--env-file",
                "/srv/crm/.env",
                "build",
                "backend"
            ]
        );
        assert_eq!(cmd.env[0].0, "DOCKER_HOST");
    }

    #[test]
    fn run_is_one_off_without_dependencies_or_tty() {
        let argv = vec![
            "npx".to_string(),
            "prisma".into(),
            "migrate".into(),
            "deploy".into(),
        ];
        let cmd = project(ComposeCli::V1Standalone).run("backend", Path::new("/p.yml"), &argv);
        let tail: Vec<&str> = cmd
            .args
            .iter()
            .map(String::as_str)
            .skip_while(|a| *a != "run")
            .collect();
        assert_eq!(
            tail,
            [
                "run",
                "--rm",
                "--no-deps",
                "-T",
                "backend",
                "npx",
                "prisma",
                "migrate",
                "deploy"
            ]
        );
    }

    /// A shell where only the listed programs' `version` succeeds.
    struct Installed(&'static [&'static str]);

    #[async_trait::async_trait]
    impl Shell for Installed {
        fn location(&self) -> &str {
            "test host"
        }
        async fn run(&self, cmd: &Cmd, _: Option<&[u8]>) -> Result<deploykit_core::shell::Output> {
            let name = match (cmd.program.as_str(), cmd.args.first().map(String::as_str)) {
                ("docker", Some("compose")) => "docker compose",
                ("sh", _) if cmd.args.join(" ") == "-c command -v docker-compose" => {
                    "docker-compose"
                }
                _ => cmd.program.as_str(),
            };
            if self.0.contains(&name) {
                Ok(deploykit_core::shell::Output::default())
            } else if cmd.program == "docker" || cmd.program == "sh" {
                Ok(deploykit_core::shell::Output {
                    status: 1,
                    ..Default::default()
                })
            } else {
                Err(Error::part(
                    "run",
                    "test host",
                    format!("cannot start `{cmd}`"),
                ))
            }
        }
    }

    #[tokio::test]
    async fn detection_prefers_v2_falls_back_to_v1_and_says_what_to_install() {
        let both = Installed(&["docker compose", "docker-compose"]);
        assert_eq!(
            ComposeCli::detect(&both).await.unwrap(),
            ComposeCli::V2Plugin
        );
        let v1 = Installed(&["docker-compose"]);
        assert_eq!(
            ComposeCli::detect(&v1).await.unwrap(),
            ComposeCli::V1Standalone
        );
        let err = ComposeCli::detect(&Installed(&[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test host") && err.contains("install"),
            "{err}"
        );
    }

    #[test]
    fn built_image_names_follow_each_generation() {
        assert_eq!(
            ComposeCli::V1Standalone.built_image_name("crm", "api"),
            "crm_api"
        );
        assert_eq!(
            ComposeCli::V2Plugin.built_image_name("crm", "api"),
            "crm-api"
        );
    }

    #[test]
    fn names_that_could_break_labels_or_argv_are_refused() {
        for bad in ["", "Crm", "a b", "-x", "a;b", "../x"] {
            assert!(
                ComposeProject::new(bad, vec!["/a.yml".into()], ComposeCli::V2Plugin).is_err(),
                "{bad}"
            );
        }
        assert!(ComposeProject::new("crm", vec![], ComposeCli::V2Plugin).is_err());
    }
}
