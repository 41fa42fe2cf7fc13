"""Issue 11 case 4: staging and production share one backup directory
(`dir = "backups"` in both), each with its own PostgreSQL database on the rig.

Staging deploys often (`keep = 2`), production deployed once. Checked:
- staging's rotation never deletes production's backup;
- `backup list --env production` shows production's backups only;
- `backup restore --env production <staging file>` is refused and changes nothing;
  with `--from-env staging` it restores on purpose.
"""
import json
import os
import sys
import tempfile
from pathlib import Path

from .common import env_with, free_port, git, sh


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def psql(url, sql):
    return sh("psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql).stdout.strip()


class SharedBackups:
    def __init__(self, exe, base):
        self.exe = exe
        self.dir = Path(base)
        self.repo = self.dir / "app"
        self.repo.mkdir(parents=True)
        admin = os.environ["DEPLOYKIT_RIG_PG_URL"]
        root, _ = admin.rsplit("/", 1)
        self.admin = admin
        self.dbs = {}
        for env in ("staging", "production"):
            name = f"dk_seams_backup_{env}_{os.getpid()}"
            psql(admin, f"drop database if exists {name}")
            psql(admin, f"create database {name}")
            self.dbs[env] = (name, f"{root}/{name}")
            psql(self.dbs[env][1], f"create table notes (body text); insert into notes values ('{env} data')")
        git(self.repo, "init", "-q", "-b", "main")
        self.commits = []
        for v in ("v1", "v2", "v3", "v4", "v5"):
            (self.repo / "VERSION").write_text(v + "\n")
            (self.repo / "HEALTHY").write_text("yes\n")
            git(self.repo, "add", "-A")
            git(self.repo, "commit", "-qm", v)
            self.commits.append(git(self.repo, "rev-parse", "HEAD"))
        config = '[project]\nstate_dir = "state"\n'
        for env in ("staging", "production"):
            port = free_port()
            config += f"""
[environments.{env}.target]
kind = "local"
deploy_to = "srv-{env}"
repo = "app"
start = ["{exe}", "demo-app", "--port", "{{port}}"]
port = {port}
[environments.{env}.database]
url = "{self.dbs[env][1]}"
[environments.{env}.backup]
kind = "pg_dump"
dir = "backups"
keep = 2
[[environments.{env}.probes]]
kind = "http"
url = "http://127.0.0.1:{port}/api/health"
json_status = true
[environments.{env}.policy]
health_deadline_secs = 5
health_attempts = 5
health_interval_secs = 1
"""
        (self.dir / "deploykit.toml").write_text(config)

    def run(self, *args, check=False):
        return sh(self.exe, "--json", *args, cwd=self.dir, check=check, env=env_with())

    def deploy(self, env, n):
        r = self.run("deploy", "-e", env, "--release", f"r{n}", "--ref", self.commits[n - 1])
        if r.returncode != 0:
            raise RuntimeError(f"deploy {env} r{n} exited {r.returncode}: {r.stderr[-800:]}")

    def listed(self, env):
        r = self.run("backup", "list", "-e", env, check=True)
        return [a["path"] for a in json.loads(r.stdout.strip().splitlines()[-1])["artifacts"]]

    def notes(self, env):
        return psql(self.dbs[env][1], "select body from notes")

    def stop_apps(self):
        for env in ("staging", "production"):
            pid = self.dir / f"srv-{env}" / ".deploykit" / "app.pid"
            if pid.exists():
                try:
                    os.kill(int(pid.read_text().strip()), 9)
                except (ProcessLookupError, ValueError):
                    pass

    def drop(self):
        self.stop_apps()
        for name, _ in self.dbs.values():
            sh("psql", self.admin, "-X", "-q", "-c", f"drop database if exists {name} with (force)", check=False)


def checks(w):
    """Runs the scenario; returns [(check, ok, detail)]."""
    out = []
    w.deploy("production", 1)
    prod_backups = w.listed("production")
    out.append(("production took a backup", len(prod_backups) == 1, prod_backups))
    for n in range(1, 5):
        w.deploy("staging", n)
    staging_backups = w.listed("staging")
    on_disk = sorted(p.name for p in (w.dir / "backups").glob("*.dump"))
    out.append(("staging keeps its newest 2", len(staging_backups) == 2, staging_backups))
    out.append(("production's backup survives staging's rotation",
                all(Path(p).exists() for p in prod_backups), on_disk))
    out.append(("`backup list --env production` shows production's only",
                w.listed("production") == prod_backups, w.listed("production")))
    r = w.run("backup", "restore", "-e", "production", staging_backups[-1], "--yes-replace-live-data")
    said = r.stdout + r.stderr  # --json puts the error on stdout
    out.append(("restoring staging's backup into production is refused",
                r.returncode == 5 and "--from-env staging" in said, said.strip()[-300:]))
    out.append(("production's data unchanged", w.notes("production") == "production data", w.notes("production")))
    r = w.run("backup", "restore", "-e", "production", staging_backups[-1], "--yes-replace-live-data",
              "--from-env", "staging")
    out.append(("`--from-env staging` restores on purpose",
                r.returncode == 0 and w.notes("production") == "staging data", r.stderr.strip()[-300:]))
    return out


def run(exe):
    """The markdown section and the number of failed checks."""
    log("seams: environments sharing a backup directory")
    with tempfile.TemporaryDirectory(prefix="dk-seams-backup-") as base:
        w = SharedBackups(exe, base)
        try:
            results = checks(w)
        except Exception as e:  # noqa: BLE001 - a crash of the scenario is a failure
            results = [("scenario ran", False, str(e))]
        finally:
            w.drop()
    rows = []
    for name, ok, detail in results:
        rows.append(f"| {name} | {'ok' if ok else 'FAILED'} |")
        if not ok:
            log(f"FAILED: {name}: {detail}")
    table = ["| shared backup directory (staging + production, Postgres) | result |", "|---|---|", *rows]
    return table, sum(1 for _, ok, _ in results if not ok)
