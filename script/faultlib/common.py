"""Small helpers every world and campaign uses: running programs, HTTP, ports,
journals and the kill-after-k-records driver."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def sh(*args, cwd=None, check=True, env=None, timeout=None, input=None):
    """Runs a program; returns the CompletedProcess (text)."""
    return subprocess.run([str(a) for a in args], cwd=cwd, check=check, capture_output=True,
                          text=True, env=env, timeout=timeout, input=input)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=3):
    """GET url; the parsed JSON body, or {"status": "unreachable: ..."}."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return json.loads(e.read())
        except Exception:  # noqa: BLE001
            return {"status": f"http {e.code}"}
    except Exception as e:  # noqa: BLE001 - any failure is "unreachable"
        return {"status": f"unreachable: {e}"}


def http_text(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode().strip()
    except Exception as e:  # noqa: BLE001
        return f"unreachable: {e}"


def wait_until(check, secs, step=0.25):
    """Polls check() until it is truthy or secs pass; returns its last value."""
    end = time.time() + secs
    value = check()
    while not value and time.time() < end:
        time.sleep(step)
        value = check()
    return value


def journal_files(journal_dir):
    return sorted(Path(journal_dir).glob("*.jsonl"))


def journal_records(path):
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def run_killed_at(argv, cwd, env, journal_dir, k, deadline_secs=600):
    """Starts argv; SIGKILLs it as soon as its (new) journal holds k records.

    Returns (records reached when killed or at exit, killed?, exit code)."""
    before = set(journal_files(journal_dir))
    proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reached = 0
    end = time.time() + deadline_secs
    while time.time() < end:
        new = [j for j in journal_files(journal_dir) if j not in before]
        reached = new[0].read_text().count("\n") if new else 0
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


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def copy_tree(src, dst):
    shutil.copytree(src, dst, dirs_exist_ok=True)


def git(repo, *args, check=True):
    return sh("git", "-c", "user.name=f", "-c", "user.email=f@f", "-c", "safe.directory=*",
              "-C", repo, *args, check=check).stdout.strip()


def env_with(**extra):
    e = {**os.environ, "NO_COLOR": "1"}
    e.pop("GITHUB_STEP_SUMMARY", None)
    e.update({k: str(v) for k, v in extra.items()})
    return e
