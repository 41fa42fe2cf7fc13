"""Issue 11, case 2: an app PM2 already ran before deploykit's first deploy, started
by hand from a plain directory (`pm2 start server.js --name muva -i N`), as a team
switching from hand scripts has it. Each scenario reports the exit code and whether
the hand-started app is exactly as it was afterwards (same directory, script,
instance count and env, serving its own version) or, after a good deploy, fully
replaced by the release.

    script/faults --seams adopt
"""
import json
import os
import signal
import subprocess

from .common import git, http_text, journal_files, journal_records, sh, wait_until
from .muva_standin import copy_muva_standin
from .pm2_world import Pm2World


def log(msg):
    print(msg, file=os.sys.stderr, flush=True)


class HandStartedWorld(Pm2World):
    """The MUVA world before any deploykit deploy: the app runs from `hand/`."""

    def setup(self):
        self.teardown()
        copy_muva_standin(self.repo)
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
        self.commit("hand")
        self.hand = self.base / "hand"
        self.as_user(f"git -c safe.directory='*' clone -q file://{self.repo} {self.hand} && "
                     f"cd {self.hand} && npm run build --silent >/dev/null")
        return self

    def as_user(self, script):
        return sh("su", self.ssh_user, "-c", script)

    def pm2(self, args, check=True):
        return sh("su", self.ssh_user, "-c", f"PM2_HOME={self.pm2_home} pm2 {args}", check=check)

    def start_by_hand(self, instances):
        self.pm2("delete muva >/dev/null 2>&1", check=False)
        self.as_user(f"cd {self.hand} && PM2_HOME={self.pm2_home} PORT={self.port} APP_NAME=muva "
                     f"DATABASE_URL={self.db_url} HAND_MARK=by-hand pm2 start server.js --name muva "
                     f"-i {instances} >/dev/null")
        wait_until(lambda: self.served() == "hand", 20)

    def set_adopt(self, on):
        toml = (self.repo / "deploykit.toml").read_text().replace("\nadopt_running = true", "")
        if on:
            toml = toml.replace('app = "muva"', 'app = "muva"\nadopt_running = true', 1)
        (self.repo / "deploykit.toml").write_text(toml)

    def served(self):
        return http_text(f"http://127.0.0.1:{self.port}/", timeout=3)

    def processes(self):
        out = self.pm2("jlist").stdout
        return [p for p in json.loads(out[out.index("["):]) if p["name"] == "muva"]

    def by_hand_as_it_was(self, instances):
        """The hand-started app, exactly: directory, script, count, env, version."""
        procs = self.processes()
        ok = (len(procs) == instances and all(
            p["pm2_env"]["status"] == "online"
            and p["pm2_env"].get("pm_cwd") == str(self.hand)
            and p["pm2_env"].get("pm_exec_path") == str(self.hand / "server.js")
            and p["pm2_env"].get("env", {}).get("HAND_MARK") == "by-hand" for p in procs))
        return ok and wait_until(lambda: self.served() == "hand", 20) \
            and not (self.deploy_to / "current").is_symlink()

    def all_on_release(self, version):
        procs = self.processes()
        return (len(procs) == 2 and all(p["pm2_env"].get("pm_cwd", "").startswith(str(self.deploy_to))
                                        for p in procs)
                and wait_until(lambda: self.served() == version, 20))


def scenario(rows, name, code, ok, note=""):
    rows.append(f"| {name} | {code} | {'yes' if ok else '**NO**'} | {note} |")
    log(f"  {name}: exit {code}, {'ok' if ok else 'FAILED'} {note}")
    return 0 if ok else 1


def run(exe):
    rows, failed = [], 0
    w = HandStartedWorld(exe, "seams-adopt")
    try:
        w.setup()
        w.start_by_hand(2)

        # 1. Not told to adopt: refused before anything changes.
        w.set_flags()
        w.commit("v1")
        r = w.run("deploy", "--env", w.env_name, "--ref", w.versions["v1"])
        said = "adopt_running" in (r.stdout + r.stderr)
        failed += scenario(rows, "hand-started app, no `adopt_running`: refused", r.returncode,
                           r.returncode != 0 and said and w.by_hand_as_it_was(2),
                           "names `adopt_running`" if said else "does not say how to adopt")

        # 2. Adopted; the first release is unhealthy, and the hand-started app ran
        #    one worker where the ecosystem file asks for two.
        w.set_adopt(True)
        w.start_by_hand(1)
        w.set_flags("unhealthy")
        w.commit("v2")
        r = w.run("deploy", "--env", w.env_name, "--ref", w.versions["v2"])
        failed += scenario(rows, "adopted, unhealthy first deploy, 1 worker by hand vs 2: undone",
                           r.returncode, r.returncode == 1 and w.by_hand_as_it_was(1))

        # 3. Adopted; the deploy is killed right after activation, then `recover`.
        w.set_flags()
        w.commit("v3")
        before = set(journal_files(w.journal_dir()))
        proc = subprocess.Popen([str(a) for a in w.deploy_argv("v3")], cwd=w.repo, env=w.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def activated():
            new = [j for j in journal_files(w.journal_dir()) if j not in before]
            return new and any(x.get("record") == "outcome" and x.get("phase") == "activate"
                               for x in journal_records(new[0]))
        wait_until(lambda: activated() or proc.poll() is not None, 300, step=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rec = w.run("recover", "--env", w.env_name)
        failed += scenario(rows, "adopted, killed after activation, `recover`: hand-started app back",
                           rec.returncode, rec.returncode == 0 and w.by_hand_as_it_was(1))

        # 4. Adopted; a good first release takes over completely.
        r = w.run("deploy", "--env", w.env_name, "--ref", w.versions["v3"])
        failed += scenario(rows, "adopted, good first deploy: every worker on the release", r.returncode,
                           r.returncode == 0 and w.all_on_release("v3"))
    finally:
        w.drop()
    table = ["| case 2: app started by hand before the first deploy | exit | as expected | note |",
             "|---|---|---|---|", *rows]
    return table, failed
