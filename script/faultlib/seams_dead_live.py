"""Issue 11, case 10: rollback when the live release has died. After a good deploy
of v2 over v1, the live app is stopped by hand (PM2: `pm2 stop`, so `pm2 jlist`
shows it stopped; Compose: `docker stop` of the service's container). A plain
`deploykit rollback` must find v1 in the journals and bring it back (exit 0); and a
rollback that cannot proceed exits as refused before any change (5), not as a usage error (2).

    script/faults --seams dead-live
"""
import os

from .common import sh
from .compose_world import ComposeWorld
from .crash import settle
from .pm2_world import Pm2World


def log(msg):
    print(msg, file=os.sys.stderr, flush=True)


def stop_pm2(w):
    sh("su", w.ssh_user, "-c", f"PM2_HOME={w.pm2_home} pm2 stop muva >/dev/null")


def stop_compose(w):
    ids = w.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={w.project}",
                   "--filter", "label=com.docker.compose.service=api").stdout.split()
    for cid in ids:
        w.docker("stop", "-t", "1", cid)


def one(exe, rows, label, world_cls, stop):
    w = world_cls(exe, f"seams-dead-{world_cls.kind}")
    failed = 0
    try:
        w.setup()
        # Nothing recorded before v1: a rollback to before it cannot proceed.
        r = w.run("rollback", "--env", w.env_name)
        ok = r.returncode == 5
        rows.append(f"| {label}: rollback with no earlier release | {r.returncode} | {'yes' if ok else '**NO**'} | exit 5 (refused before any change), not 2 |")
        failed += 0 if ok else 1
        w.commit("v2")
        d = w.run("deploy", "--env", w.env_name, "--ref", w.versions["v2"])
        if d.returncode != 0:
            raise RuntimeError(f"deploy of v2 failed: {d.stderr[-2000:]}")
        stop(w)
        r = w.run("rollback", "--env", w.env_name)
        ended, world = settle(w, "v1", None, secs=40)
        ok = r.returncode == 0 and ended == "old"
        rows.append(f"| {label}: live release stopped by hand, `rollback` | {r.returncode} | "
                    f"{'yes' if ok else '**NO**'} | ended on {world.get('served')} |")
        log(f"  {label}: rollback exit {r.returncode}, ended {ended}: {r.stderr[-400:]}")
        failed += 0 if ok else 1
    finally:
        w.drop()
    return failed


def run(exe):
    rows, failed = [], 0
    failed += one(exe, rows, "PM2", Pm2World, stop_pm2)
    failed += one(exe, rows, "Compose", ComposeWorld, stop_compose)
    table = ["| case 10: rollback when the live release has died | exit | as expected | note |",
             "|---|---|---|---|", *rows]
    return table, failed
