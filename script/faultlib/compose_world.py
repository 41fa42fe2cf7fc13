"""The Cabañas-style world: an API container and PostgreSQL in one Compose project
on the rig's private Docker engine, Alembic-style migrations in one-off containers
of the new image (downgraded exactly on rollback), pg_dump inside the db container,
and container + HTTP probes: the busybox stand-in of examples/cabanas kept in
script/faultlib/cabanas_standin (see its README) with the rig's images and ports."""
import os
import shutil
import tempfile
from pathlib import Path

from .common import ROOT, env_with, free_port, git, http_json, http_text, sh, wait_until

RIG_VARS = ["DEPLOYKIT_RIG_DOCKER_HOST", "DEPLOYKIT_RIG_DOCKER_POSTGRES"]

# Failure modes toggled by files under api/flags/ in the throwaway copy (the image
# copies them to /app/flags): a 503 "unhealthy", a health endpoint that never
# answers, and a 200 that says {"status":"unhealthy"}.
HANDLE_PATCH = """  /api/v1/healthz)
    if [ -e /app/flags/hang-health ]; then sleep 3600; fi
    if [ -e /app/flags/unhealthy-200 ]; then respond "200 OK" "{\\"status\\":\\"unhealthy\\",\\"version\\":\\"$(cat /app/VERSION)\\"}"; exit 0; fi
    if [ -e /app/flags/unhealthy ]; then respond "503 Service Unavailable" "{\\"status\\":\\"unhealthy\\",\\"version\\":\\"$(cat /app/VERSION)\\"}"; exit 0; fi
"""


class ComposeWorld:
    kind = "compose"
    env_name = "production"

    def __init__(self, exe, name):
        self.exe = exe
        self.name = name
        self.docker_host = os.environ["DEPLOYKIT_RIG_DOCKER_HOST"]
        self.pg_image = os.environ["DEPLOYKIT_RIG_DOCKER_POSTGRES"]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"dk-faults-{name}-"))
        self.repo = self.tmp / "cabanas"
        self.project = f"faults-{name}"
        self.port = free_port()
        self.db_port = free_port()
        self.rows = 0
        self.versions = {}
        self.expected = {}
        self.counter = 0

    # ------------------------------------------------------------------ setup
    def setup(self):
        self.compose_down()
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.copytree(ROOT / "script/faultlib/cabanas_standin", self.repo)
        handle = (self.repo / "api/bin/handle").read_text()
        handle = handle.replace("  /api/v1/healthz)\n", HANDLE_PATCH, 1)
        (self.repo / "api/bin/handle").write_text(handle)
        (self.repo / "api/flags").mkdir()
        (self.repo / "api/flags/.keep").write_text("")
        docker = (self.repo / "api/Dockerfile").read_text()
        docker = docker.replace("COPY VERSION /app/VERSION", "COPY VERSION /app/VERSION\nCOPY flags/ /app/flags/")
        (self.repo / "api/Dockerfile").write_text(docker)
        toml = (self.repo / "deploykit.toml").read_text()
        toml = (toml.replace("health_interval_secs = 3", "health_interval_secs = 1")
                .replace("health_attempts = 20", "health_attempts = 4")
                .replace("health_deadline_secs = 90", "health_deadline_secs = 30")
                .replace("health_wait_secs = 120", "health_wait_secs = 30"))
        (self.repo / "deploykit.toml").write_text(toml)
        (self.repo / ".env").write_text(
            f"CABANAS_PROJECT={self.project}\nCABANAS_PORT={self.port}\nCABANAS_DB_PORT={self.db_port}\n"
            f"CABANAS_DB_IMAGE={self.pg_image}\nCABANAS_BASE_IMAGE={self.pg_image}\n")
        (self.repo / ".gitignore").write_text(".deploykit/\nbackups/\n")
        git(self.repo, "init", "-q", "-b", "main")
        v1 = self.commit("v1")
        self.compose("up", "-d", "db")
        if not wait_until(lambda: sh("psql", *self.pg_args(), "-qtAc", "select 1", check=False).returncode == 0, 60):
            raise RuntimeError("the db service did not come up")
        r = self.run("deploy", "--env", self.env_name, "--ref", v1)
        if r.returncode != 0:
            raise RuntimeError(f"first deploy failed: {r.stderr[-2000:]}")
        self.write_row()
        return self

    def pg_args(self):
        return ["-h", "127.0.0.1", "-p", str(self.db_port), "-U", "cabanas", "-d", "cabanas"]

    def psql(self, sql):
        return sh("psql", *self.pg_args(), "-qtAc", sql).stdout.strip()

    def write_row(self):
        self.psql("INSERT INTO cabins (name, beds) VALUES ('written before a deploy', 2)")
        self.rows += 1

    def compose(self, *args, check=True):
        return sh("docker-compose", "-p", self.project, "-f", "docker-compose.yml", "--env-file", ".env", *args,
                  cwd=self.repo, check=check, env=env_with(DOCKER_HOST=self.docker_host))

    def docker(self, *args, check=True, timeout=60):
        return sh("docker", *args, check=check, env=env_with(DOCKER_HOST=self.docker_host), timeout=timeout)

    def compose_down(self):
        if (self.repo / "docker-compose.yml").exists():
            self.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)

    def drop(self):
        self.compose_down()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ releases
    def revisions(self):
        d = self.repo / "api/alembic/versions"
        return sorted(p.name for p in d.glob("*.up.sql"))

    def add_migration(self, table, up=None, down=None):
        self.counter += 1
        rev = f"r{self.counter:05d}"
        d = self.repo / "api/alembic/versions"
        (d / f"{rev}_add_{table}.up.sql").write_text(up or f"CREATE TABLE {table} (id serial PRIMARY KEY);\n")
        (d / f"{rev}_add_{table}.down.sql").write_text(down or f"DROP TABLE {table};\n")
        return rev

    def remove_migration(self, rev):
        for p in (self.repo / "api/alembic/versions").glob(f"{rev}_*"):
            p.unlink()

    def set_flags(self, *flags):
        for f in ("unhealthy", "hang-health", "unhealthy-200"):
            p = self.repo / "api/flags" / f
            if f in flags:
                p.write_text("on\n")
            elif p.exists():
                p.unlink()

    def commit(self, version):
        (self.repo / "api/VERSION").write_text(f"cabanas {version}\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", version, "--allow-empty")
        sha = git(self.repo, "rev-parse", "HEAD")
        self.versions[version] = sha
        tables = set()
        for m in self.revisions():
            text = (self.repo / "api/alembic/versions" / m).read_text()
            for word in text.split("CREATE TABLE ")[1:]:
                tables.add(word.split()[0])
        revs = self.revisions()
        self.expected[version] = (tuple(sorted(tables | {"alembic_version"})), revs[-1].split("_")[0])
        return sha

    # ------------------------------------------------------------------ running
    def env(self):
        return env_with(DOCKER_HOST=self.docker_host)

    def argv(self, *args):
        return [self.exe, "--json", *args]

    def run(self, *args, env=None, timeout=900):
        return sh(*self.argv(*args), cwd=self.repo, check=False, env=env or self.env(), timeout=timeout)

    def deploy_argv(self, version):
        return self.argv("deploy", "--env", self.env_name, "--ref", self.versions[version])

    def journal_dir(self):
        return self.repo / ".deploykit/journal" / self.env_name

    # ------------------------------------------------------------------ the world
    def running_api(self):
        """(container id, version in its image) of each running api container."""
        ids = self.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
                          "--filter", "label=com.docker.compose.service=api", check=False).stdout.split()
        out = []
        for cid in ids:
            v = self.docker("exec", cid, "cat", "/app/VERSION", check=False, timeout=20).stdout.strip()
            out.append(v.replace("cabanas ", ""))
        return out

    def world(self):
        running = self.running_api()
        served = http_json(f"http://127.0.0.1:{self.port}/", timeout=3).get("version", "?").replace("cabanas ", "")
        health = http_json(f"http://127.0.0.1:{self.port}/api/v1/healthz", timeout=4).get("status")
        try:
            tables = self.psql("SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') "
                               "FROM pg_tables WHERE schemaname = 'public'")
            history = self.psql("SELECT coalesce(max(version_num), '') FROM alembic_version")
            rows = int(self.psql("SELECT count(*) FROM cabins"))
        except Exception:  # noqa: BLE001 - the database being down is part of the world
            tables, history, rows = "DATABASE-DOWN", "?", None
        return {"linked": ",".join(running) or None, "served": served, "health": health,
                "tables": tuple(t for t in tables.split(",") if t), "history": history, "rows": rows}

    def matches(self, world, version):
        tables, history = self.expected[version]
        return (world["linked"] == version and world["served"] == version
                and world["health"] in ("healthy", "degraded")
                and world["tables"] == tables and world["history"] == history and world["rows"] == self.rows)
