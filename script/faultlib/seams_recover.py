"""Recover during a live run (issue 11, case 1), on the local target.

A deploy of r2 sits in verify (its probe answers 503 until released) while a
second process runs `deploykit recover`:

- refused:  `recover` and `lock release` are refused (exit 4) and change nothing;
            the live run then ends `succeeded`, r2 serves, its journal has one end.
- forced:   `recover --force` says whom it overrides and undoes the run; the live
            run, once its probe passes, must not report `succeeded`: r1 serves,
            the lock is free, and the journal still has exactly one end.

    script/faults --seams recover
"""
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from faultlib.common import free_port, git, sh, wait_until


class Health:
    """An HTTP health endpoint the campaign controls: 503 until `healthy`, except
    while `old_is_live()` (the previous release always answers healthy)."""

    def __init__(self):
        self.healthy = True
        self.hits = 0
        self.old_is_live = lambda: False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.hits += 1
                self.send_response(200 if outer.healthy or outer.old_is_live() else 503)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class World:
    def __init__(self, exe, base, health):
        self.exe = exe
        self.dir = Path(base)
        repo = self.dir / "app"
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        for v in ("v1", "v2"):
            (repo / "VERSION").write_text(v + "\n")
            (repo / "HEALTHY").write_text("yes\n")
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", v)
        self.v1 = git(repo, "rev-parse", "HEAD~1")
        self.v2 = git(repo, "rev-parse", "HEAD")
        (self.dir / "deploykit.toml").write_text(f"""
[project]
state_dir = "state"
[environments.f.target]
kind = "local"
deploy_to = "srv"
repo = "app"
start = ["{exe}", "demo-app", "--port", "{{port}}"]
port = {free_port()}
[[environments.f.probes]]
kind = "http"
url = "{health.url}"
[environments.f.policy]
health_attempts = 120
health_interval_secs = 1
health_deadline_secs = 180
""")
        self.env = {**os.environ, "NO_COLOR": "1"}

    def run(self, *args):
        return sh(self.exe, *args, cwd=self.dir, check=False, env=self.env, timeout=300)

    def live(self):
        link = self.dir / "srv" / "current"
        return os.readlink(link).split("/")[-1] if link.is_symlink() else None

    def ends(self):
        files = sorted((self.dir / "state" / "journal" / "f").glob("*.jsonl"))
        return files[-1].read_text().count('"record":"run_finished"') if files else 0

    def locked(self):
        return (self.dir / "state" / "locks" / "f.lock").exists()

    def stop_app(self):
        pid = self.dir / "srv" / ".deploykit" / "app.pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text().strip()), 9)
            except (ProcessLookupError, ValueError):
                pass


def case(exe, force):
    health = Health()
    with tempfile.TemporaryDirectory(prefix="dk-seams-recover-") as base:
        w = World(exe, base, health)
        try:
            health.old_is_live = lambda: w.live() == "r1"
            first = w.run("deploy", "-e", "f", "--release", "r1", "--ref", w.v1)
            if first.returncode != 0:
                return {"ok": False, "why": f"r1 did not deploy: {first.stderr[-400:]}"}
            health.healthy = False
            before = health.hits
            # From here r1 answers healthy and r2 does not, until released below.
            live = subprocess.Popen([exe, "deploy", "-e", "f", "--release", "r2", "--ref", w.v2],
                                    cwd=w.dir, env=w.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if not wait_until(lambda: health.hits >= before + 2, 120):
                live.kill()
                return {"ok": False, "why": "the deploy never reached verify"}
            args = ["recover", "-e", "f"] + (["--force"] if force else [])
            recovered = w.run(*args)
            released = None if force else w.run("lock", "release", "-e", "f")
            live_during = w.live()
            health.healthy = True
            out, err = live.communicate(timeout=300)
            result = {
                "recover_exit": recovered.returncode,
                "lock_release_exit": released.returncode if released else None,
                "live_during_recover": live_during,
                "run_exit": live.returncode,
                "run_said_succeeded": "succeeded" in err.splitlines()[-1] if err.strip() else False,
                "live_after": w.live(),
                "ends": w.ends(),
                "lock_left": w.locked(),
            }
            if force:
                result["ok"] = (recovered.returncode == 0 and "--force: overriding" in recovered.stderr
                                and live.returncode != 0 and result["live_after"] == "r1"
                                and result["ends"] == 1 and not result["lock_left"])
            else:
                result["ok"] = (recovered.returncode == 4 and released.returncode == 4
                                and live_during == "r2" and live.returncode == 0
                                and result["live_after"] == "r2" and result["ends"] == 1
                                and not result["lock_left"])
            if not result["ok"]:
                result["recover_stderr"] = recovered.stderr[-600:]
                result["run_stderr"] = err[-600:]
            return result
        finally:
            w.stop_app()
            health.server.shutdown()


def run(exe):
    """Both cases; returns (markdown table lines, number of failures)."""
    rows = []
    bad = 0
    for label, force in [("recover while a deploy verifies (refused)", False),
                         ("recover --force while a deploy verifies", True)]:
        r = case(exe, force)
        bad += 0 if r["ok"] else 1
        if not r["ok"]:
            print("FAILED:", label, json.dumps(r), flush=True)
        rows.append(f"| {label} | {r.get('recover_exit')} | {r.get('run_exit')} | {r.get('live_after')} | "
                    f"{r.get('ends')} | {'yes' if r.get('lock_left') else 'no'} | {'ok' if r['ok'] else 'FAILED'} |")
    table = ["| seam (local target) | recover exit | live run exit | live after | run_finished records | lock left | result |",
             "|---|---|---|---|---|---|---|", *rows]
    return table, bad
