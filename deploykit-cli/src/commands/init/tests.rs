use std::path::Path;

use super::*;
use crate::config::{self, MigrationsConfig, TargetConfig};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn init(dir: &Path, kind: Option<InitKind>) -> Result<config::LoadedConfig> {
    let path = dir.join("deploykit.toml");
    run(&path, &InitArgs { kind, force: true })?;
    Ok(config::load(&path)?)
}

#[test]
fn a_pm2_project_gets_its_apps_build_and_migrations() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        &[
            (
                "ecosystem.config.js",
                "module.exports = { apps: [\n  { name: 'muva-web', script: 'node_modules/.bin/next', \
                 instances: 2, exec_mode: 'cluster' },\n  { name: 'muva-worker', script: 'worker.js' }\n] };\n",
            ),
            ("package.json", r#"{"name": "muva", "scripts": {"build": "next build", "start": "next start"}}"#),
            ("pnpm-lock.yaml", "lockfileVersion: '9.0'\n"),
            ("supabase/migrations/20250101000000_a.sql", "select 1;"),
            ("supabase/migrations/20250101000000_a.down.sql", "select 1;"),
            ("supabase/migrations/20250102000000_b.sql", "select 1;"),
        ],
    );
    let loaded = init(d.path(), None).unwrap();
    let text = std::fs::read_to_string(d.path().join("deploykit.toml")).unwrap();
    assert!(
        text.contains("# apps = [\"muva-web\", \"muva-worker\"]"),
        "both apps are offered, commented:\n{text}"
    );
    for env in ["staging", "production"] {
        let e = &loaded.config.environments[env];
        let Some(TargetConfig::Pm2(p)) = &e.target else {
            panic!("{env}: {:?}", e.target)
        };
        assert_eq!(p.app, "muva-web");
        assert_eq!(p.instances, Some(2));
        assert_eq!(p.ecosystem, "ecosystem.config.js");
        assert_eq!(
            p.install,
            vec![vec!["pnpm", "install", "--frozen-lockfile"]]
        );
        assert_eq!(p.build, vec![vec!["pnpm", "run", "build"]]);
        assert_eq!(p.deploy_to, Path::new("/srv/muva"));
        match &e.migrations {
            Some(MigrationsConfig::Sql { dir, dialect }) => {
                assert_eq!(dir, Path::new("supabase/migrations"));
                assert_eq!(format!("{dialect:?}").to_lowercase(), "supabase");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(loaded.config.environments["production"].gates.approval);
    assert!(!loaded.config.environments["staging"].gates.approval);

    // The commented artifact option, taken instead of repo/install/build, loads.
    let artifact: String = text
        .lines()
        .filter(|l| {
            !l.starts_with("repo = ") && !l.starts_with("install = ") && !l.starts_with("build = ")
        })
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.starts_with("source = ") || rest.starts_with("artifact") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.path().join("deploykit.toml"), artifact).unwrap();
    let loaded = config::load(&d.path().join("deploykit.toml")).unwrap();
    let Some(TargetConfig::Pm2(p)) = &loaded.config.environments["production"].target else {
        panic!("pm2")
    };
    assert_eq!(p.source, crate::config::Pm2Source::Artifact);
    assert_eq!(p.artifact_build.len(), 2);
    crate::source_artifact::check_source("production", p).unwrap();
}

#[test]
fn a_compose_project_gets_its_service_database_and_strategy() {
    let d = tempfile::tempdir().unwrap();
    let compose = "services:\n  db:\n    image: postgres:15\n    environment:\n      POSTGRES_USER: cabanas\n      POSTGRES_DB: reservas\n\
                   \x20 api:\n    build: api\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n    ports:\n      - \"8000\"\n";
    write(
        d.path(),
        &[
            ("compose.yaml", compose),
            ("api/alembic.ini", "[alembic]\n"),
        ],
    );
    let loaded = init(d.path(), None).unwrap();
    let e = &loaded.config.environments["staging"];
    let Some(TargetConfig::Compose(c)) = &e.target else {
        panic!("{:?}", e.target)
    };
    assert_eq!(c.service.as_deref(), Some("api"));
    assert_eq!(c.files, vec![std::path::PathBuf::from("compose.yaml")]);
    assert_eq!(c.strategy, config::ComposeStrategy::Auto);
    let text = std::fs::read_to_string(d.path().join("deploykit.toml")).unwrap();
    assert!(text.contains("deploys api start_first"), "{text}");
    let backup = toml::to_string(e.backup.as_ref().unwrap()).unwrap();
    assert!(
        backup.contains("compose_exec") && backup.contains("\"db\""),
        "{backup}"
    );
    assert!(
        backup.contains("cabanas") && backup.contains("reservas"),
        "{backup}"
    );
    match &e.migrations {
        Some(MigrationsConfig::ComposeRun { up, down, .. }) => {
            assert_eq!(up, &["alembic", "upgrade", "head"]);
            assert_eq!(down.as_ref().unwrap()[2], "{revision}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.probes.len(),
        2,
        "container probe for the HEALTHCHECK, and http"
    );
}

#[test]
fn a_fixed_port_or_container_name_previews_stop_first_and_says_why() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        &[(
            "docker-compose.yml",
            "services:\n  backend:\n    build: .\n    container_name: crm-backend\n",
        )],
    );
    let loaded = init(d.path(), None).unwrap();
    let Some(TargetConfig::Compose(c)) = &loaded.config.environments["staging"].target else {
        panic!()
    };
    assert_eq!(c.strategy, config::ComposeStrategy::Auto);
    let text = std::fs::read_to_string(d.path().join("deploykit.toml")).unwrap();
    assert!(text.contains("container_name: crm-backend"), "{text}");
    assert!(text.contains("deploys backend stop_first"), "{text}");
}

#[test]
fn the_kind_is_asked_for_when_the_files_do_not_tell() {
    let d = tempfile::tempdir().unwrap();
    let err = init(d.path(), None).unwrap_err().to_string();
    assert!(err.contains("--kind"), "{err}");
    write(
        d.path(),
        &[
            ("ecosystem.config.json", r#"{"apps": [{"name": "a"}]}"#),
            ("compose.yml", "services:\n  a:\n    image: x\n"),
        ],
    );
    let err = init(d.path(), None).unwrap_err().to_string();
    assert!(err.contains("both"), "{err}");
    // --kind settles it, and a template with nothing found still loads.
    init(d.path(), Some(InitKind::Compose)).unwrap();
    let empty = tempfile::tempdir().unwrap();
    init(empty.path(), Some(InitKind::Pm2)).unwrap();
    init(empty.path(), Some(InitKind::Compose)).unwrap();
}

#[test]
fn names_become_valid_project_names() {
    assert_eq!(scan::slug("@acme/Web App"), "acme-web-app");
    assert_eq!(scan::slug(".tmpAbC"), "tmpabc");
    assert_eq!(scan::slug("muva_2"), "muva_2");
}

#[test]
fn an_ecosystem_file_node_cannot_evaluate_becomes_a_note_not_a_wrong_app() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        &[
            (
                "ecosystem.config.js",
                "module.exports = { apps: [ { name: 'x', }\n",
            ),
            ("package.json", r#"{"name": "shop"}"#),
        ],
    );
    let loaded = init(d.path(), None).unwrap();
    let text = std::fs::read_to_string(d.path().join("deploykit.toml")).unwrap();
    assert!(
        text.contains("# note: ecosystem.config.js: cannot evaluate it with node"),
        "the file says what it could not read:\n{text}"
    );
    let Some(TargetConfig::Pm2(p)) = &loaded.config.environments["staging"].target else {
        panic!()
    };
    assert_eq!(
        p.app, "shop",
        "falls back to the project's name, to be checked by hand"
    );
}

#[test]
fn the_templates_carry_a_commented_hook_that_loads_when_uncommented() {
    for (files, on) in [
        (
            vec![(
                "ecosystem.config.js",
                "module.exports = { apps: [{ name: 'web', script: 'server.js' }] };\n",
            )],
            "hosts",
        ),
        (
            vec![("docker-compose.yml", "services:\n  web:\n    build: .\n")],
            "local",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &files);
        init(d.path(), None).unwrap();
        let path = d.path().join("deploykit.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("# [[defaults.hooks]]").expect("a hook example");
        let uncommented: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        std::fs::write(
            &path,
            format!("{}{uncommented}\n{}", &text[..start], &text[start..]),
        )
        .unwrap();
        let loaded = config::load(&path).unwrap();
        let hooks = &loaded.config.environments["staging"].hooks;
        assert_eq!(hooks.len(), 1, "{text}");
        assert_eq!(hooks[0].at, "post_activate");
        assert_eq!(hooks[0].on, on);
    }
}

#[test]
fn a_compose_worker_is_offered_as_a_commented_services_line_that_loads() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        &[(
            "docker-compose.yml",
            "services:\n  web:\n    build: .\n  worker:\n    build: .\n    command: [\"node\", \"worker.js\"]\n  db:\n    image: postgres:16\n",
        )],
    );
    init(d.path(), None).unwrap();
    let path = d.path().join("deploykit.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("# services = "))
        .unwrap_or_else(|| panic!("a commented services line: {text}"));
    assert!(line.contains(r#"["web", "worker"]"#), "{line}");
    // Uncommented in place of `service`, it loads as several services.
    let edited = text
        .replace("service = \"web\"\n", "")
        .replace(line, &line[2..]);
    std::fs::write(&path, edited).unwrap();
    let loaded = config::load(&path).unwrap();
    let Some(TargetConfig::Compose(c)) = &loaded.config.environments["staging"].target else {
        panic!("a compose target")
    };
    assert_eq!(c.service_names(), ["web", "worker"]);
}
