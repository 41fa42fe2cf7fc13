"""The MUVA-style world: the node app under PM2 (cluster mode) on the rig's sshd,
deployed over SSH from a git repository, with Supabase-dialect SQL migrations on
the rig's PostgreSQL, pg_dump backups, and HTTP + PM2 probes: examples/muva with the
rig's hosts, ports and paths filled in (the same wiring as
deploykit-cli/tests/example_muva.rs)."""
import os
import shutil
from pathlib import Path

from .common import env_with, free_port, git, http_json, http_text, sh
from .muva_standin import copy_muva_standin

RIG_VARS = ["DEPLOYKIT_RIG_SSH_HOST", "DEPLOYKIT_RIG_SSH_PORT", "DEPLOYKIT_RIG_SSH_USER",
            "DEPLOYKIT_RIG_SSH_KEY", "DEPLOYKIT_RIG_SSH_KNOWN_HOSTS", "DEPLOYKIT_RIG_PM2_ROOT",
            "DEPLOYKIT_RIG_PG_URL"]

# The app under test learns two extra failure modes in the throwaway copy, toggled by
# committed files like the example's own `.unhealthy`: a health endpoint that never
# answers, and one that answers 200 with {"status":"unhealthy"}.
SERVER_PATCH = """
const hang = fs.existsSync(path.join(here, '.hang-health'));
const sick200 = fs.existsSync(path.join(here, '.unhealthy-200'));
"""


class Pm2World:
    kind = "pm2"
    env_name = "staging"

    def __init__(self, exe, name):
        self.exe = exe
        self.name = name
        self.ssh_user = os.environ["DEPLOYKIT_RIG_SSH_USER"]
        self.ssh_host = os.environ["DEPLOYKIT_RIG_SSH_HOST"]
        self.ssh_port = os.environ["DEPLOYKIT_RIG_SSH_PORT"]
        self.base = Path(os.environ["DEPLOYKIT_RIG_PM2_ROOT"]) / f"faults-{name}"
        self.repo = self.base / "repo"
        self.deploy_to = self.base / "srv"
        self.pm2_home = self.base / "pm2home"
        self.port = free_port()
        pg = os.environ["DEPLOYKIT_RIG_PG_URL"]
        self.admin_url = pg
        self.db = f"faults_{name.replace('-', '_')}"
        self.db_url = pg.rsplit("/", 1)[0] + "/" + self.db
        self.rows = 0
        self.versions = {}  # version -> commit
        self.expected = {}  # version -> (tables, history versions)
        self.counter = 0

    # ------------------------------------------------------------------ setup
    def setup(self):
        """Repo with v1, database, first deploy, one row written before any deploy."""
        self.teardown()
        copy_muva_standin(self.repo)
        server = (self.repo / "server.js").read_text()
        server = server.replace("const port =", SERVER_PATCH + "const port =", 1)
        server = server.replace(
            "  if (req.url === '/api/health') {\n",
            "  if (req.url === '/api/health') {\n"
            "    if (hang) return;\n"
            "    if (sick200) return json(res, 200, { status: 'unhealthy', version, release });\n", 1)
        (self.repo / "server.js").write_text(server)
        (self.repo / ".gitignore").write_text("dist/\n.deploykit/\nbackups/\n")
        (self.deploy_to / "shared").mkdir(parents=True)
        (self.deploy_to / "shared/.env.local").write_text("SUPABASE_ANON_KEY=not-for-logs\n")
        toml = (self.repo / "deploykit.toml").read_text()
        toml = toml.replace('app = "muva"', f'app = "muva"\npm2_home = "{self.pm2_home}"', 1)
        toml = toml.replace("/srv/muva", str(self.deploy_to))
        toml = (toml.replace("settle_secs = 5", "settle_secs = 1")
                .replace("health_interval_secs = 5", "health_interval_secs = 1")
                .replace("health_attempts = 30", "health_attempts = 4")
                .replace("health_deadline_secs = 150", "health_deadline_secs = 20"))
        (self.repo / "deploykit.toml").write_text(toml)
        sh("psql", self.admin_url, "-qc", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        sh("psql", self.admin_url, "-qc", f"CREATE DATABASE {self.db}")
        git(self.repo, "init", "-q", "-b", "main")
        v1 = self.commit("v1")
        r = self.run("deploy", "--env", self.env_name, "--ref", v1)
        if r.returncode != 0:
            raise RuntimeError(f"first deploy failed: {r.stderr[-2000:]}")
        self.write_row()
        return self

    def write_row(self):
        self.psql("INSERT INTO accommodations (name, capacity) VALUES ('written before a deploy', 2)")
        self.rows += 1

    def teardown(self):
        if self.pm2_home.exists():
            sh("su", self.ssh_user, "-c", f"PM2_HOME={self.pm2_home} pm2 kill >/dev/null 2>&1", check=False)
        if self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True, exist_ok=True)

    def drop(self):
        self.teardown()
        shutil.rmtree(self.base, ignore_errors=True)
        sh("psql", self.admin_url, "-qc", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)", check=False)

    # ------------------------------------------------------------------ releases
    def migrations(self):
        d = self.repo / "supabase/migrations"
        return sorted(p.name for p in d.glob("*.sql") if not p.name.endswith(".down.sql"))

    def add_migration(self, table, up=None, down=None):
        """A new migration creating `table` (or the given SQL), with its down script."""
        self.counter += 1
        stamp = f"2026{self.counter:010d}"
        d = self.repo / "supabase/migrations"
        (d / f"{stamp}_add_{table}.sql").write_text(up or f"CREATE TABLE {table} (id bigserial PRIMARY KEY);\n")
        (d / f"{stamp}_add_{table}.down.sql").write_text(down or f"DROP TABLE {table};\n")
        return stamp

    def remove_migration(self, stamp):
        for p in (self.repo / "supabase/migrations").glob(f"{stamp}_*"):
            p.unlink()

    def set_flags(self, *flags):
        """Failure-mode files in the next commit: unhealthy, hang-health, unhealthy-200, fail-build."""
        for f in (".unhealthy", ".hang-health", ".unhealthy-200", ".fail-build"):
            p = self.repo / f
            if f.lstrip(".") in flags:
                p.write_text("on\n")
            elif p.exists():
                p.unlink()

    def commit(self, version):
        (self.repo / "VERSION").write_text(version + "\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", version, "--allow-empty")
        sh("chown", "-R", self.ssh_user, self.base)
        sha = git(self.repo, "rev-parse", "HEAD")
        self.versions[version] = sha
        tables = set()
        for m in self.migrations():
            text = (self.repo / "supabase/migrations" / m).read_text()
            for word in text.split("CREATE TABLE ")[1:]:
                tables.add(word.split()[0])
        history = tuple(m.split("_", 1)[0] for m in self.migrations())
        self.expected[version] = (tuple(sorted(tables)), history)
        return sha

    # ------------------------------------------------------------------ running
    def env(self):
        return env_with(
            GIT_CONFIG_COUNT=1, GIT_CONFIG_KEY_0="safe.directory", GIT_CONFIG_VALUE_0="*",
            MUVA_REPO=f"file://{self.repo}",
            MUVA_STAGING_SSH=f"{self.ssh_user}@{self.ssh_host}:{self.ssh_port}",
            MUVA_STAGING_URL=f"http://127.0.0.1:{self.port}",
            MUVA_PORT=self.port,
            MUVA_SSH_KEY_FILE=os.environ["DEPLOYKIT_RIG_SSH_KEY"],
            MUVA_KNOWN_HOSTS=os.environ["DEPLOYKIT_RIG_SSH_KNOWN_HOSTS"],
            SUPABASE_STAGING_DB_URL=self.db_url,
            # examples/muva keeps its backups in object storage (nothing stays on a
            # CI runner): the rig's S3 server, one prefix per world.
            MUVA_BACKUP_STORE=f"s3://{os.environ['DEPLOYKIT_RIG_S3_BUCKET']}/{self.name}",
            MUVA_BACKUP_S3_ENDPOINT=os.environ["DEPLOYKIT_RIG_S3_ENDPOINT"],
            MUVA_BACKUP_S3_REGION=os.environ["DEPLOYKIT_RIG_S3_REGION"],
            MUVA_BACKUP_S3_ACCESS_KEY_ID=os.environ["DEPLOYKIT_RIG_S3_ACCESS_KEY_ID"],
            MUVA_BACKUP_S3_SECRET_ACCESS_KEY=os.environ["DEPLOYKIT_RIG_S3_SECRET_ACCESS_KEY"])

    def argv(self, *args):
        return [self.exe, "--json", *args]

    def run(self, *args, env=None, timeout=600):
        return sh(*self.argv(*args), cwd=self.repo, check=False, env=env or self.env(), timeout=timeout)

    def deploy_argv(self, version):
        return self.argv("deploy", "--env", self.env_name, "--ref", self.versions[version])

    def journal_dir(self):
        # A PM2 environment keeps its journals on its host (the state store).
        return self.deploy_to / ".deploykit/journal" / self.env_name

    def psql(self, sql):
        return sh("psql", self.db_url, "-qtAc", sql).stdout.strip()

    # ------------------------------------------------------------------ the world
    def world(self):
        """What is live: the release `current` names, what the app serves and says
        about its health, PM2's view, the schema and the rows."""
        link = self.deploy_to / "current"
        try:
            linked = (link / "VERSION").read_text().strip()
        except OSError:
            linked = None
        served = http_text(f"http://127.0.0.1:{self.port}/", timeout=3)
        health = http_json(f"http://127.0.0.1:{self.port}/api/health", timeout=3).get("status")
        tables = self.psql("SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') "
                           "FROM pg_tables WHERE schemaname = 'public'")
        history = self.psql("SELECT coalesce(string_agg(version, ',' ORDER BY version), '') "
                            "FROM supabase_migrations.schema_migrations")
        rows = int(self.psql("SELECT count(*) FROM accommodations"))
        return {"linked": linked, "served": served, "health": health,
                "tables": tuple(t for t in tables.split(",") if t),
                "history": tuple(h for h in history.split(",") if h), "rows": rows}

    def matches(self, world, version):
        """Is the world healthy on `version`, with its schema and every row?"""
        tables, history = self.expected[version]
        return (world["linked"] == version and world["served"] == version and world["health"] == "ok"
                and world["tables"] == tables and world["history"] == history and world["rows"] == self.rows)

    def live_version(self):
        w = self.world()
        return w["linked"], w
