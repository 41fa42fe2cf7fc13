"""Injected faults on the rig worlds: each scenario starts a real deploy, injects
one fault (in the release, or from outside while the run is at a given record), and
reports the exit code, the outcome, whether the error names the host, the step and
the next action, and the world afterwards (after `deploykit recover` when the run
asked for one)."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .common import ROOT, journal_files, journal_records, last_json_line, sh, wait_until
from .compose_world import ComposeWorld
from .crash import settle
from .pm2_world import Pm2World


def log(msg):
    print(msg, file=os.sys.stderr, flush=True)


class Deploy:
    """A deploy running in the background, watched through its journal."""

    def __init__(self, world, version):
        self.world = world
        self.before = set(journal_files(world.journal_dir()))
        self.t0 = time.time()
        self.proc = subprocess.Popen([str(a) for a in world.deploy_argv(version)], cwd=world.repo, env=world.env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def records(self):
        new = [j for j in journal_files(self.world.journal_dir()) if j not in self.before]
        return journal_records(new[0]) if new else []

    def wait_for(self, pred, secs=300):
        """Waits until a journal record satisfies pred (True) or the run ends (False)."""
        end = time.time() + secs
        while time.time() < end:
            if any(pred(r) for r in self.records()):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def finish(self, timeout=900):
        out, err = self.proc.communicate(timeout=timeout)
        self.secs = round(time.time() - self.t0, 1)
        self.code = self.proc.returncode
        self.stdout, self.stderr = out, err
        self.last = last_json_line(out)
        return self


def clip(text, head=150, tail=200):
    """One line: the start (what failed where) and the end (why, and what next)."""
    text = " ".join(text.split())
    return text if len(text) <= head + tail else text[:head] + " … " + text[-tail:]


def intent(phase):
    return lambda r: r.get("record") == "intent" and r.get("phase") == phase


def outcome(phase):
    return lambda r: r.get("record") == "outcome" and r.get("phase") == phase


def describe(world, d, old, new, host_hint):
    """The row for one scenario, after recovering if needed."""
    err = (d.last.get("error") or "") if d.last else ""
    nxt = (d.last.get("next") or "") if d.last else ""
    text = d.stderr
    rec = None
    if d.code == 3 or d.last.get("outcome") in ("interrupted", "rollback_failed"):
        rec = world.run("recover", "--env", world.env_name)
    ended, w = settle(world, old, new, secs=40)
    return {
        "exit": d.code, "outcome": d.last.get("outcome", "?"), "phase": d.last.get("failed_phase"),
        "secs": d.secs,
        "error": clip(err or (text.strip().splitlines()[-1] if text.strip() else "")),
        "names_host": bool(host_hint) and host_hint in (err + text),
        "names_step": bool(d.last.get("failed_phase")) or "step" in text,
        "next": clip(nxt, 100, 100),
        "recover": None if rec is None else rec.returncode,
        "recover_error": None if rec is None else (last_json_line(rec.stdout).get("error") or rec.stderr.strip()[-200:]),
        "ended": ended, "world": w,
    }


def release_with(world, n, flags=(), migration=None):
    old = world.world()["linked"]
    world.write_row()
    rev = world.add_migration(f"f{n}", *(migration or ()))
    world.set_flags(*flags)
    version = f"f{n}"
    world.commit(version)
    return old, version, rev


# ------------------------------------------------------------------ scenarios
def health_flag(flag):
    def scenario(world, n):
        old, version, rev = release_with(world, n, flags=(flag,))
        d = Deploy(world, version).finish()
        world.remove_migration(rev)
        world.set_flags()
        return describe(world, d, old, None, f"127.0.0.1:{world.port}")
    return scenario


def db_restarted_during_migrate(world, n):
    """A slow migration; the database restarts while it runs."""
    slow = "SELECT pg_sleep(4);\nCREATE TABLE f{n} (id serial PRIMARY KEY);\n".format(n=n)
    old, version, rev = release_with(world, n, migration=(slow, f"DROP TABLE f{n};\n"))
    d = Deploy(world, version)
    d.wait_for(intent("migrate"))
    time.sleep(1.5)
    world.restart_database()
    d.finish()
    return describe(world, d, old, version, None)


def disk_full_during_backup(world, n):
    """The backup directory is a tiny tmpfs that is already full."""
    backups = world.backup_dir()
    backups.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=16k", "faults-full", backups)
    try:
        sh("dd", "if=/dev/zero", f"of={backups}/filler", "bs=4k", "count=8", check=False)
        old, version, rev = release_with(world, n)
        d = Deploy(world, version).finish()
    finally:
        sh("umount", backups, check=False)
    world.remove_migration(rev)
    return describe(world, d, old, version, str(backups))


def sshd_stopped_after_prepare(world, n):
    """The host's sshd stops (and its sessions drop) once prepare is done."""
    old, version, rev = release_with(world, n)
    d = Deploy(world, version)
    d.wait_for(outcome("prepare"))
    world.sshd.stop()
    d.finish()
    world.sshd.start()
    r = describe(world, d, old, version, f"{world.ssh_host}:{world.ssh_port}")
    return r


def sshd_restarted_after_prepare(world, n):
    """sshd restarts (sessions drop, a new listener comes up 1 s later)."""
    old, version, rev = release_with(world, n)
    d = Deploy(world, version)
    d.wait_for(outcome("prepare"))
    world.sshd.stop()
    time.sleep(1)
    world.sshd.start()
    d.finish()
    return describe(world, d, old, version, f"{world.ssh_host}:{world.ssh_port}")


def docker_restarted_mid_run(world, n):
    """The Docker engine restarts while the run activates the new release."""
    old, version, rev = release_with(world, n)
    d = Deploy(world, version)
    d.wait_for(intent("activate"))
    restart_dockerd()
    d.finish()
    r = describe(world, d, old, version, None)
    if r["ended"] == "NEITHER":
        # Services without a restart policy stay stopped after an engine restart (the
        # db here): start them as an operator would, then recover again.
        world.compose("up", "-d", "db")
        rec = world.run("recover", "--env", world.env_name)
        ended, w = settle(world, old, version, secs=60)
        r["after_operator"] = {"recover": rec.returncode, "ended": ended, "world": w}
        # The journal is what explains this end state: kept for inspection.
        keep = Path(os.environ.get("FAULTS_KEEP_JOURNALS", "/tmp/deploykit-faults-journals"))
        shutil.copytree(world.journal_dir(), keep / world.name, dirs_exist_ok=True)
        r["ended"] = f"NEITHER: {r['world']}; after `docker-compose up -d db` and `recover` (exit {rec.returncode}): {ended}"
    return r


def restart_dockerd():
    """Stops the rig's dockerd (TERM, by its pid file) and starts it again the way the
    rig does."""
    rig = Path(os.environ.get("RIG_DIR", ROOT / "target/rig"))
    sh("bash", "-c", f"""
        set -e; export RIG_DIR={rig}; log() {{ :; }}; apt_install() {{ :; }}
        source {ROOT}/script/rig/docker.sh
        pid=$(cat "$RIG_DOCKER_PIDFILE"); kill -TERM "$pid"
        for i in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        rig_docker_start >/dev/null 2>&1
    """, timeout=300)


# ------------------------------------------------------------------ sshd of its own
class OwnSshd:
    """A private sshd instance (the rig's config on another port) that a scenario may
    stop and start without disturbing the rig's own instances."""

    def __init__(self, base):
        self.rig_dir = Path(os.environ["DEPLOYKIT_RIG_SSH_KNOWN_HOSTS"]).parent
        rig_port = os.environ["DEPLOYKIT_RIG_SSH_PORT"]
        from .common import free_port
        self.port = str(free_port())
        conf = (self.rig_dir / f"sshd_{rig_port}.conf").read_text()
        conf = conf.replace(f"127.0.0.1:{rig_port}", f"127.0.0.1:{self.port}")
        conf = conf.replace(f"sshd_{rig_port}.pid", f"sshd_faults_{self.port}.pid")
        self.conf = Path(base) / f"sshd_{self.port}.conf"
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(conf)
        self.pidfile = self.rig_dir / f"sshd_faults_{self.port}.pid"
        self.known_hosts = Path(base) / "known_hosts"
        key = (self.rig_dir / "host_ed25519.pub").read_text().split()[:2]
        self.known_hosts.write_text(
            Path(os.environ["DEPLOYKIT_RIG_SSH_KNOWN_HOSTS"]).read_text()
            + f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n")
        self.start()

    def start(self):
        sh("/usr/sbin/sshd", "-f", self.conf, "-E", f"{self.conf}.log")
        wait_until(lambda: sh("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{self.port}", check=False).returncode == 0, 10)

    def stop(self):
        """Ends the listener and every session it started (by their ids)."""
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text().strip())
        kids = sh("ps", "-o", "pid=", "--ppid", str(pid), check=False).stdout.split()
        for k in kids:
            grandkids = sh("ps", "-o", "pid=", "--ppid", k, check=False).stdout.split()
            for g in grandkids:
                try:
                    os.kill(int(g), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            try:
                os.kill(int(k), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_until(lambda: sh("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{self.port}", check=False).returncode != 0, 10)
        self.pidfile.unlink(missing_ok=True)


class Pm2FaultWorld(Pm2World):
    """The PM2 world reached through a private sshd."""

    def __init__(self, exe, name):
        super().__init__(exe, name)
        self.sshd = OwnSshd(Path(os.environ["DEPLOYKIT_RIG_PM2_ROOT"]) / f"sshd-{name}")
        self.ssh_port = self.sshd.port

    def env(self):
        e = super().env()
        e["MUVA_KNOWN_HOSTS"] = str(self.sshd.known_hosts)
        return e

    def backup_dir(self):
        return self.repo / "backups"

    def drop(self):
        super().drop()
        self.sshd.stop()


class ComposeFaultWorld(ComposeWorld):
    def backup_dir(self):
        return self.repo / "backups"

    def restart_database(self):
        self.compose("restart", "-t", "1", "db")


SCENARIOS = [
    ("health endpoint hangs", "hang", health_flag("hang-health"), ("pm2", "compose")),
    ("health answers 200 with {\"status\":\"unhealthy\"}", "sick200", health_flag("unhealthy-200"), ("pm2", "compose")),
    ("database restarted during migrate", "dbrestart", db_restarted_during_migrate, ("compose",)),
    ("disk full during backup (16 KiB tmpfs, full)", "diskfull", disk_full_during_backup, ("pm2", "compose")),
    ("host unreachable after prepare (sshd stopped, sessions cut)", "sshdown", sshd_stopped_after_prepare, ("pm2",)),
    ("sshd restarted after prepare (sessions cut, back 1 s later)", "sshrestart", sshd_restarted_after_prepare, ("pm2",)),
    ("Docker engine restarted during activate", "dockerrestart", docker_restarted_mid_run, ("compose",)),
]


def run(exe, kinds, only):
    rows, bad = [], 0
    for kind in kinds:
        world = (Pm2FaultWorld if kind == "pm2" else ComposeFaultWorld)(exe, f"faults-{kind}")
        try:
            world.setup()
            n = 0
            for label, key, fn, where in SCENARIOS:
                if kind not in where or (only and key not in only):
                    continue
                n += 1
                log(f"fault: {kind}: {label}")
                try:
                    r = fn(world, n)
                except Exception as e:  # noqa: BLE001 - a harness failure is reported, not hidden
                    r = {"exit": "harness error", "outcome": str(e)[:200], "phase": None, "secs": None, "error": "",
                         "names_host": False, "names_step": False, "next": "", "recover": None, "ended": "NEITHER",
                         "world": None}
                log("  " + json.dumps(r, default=str))
                ok = r["ended"] in ("old", "new") or r["ended"].endswith((": old", ": new"))
                bad += 0 if ok else 1
                world_text = f"{r['ended']}" + ("" if ok or "after" in r["ended"] else f" {r['world']}")
                rows.append(f"| {kind} | {label} | {r['exit']} | {r['outcome']} / {r['phase']} | "
                            f"{'yes' if r['names_host'] else 'no'} | {r['error'].replace('|', '/')} | "
                            f"{r['next'].replace('|', '/') or '-'} | {r['recover'] if r['recover'] is not None else '-'} | {world_text} |")
                if r["ended"] == "NEITHER":
                    world.setup()
        finally:
            world.drop()
    table = ["| target | fault | exit | outcome / failed step | names host | error (as printed) | next action | `recover` exit | world afterwards |",
             "|---|---|---|---|---|---|---|---|---|", *rows]
    return table, bad
