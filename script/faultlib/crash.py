"""The crash campaign on a rig world: for each crash point k, write a row, commit a
new release (with a new migration), start `deploykit deploy`, SIGKILL it as soon as
its journal holds k records, run `deploykit recover`, and check the world is healthy
on the old or the new release with that release's schema and every row.

Each crash point starts from whatever the previous one left live (old or new), so a
point costs one deploy and one recover rather than a fresh stack."""
import time

from .common import journal_files, journal_records, run_killed_at, wait_until


def settle(world, old, new, secs=30):
    """Waits until the world matches old or new; returns (ended, world)."""
    seen = {}

    def ended():
        w = world.world()
        seen["w"] = w
        if world.matches(w, old):
            return "old"
        if new and world.matches(w, new):
            return "new"
        return None

    e = wait_until(ended, secs, step=0.5)
    return e or "NEITHER", seen["w"]


def next_release(world, failing, n):
    """Commits release n: a new migration, unhealthy when `failing`."""
    table = f"{world.kind}_t{n}"
    rev = world.add_migration(table)
    world.set_flags(*(["unhealthy"] if failing else []))
    version = f"c{n}"
    world.commit(version)
    return version, rev


def full_run_records(world, failing, n):
    """Records of one uninterrupted deploy of this scenario (and leaves the world on
    the resulting release)."""
    old = world.world()["linked"]
    world.write_row()
    version, rev = next_release(world, failing, n)
    before = set(journal_files(world.journal_dir()))
    r = world.run("deploy", "--env", world.env_name, "--ref", world.versions[version])
    new = [j for j in journal_files(world.journal_dir()) if j not in before]
    recs = journal_records(new[0]) if new else []
    if failing:
        world.remove_migration(rev)
    return len(recs), r.returncode, [rec.get("record") for rec in recs], old


def campaign(world, failing, points=None, every=1, log=print):
    """Runs the campaign; returns (records in a full run, [result per kill])."""
    total, code, kinds, _ = full_run_records(world, failing, 1)
    log(f"  full run: {total} records, exit {code}")
    ks = points if points is not None else list(range(1, total + 1, every))
    results = []
    n = 1
    for k in ks:
        n += 1
        old = world.world()["linked"]
        world.write_row()
        version, rev = next_release(world, failing, n)
        t0 = time.time()
        reached, killed, code = run_killed_at(world.deploy_argv(version), world.repo, world.env(),
                                              world.journal_dir(), k)
        rec = world.run("recover", "--env", world.env_name)
        ended, w = settle(world, old, version)
        if failing:
            world.remove_migration(rev)
        # Healthy is not enough: a recover that leaves the lock for a human (exit 3)
        # blocks the next deploy, so it counts as a failure too.
        ok = (ended == "old" or (ended == "new" and not failing)) and rec.returncode == 0
        r = {"asked": k, "reached": reached, "killed": killed, "exit": code,
             "recover_exit": rec.returncode, "ended": ended, "ok": ok,
             "secs": round(time.time() - t0, 1)}
        if not ok:
            r["world"] = w
            r["recover_tail"] = rec.stderr[-1500:]
        log(f"  k={k} reached={reached} killed={killed} recover={rec.returncode} ended={ended}"
            + ("" if ok else f" FAILED {w}"))
        results.append(r)
        if ended == "NEITHER":
            # The rest of the campaign needs a known-good start.
            world.setup()
    return total, kinds, results


def summary_row(label, total, results, note=""):
    bad = [r for r in results if not r["ok"]]
    reached = sorted({r["reached"] for r in results if r["reached"]})
    ends = {e: sum(1 for r in results if r["ended"] == e) for e in ("old", "new", "NEITHER")}
    rec = {}
    for r in results:
        rec[r["recover_exit"]] = rec.get(r["recover_exit"], 0) + 1
    rec_text = ", ".join(f"{c}×{n}" for c, n in sorted(rec.items()))
    return (f"| {label} | {total} | {len(results)} | {len(reached)} | {ends['old']} | {ends['new']} | "
            f"{len(bad)} | {rec_text} |{(' ' + note) if note else ''}")
