"""The fresh-runner crash campaign (`script/faults --fresh-runner`, issue 12): a CI
runner is thrown away after every job, and a job is cancelled mid-deploy whenever a
newer push arrives. So for every journal record k of a real deploy (and of one that
rolls back):

1. clone A (a fresh clone of the project) starts `deploykit deploy`;
2. it is SIGKILLed as soon as the run's journal holds k records, watched WHERE THE
   JOURNAL LIVES: on the environment's host when deploykit keeps it there (found by
   looking for the journal a full run writes outside the clone), else in clone A's
   state_dir (main before issue 12, where a kill then proves nothing can recover);
3. clone A is deleted with its state_dir and its local backup dir;
4. clone B, a new clone with an empty state_dir, runs `deploykit recover`;
5. the world must settle healthy on the old or the new release with that release's
   schema and every row (the rig's PostgreSQL), `recover` must exit 0, and clone B's
   `lock status` must show the lock free (a held lock blocks every later deploy).

Worlds: PM2 over SSH (pm2_world, unchanged) and Compose over SSH: the Cabañas world
with `host = "ssh://…"` through the rig's sshd, whose user is in the rig engine
socket's group (as deploykit-docker/tests/remote_engine.rs does)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

from .common import journal_records, last_json_line, sh
from .compose_world import ComposeWorld
from .crash import next_release, settle
from .pm2_world import Pm2World


def log(msg):
    print(msg, file=sys.stderr, flush=True)


Pm2World.local_state = ".deploykit"


class ComposeSshWorld(ComposeWorld):
    """The Cabañas world, its engine reached as `ssh://dkdeploy@127.0.0.1:PORT`.

    The project lives where the SSH user can read it (compose runs on the "host", as
    that user, with the checkout's files)."""

    # Short: the engine's forwarded socket lives under it, and a unix socket path
    # has at most 107 bytes (see docs/RELIABILITY.md, fresh-runner section).
    local_state = ".rs"

    def __init__(self, exe, name):
        super().__init__(exe, name)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.ssh_user = os.environ["DEPLOYKIT_RIG_SSH_USER"]
        self.tmp = Path(os.environ["DEPLOYKIT_RIG_PM2_ROOT"]) / f"faults-{name}"
        self.repo = self.tmp / "cabanas"
        self.base = self.tmp

    def host_state_root(self):
        """The SSH user's ~/.deploykit/compose/<project> (issue 12's host store)."""
        return Path(os.path.expanduser(f"~{self.ssh_user}")) / ".deploykit/compose" / self.project

    def setup(self):
        self.compose_down()
        shutil.rmtree(self.host_state_root(), ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.versions, self.expected, self.counter, self.rows = {}, {}, 0, 0
        return super().setup()

    def _engine_over_ssh(self):
        # FRESH_RUNNER_SOCKET_KEY=socket: the fail-before binary (main + freshrunner's
        # first `socket` knob, which state later named `engine_socket`).
        toml = self.repo / "deploykit.toml"
        socket = self.docker_host[len("unix://"):]
        host = f'{self.ssh_user}@{os.environ["DEPLOYKIT_RIG_SSH_HOST"]}:{os.environ["DEPLOYKIT_RIG_SSH_PORT"]}'
        text = toml.read_text().replace(
            'image = "cabanas-api"\n',
            f'image = "cabanas-api"\nhost = "ssh://{host}"\n'
            f'key_file = "{os.environ["DEPLOYKIT_RIG_SSH_KEY"]}"\n'
            f'known_hosts = "{os.environ["DEPLOYKIT_RIG_SSH_KNOWN_HOSTS"]}"\n'
            f'{os.environ.get("FRESH_RUNNER_SOCKET_KEY", "engine_socket")} = "{socket}"\n', 1)
        assert "ssh://" in text, "the Cabañas target table changed; update ComposeSshWorld"
        # The runner and the "host" share one filesystem on the rig: the runner's
        # state_dir must not be the directory compose writes on the host as its user
        # (<project>/.deploykit), or each would be the other's.
        text = text.replace('[project]\n', f'[project]\nstate_dir = "{self.local_state}"\n', 1)
        toml.write_text(text)
        (self.repo / ".gitignore").write_text(f".deploykit/\n{self.local_state}/\nbackups/\n")

    def commit(self, version):
        if not self.versions:
            self._engine_over_ssh()
        sha = super().commit(version)
        sh("chown", "-R", self.ssh_user, self.tmp)
        return sha

    def run(self, *args, **kw):
        r = super().run(*args, **kw)
        if r.returncode:
            self.last_failure = (r.stdout + r.stderr)[-1500:]  # --json puts the error on stdout
        return r

    def drop(self):
        super().drop()
        shutil.rmtree(self.host_state_root(), ignore_errors=True)

    def env(self):
        e = super().env()
        e.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory", GIT_CONFIG_VALUE_0="*")
        return e


WORLDS = {"pm2": Pm2World, "compose": ComposeSshWorld}
LABELS = {"pm2": "PM2 over SSH + Postgres (MUVA-style)", "compose": "Compose over SSH + Postgres (Cabañas-style)"}


class Runners:
    """Throwaway clones of a world's repository: the runners that deploy and recover."""

    def __init__(self, world):
        self.world = world
        self.dir = Path(world.base) / "r"

    def fresh(self, name):
        path = self.dir / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The origin belongs to the SSH user, and the upload-pack a clone runs reads
        # safe.directory only from a config file, never from `-c` or GIT_CONFIG_*.
        gitconfig = self.dir / "gitconfig"
        gitconfig.write_text("[safe]\n\tdirectory = *\n")
        sh("git", "clone", "-q", self.world.repo, path, env={**self.world.env(), "GIT_CONFIG_GLOBAL": str(gitconfig)})
        sh("chown", "-R", os.environ["DEPLOYKIT_RIG_SSH_USER"], path)
        assert not (path / self.world.local_state).exists(), "a fresh clone has no state_dir"
        return path

    def run(self, clone, *args, machine="runner-b"):
        return sh(*on_machine(machine, self.world.argv(*args)), cwd=clone, check=False,
                  env=self.world.env(), timeout=900)

    def drop(self, clone):
        shutil.rmtree(clone, ignore_errors=True)


def on_machine(name, argv):
    """argv as run on another machine: its own hostname (a UTS namespace). Runner A
    and runner B are different CI machines, so B cannot see that A's process is gone
    and must go by A's lease, as a real fresh runner does."""
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', name, *[str(a) for a in argv]]


def lease_left(lock_status_stdout):
    """Seconds until the holder's lease expires (0 if none or expired)."""
    holder = last_json_line(lock_status_stdout).get("holder") or {}
    expires = (holder.get("lease") or {}).get("expires_at")
    if not expires:
        return 0
    t = datetime.fromisoformat(expires[:26].rstrip("Z") + "+00:00")
    return max(0.0, (t - datetime.now(timezone.utc)).total_seconds())


def journals_outside(roots, clone):
    """Every journal file under the host roots that is not in the clone."""
    out = set()
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for p in root.rglob("*.jsonl"):
            if "journal" in p.parts and Path(clone) not in p.parents:
                out.add(p)
    return out


def host_roots(world):
    """Where on the (rig) host deploykit may keep the environment's state: under the PM2
    deploy directory, or for Compose the project's tree and the SSH user's
    ~/.deploykit (searched once, after a full run, for the journal it wrote)."""
    if world.kind == "pm2":
        return [world.deploy_to]
    return [world.tmp, world.host_state_root()]


class Watch:
    """Counts the records of the run a deploy starts, where its journal lives."""

    def __init__(self, where, journal_dir):
        self.where, self.dir = where, Path(journal_dir)
        self.before = set(self.dir.glob("*.jsonl")) if self.dir.exists() else set()

    def records(self):
        if not self.dir.exists():
            return 0
        new = [j for j in self.dir.glob("*.jsonl") if j not in self.before]
        return new[0].read_text().count("\n") if new else 0

    def run_file(self):
        new = [j for j in self.dir.glob("*.jsonl") if j not in self.before] if self.dir.exists() else []
        return new[0] if new else None


def kill_at(argv, cwd, env, watch, k, deadline_secs=600):
    """Starts argv; SIGKILLs it once `watch` counts k records. (reached, killed, code)"""
    proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reached, end = 0, time.time() + deadline_secs
    while time.time() < end:
        reached = watch.records()
        if reached >= k:
            proc.send_signal(signal.SIGKILL)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.0005)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return reached, proc.returncode == -signal.SIGKILL, proc.returncode


class Campaign:
    def __init__(self, world, failing):
        self.world, self.failing = world, failing
        self.runners = Runners(world)
        self.where = None  # ("host", dir) or ("local", None)
        self.n = 1

    def watch_for(self, clone):
        where, d = self.where
        if where == "host":
            return Watch("host", d)
        return Watch("local", Path(clone) / self.world.local_state / "journal" / self.world.env_name)

    def full_run(self):
        """One uninterrupted deploy from a clone: its records, and where its journal is."""
        w = self.world
        w.write_row()
        _, rev = next_release(w, self.failing, self.n)
        clone = self.runners.fresh("full")
        roots = host_roots(w)
        before = journals_outside(roots, clone)
        r = self.runners.run(clone, "deploy", "--env", w.env_name, "--ref", w.versions[f"c{self.n}"])
        if r.returncode not in (0, 1):
            log(f"  full run exited {r.returncode}: {(r.stdout + r.stderr)[-1500:]}")
        found = sorted(journals_outside(roots, clone) - before)
        if found:
            self.where = ("host", found[0].parent)
            path = found[0]
        else:
            self.where = ("local", None)
            local = sorted((clone / w.local_state / "journal" / w.env_name).glob("*.jsonl"))
            path = local[-1] if local else None
        kinds = [rec.get("record") for rec in journal_records(path)] if path else []
        self.runners.drop(clone)
        if self.failing:
            w.remove_migration(rev)
        return len(kinds), r.returncode, kinds

    def reset(self):
        """A known-good start after a case that ended neither old nor new."""
        if self.where and self.where[0] == "host":
            # <state>/journal/<env>: the environment's whole host state (journals, lock).
            shutil.rmtree(self.where[1].parent.parent, ignore_errors=True)
        w = self.world
        # setup() starts over (new database, fresh copy): so do the expectations.
        w.rows, w.counter, w.versions, w.expected = 0, 0, {}, {}
        w.setup()

    def case(self, k):
        w = self.world
        self.n += 1
        old = w.world()["linked"]
        w.write_row()
        version, rev = next_release(w, self.failing, self.n)
        t0 = time.time()
        a = self.runners.fresh(f"a{self.n}")
        watch = self.watch_for(a)
        reached, killed, code = kill_at(on_machine("runner-a", w.deploy_argv(version)), a, w.env(), watch, k)
        self.runners.drop(a)  # the runner is gone: checkout, state_dir, backups
        b = self.runners.fresh(f"b{self.n}")
        rec = self.runners.run(b, "recover", "--env", w.env_name)
        exits = [rec.returncode]
        wait = lease_left(self.runners.run(b, "lock", "status", "--env", w.env_name).stdout)
        if rec.returncode == 4 or (rec.returncode == 0 and wait > 0):
            # A's lease still runs: B is refused (exit 4, naming the holder), or has
            # nothing to recover and leaves a live holder's lock alone. A later job
            # recovers (or releases the dead run's lock) once the lease has expired.
            time.sleep(min(wait, 120) + 1)
            rec = self.runners.run(b, "recover", "--env", w.env_name)
            exits.append(rec.returncode)
        ended, world = settle(w, old, version)
        lock = self.runners.run(b, "lock", "status", "--env", w.env_name)
        holder = last_json_line(lock.stdout).get("holder", "?") if lock.returncode == 0 else f"exit {lock.returncode}"
        self.runners.drop(b)
        if self.failing:
            w.remove_migration(rev)
        ok = (ended == "old" or (ended == "new" and not self.failing)) and rec.returncode == 0 and holder is None
        r = {"asked": k, "reached": reached, "killed": killed, "exit": code, "watched": watch.where,
             "recover_exit": "→".join(str(e) for e in exits), "ended": ended, "lock": "free" if holder is None else "HELD",
             "ok": ok, "secs": round(time.time() - t0, 1)}
        if not ok:
            r["world"] = world
            r["holder"] = holder
            r["recover_tail"] = (rec.stdout + rec.stderr)[-1500:]
        log(f"  k={k} reached={reached} killed={killed} watched={watch.where} recover={r['recover_exit']} "
            f"ended={ended} lock={r['lock']}" + ("" if ok else f" FAILED {world} holder={holder}"))
        if ended == "NEITHER" or holder is not None:
            self.reset()
        return r


def run(exe, kinds, every=None):
    """Runs the campaign for the given worlds; returns (markdown section lines, failures)."""
    every = every or {}
    started = datetime.now(timezone.utc)
    rows, per_record, failures, total = [], [], [], 0
    for kind in kinds:
        for failing in (False, True):
            label = f"{LABELS[kind]}: {'upgrade fails health, rolls back' if failing else 'upgrade succeeds'}"
            step = every.get(kind, 1)
            log(f"fresh-runner campaign: {label} (every {step})")
            # The rig's SSH user (and its ~/.deploykit) is shared by every rig on the machine.
            tag = format(zlib.crc32(os.environ.get("RIG_DIR", "").encode()) & 0xffff, "04x")
            w = WORLDS[kind](exe, f"fr-{kind}-{'fail' if failing else 'ok'}-{tag}")
            t0 = time.time()
            results, kinds_seen, records = [], [], 0
            try:
                try:
                    w.setup()
                except RuntimeError as e:  # a first deploy on a loaded machine: once more
                    log(f"  setup failed, retrying once: {e} {getattr(w, 'last_failure', '')}")
                    w.setup()
                c = Campaign(w, failing)
                records, code, kinds_seen = c.full_run()
                log(f"  full run: {records} records, exit {code}, journal {c.where[0]}"
                    f"{' ' + str(c.where[1]) if c.where[1] else ''}")
                log("  records: " + " ".join(str(x) for x in kinds_seen))
                for k in range(1, records + 1, step):
                    results.append(c.case(k))
            finally:
                w.drop()
            secs = round(time.time() - t0)
            bad = [r for r in results if not r["ok"]]
            failures += bad
            total += len(results)
            ends = {e: sum(1 for r in results if r["ended"] == e) for e in ("old", "new", "NEITHER")}
            rec = {}
            for r in results:
                rec[r["recover_exit"]] = rec.get(r["recover_exit"], 0) + 1
            held = sum(1 for r in results if r["lock"] != "free")
            watched = ",".join(sorted({r["watched"] for r in results})) or "-"
            rows.append(f"| {label} | {records} | {len(results)} | {ends['old']} | {ends['new']} | {ends['NEITHER']} | "
                        f"{held} | {', '.join(f'{c}×{n}' for c, n in sorted(rec.items()))} | {len(bad)} | {watched} | {secs} s |")
            for r in results:
                name = kinds_seen[r["asked"] - 1] if r["asked"] - 1 < len(kinds_seen) else "?"
                per_record.append(f"| {label} | {r['asked']} | `{name}` | {r['reached']} | {r['ended']} | "
                                  f"{r['recover_exit']} | {r['lock']} | {'ok' if r['ok'] else '**FAILED**'} |")
    for f in failures:
        log("FAILED: " + json.dumps(f, default=str))
    passed = total - len(failures)
    section = [
        f"Run {started:%Y-%m-%d %H:%M} UTC, {datetime.now(timezone.utc):%H:%M} UTC end.", "",
        "| scenario | records in a full run | kills | ended old | ended new | ended neither | lock left held | "
        "`recover` exit codes | failures | journal watched | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "| scenario | k | record k (full run) | records when killed | ended | `recover` exit | lock after | result |",
        "|---|---|---|---|---|---|---|---|", *per_record, "",
        f"fresh-runner crash campaign: {passed}/{total} ended old or new",
    ]
    return section, failures
