"""Bad input on the rig worlds: hostile and malformed configs, hostile release ids,
migrations with syntax errors, edited applied migrations, unknown host keys and
wrong SSH keys. Each case must fail with a clear error, and change nothing: the same
release live (symlink or containers), the same schema and rows, no new release
directory or container, and no file created by an injected shell command."""
import os
from pathlib import Path

from .common import last_json_line, sh
from .faults import clip
from .compose_world import ComposeWorld
from .pm2_world import Pm2World

PWNED = Path("/tmp/deploykit-faults-pwned")


def log(msg):
    print(msg, file=os.sys.stderr, flush=True)


def inject(tag):
    """A shell command that leaves evidence if anything ever runs it."""
    return f"$(touch {PWNED}-{tag})"


def snapshot(world):
    w = world.world()
    if world.kind == "pm2":
        rel = world.deploy_to / "releases"
        w["releases"] = tuple(sorted(os.listdir(rel))) if rel.exists() else ()
    else:
        ids = world.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={world.project}").stdout.split()
        w["containers"] = tuple(sorted(ids))
    return w


def pm2_cases(w):
    ssh_user, host = w.ssh_user, w.ssh_host
    key = os.environ["DEPLOYKIT_RIG_SSH_KEY"]
    return [
        ("release id with shell metacharacters", {"args": ["--release", f"r1;{inject('release')}"]}),
        ("release id starting with '-'", {"args": ["--release", "--help"]}),
        ("release id with a path separator", {"args": ["--release", "../../etc"]}),
        ("app name with shell metacharacters", {"toml": ('app = "muva"', f'app = "muva;{inject("app")}"')}),
        ("deploy_to with shell metacharacters", {"toml": (str(w.deploy_to), f"{w.deploy_to}/x;{inject('path')}")}),
        ("linked file escaping the deploy dir", {"toml": ('linked_files = [".env.local"]', 'linked_files = ["../../../etc/passwd"]')}),
        ("ecosystem file with shell metacharacters", {"toml": ('ecosystem = "ecosystem.config.js"', f'ecosystem = "e.js;{inject("eco")}"')}),
        ("env var name with shell metacharacters", {"toml": ('APP_NAME = "muva"', f'"A;{inject("envname")}" = "x"')}),
        ("host with shell metacharacters", {"env": {"MUVA_STAGING_SSH": f"{ssh_user}@{host};{inject('host')}:{w.ssh_port}"}}),
        ("unknown key in config", {"toml": ('instances = 2', 'instances = 2\nbogus_key = 1')}),
        ("malformed TOML", {"toml": ('[environments.staging.database]', '[environments.staging.database')}),
        ("unknown host key (empty known_hosts)", {"env": {"MUVA_KNOWN_HOSTS": "/dev/null"}}),
        ("host key mismatch (known_hosts names another key)", {"known_hosts_other": True}),
        ("wrong SSH key", {"env": {"MUVA_SSH_KEY_FILE": os.environ["DEPLOYKIT_RIG_SSH_WRONG_KEY"]}}),
        ("SSH key file missing", {"env": {"MUVA_SSH_KEY_FILE": key + ".missing"}}),
        ("migration with a syntax error", {"migration": ("CREATE TABLEX broken (id int);\n", "DROP TABLE broken;\n")}),
        ("edited applied migration (drift)", {"edit_applied": True}),
    ]


def compose_cases(w):
    return [
        ("release id with shell metacharacters", {"args": ["--release", f"r1;{inject('release')}"]}),
        ("service name with shell metacharacters", {"toml": ('service = "api"', f'service = "api;{inject("service")}"')}),
        ("project name with shell metacharacters", {"env_file": ("CABANAS_PROJECT=", f"CABANAS_PROJECT=x;{inject('project')}")}),
        ("image name with shell metacharacters", {"toml": ('image = "cabanas-api"', f'image = "cabanas-api;{inject("image")}"')}),
        ("compose file path escaping the project", {"toml": ('files = ["docker-compose.yml"]', 'files = ["../../etc/passwd"]')}),
        ("backup service with shell metacharacters", {"toml": ('service = "db"', f'service = "db;{inject("bservice")}"')}),
        ("migration command with shell metacharacters in an argument", {"toml": ('"/app/bin/alembic", "current"', f'"/app/bin/alembic", "current;{inject("migarg")}"')}),
        ("migration with a syntax error", {"migration": ("CREATE TABLEX broken (id int);\n", "DROP TABLE broken;\n")}),
    ]


def apply_case(world, case):
    """Changes the world's inputs for one case; returns a function undoing that."""
    undo = []
    toml_path = world.repo / "deploykit.toml"
    if "toml" in case:
        text = toml_path.read_text()
        old, new = case["toml"]
        assert old in text, old
        toml_path.write_text(text.replace(old, new, 1))
        undo.append(lambda: toml_path.write_text(text))
    if "env_file" in case:
        envp = world.repo / ".env"
        text = envp.read_text()
        old, new = case["env_file"]
        line = next(ln for ln in text.splitlines() if ln.startswith(old))
        envp.write_text(text.replace(line, new, 1))
        undo.append(lambda: envp.write_text(text))
    return lambda: [u() for u in reversed(undo)]


def run_case(world, n, label, case):
    for p in PWNED.parent.glob(PWNED.name + "*"):
        p.unlink()
    world.write_row()
    rev = None
    if "migration" in case:
        rev = world.add_migration(f"bad{n}", *case["migration"])
    elif "edit_applied" in case:
        first = sorted((world.repo / "supabase/migrations").glob("*_create_accommodations.sql"))[0]
        original = first.read_text()
        first.write_text(original + "-- edited after it was applied\nALTER TABLE accommodations ADD COLUMN x int;\n")
    else:
        rev = world.add_migration(f"ok{n}")
    version = f"b{n}"
    world.commit(version)
    before = snapshot(world)
    undo = apply_case(world, case)
    env = world.env()
    env.update({k: str(v) for k, v in case.get("env", {}).items()})
    if case.get("known_hosts_other"):
        other = world.repo.parent / "other_known_hosts"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", world.repo.parent / "otherkey", check=False)
        pub = (world.repo.parent / "otherkey.pub").read_text().split()[:2]
        other.write_text(f"[{world.ssh_host}]:{world.ssh_port} {pub[0]} {pub[1]}\n")
        env["MUVA_KNOWN_HOSTS"] = str(other)
    args = case.get("args", ["--ref", world.versions[version]])
    try:
        r = world.run("deploy", "--env", world.env_name, *args, env=env)
    finally:
        undo()
    last = last_json_line(r.stdout)
    recovered = None
    if r.returncode == 3:
        # Left for a human: recover (with the good config back) before comparing.
        recovered = world.run("recover", "--env", world.env_name).returncode
    after = snapshot(world)
    error = (last.get("error") or r.stderr.strip() or "(none)")
    error = clip(error)
    pwned = sorted(p.name for p in PWNED.parent.glob(PWNED.name + "*"))
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    # Cleanup so the next case starts from the same live release.
    if rev:
        world.remove_migration(rev)
    if "edit_applied" in case:
        first.write_text(original)
    world.set_flags()
    clean = r.returncode != 0 and not changed and not pwned
    return {"label": label, "exit": r.returncode, "outcome": last.get("outcome", "-"),
            "phase": last.get("failed_phase"), "error": error, "next": (last.get("next") or "")[:160],
            "changed": changed, "pwned": pwned, "ok": clean, "recovered": recovered}


def run(exe, kinds=("pm2", "compose")):
    rows, bad = [], 0
    for kind in kinds:
        world = (Pm2World if kind == "pm2" else ComposeWorld)(exe, f"bad-{kind}")
        try:
            world.setup()
            cases = pm2_cases(world) if kind == "pm2" else compose_cases(world)
            for n, (label, case) in enumerate(cases, 1):
                log(f"bad input: {kind}: {label}")
                try:
                    r = run_case(world, n, label, case)
                except Exception as e:  # noqa: BLE001
                    r = {"label": label, "exit": "harness error", "outcome": "-", "phase": None, "error": str(e)[:200],
                         "next": "", "changed": {}, "pwned": [], "ok": False, "recovered": None}
                log(f"  {r}")
                bad += 0 if r["ok"] else 1
                rec = "" if r["recovered"] is None else f" (after `recover`, exit {r['recovered']})"
                changed = "nothing" + rec if not r["changed"] and not r["pwned"] else f"CHANGED {r['changed']} {r['pwned']}"
                rows.append(f"| {kind} | {label} | {r['exit']} | {r['outcome']} / {r['phase']} | "
                            f"{r['error'].replace('|', '/')} | {changed} |")
        finally:
            world.drop()
    table = ["| target | input | exit | outcome / failed step | error (as printed) | what changed |",
             "|---|---|---|---|---|---|", *rows]
    return table, bad
