"""Entry points of the rig campaigns (`script/faults --pm2/--compose/...`): build
the worlds, run them, and return markdown sections for docs/RELIABILITY.md."""
import json
import sys
import time

from . import crash
from .compose_world import ComposeWorld
from .pm2_world import Pm2World

WORLDS = {"pm2": Pm2World, "compose": ComposeWorld}
LABELS = {"pm2": "PM2 over SSH + Postgres (MUVA-style)", "compose": "Compose + Postgres (Cabañas-style)"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def crash_section(exe, kinds, every):
    rows, failures = [], []
    for kind in kinds:
        step = every.get(kind, 1)
        for failing in (False, True):
            label = f"{LABELS[kind]}: {'upgrade fails health, rolls back' if failing else 'upgrade succeeds'}"
            log(f"crash campaign: {label} (every {step})")
            w = WORLDS[kind](exe, f"crash-{kind}-{'fail' if failing else 'ok'}")
            t0 = time.time()
            try:
                w.setup()
                total, recs, results = crash.campaign(w, failing, every=step, log=log)
            finally:
                w.drop()
            note = f"every record ({round(time.time() - t0)} s)" if step == 1 else f"every {step}th record ({round(time.time() - t0)} s)"
            rows.append(crash.summary_row(label, total, results) + f" {note} |")
            failures += [r for r in results if not r["ok"]]
            log("  records: " + " ".join(recs))
    table = ["| scenario | records in a full run | kills | distinct crash points reached | ended old | ended new | failures | `recover` exit codes | crash points |",
             "|---|---|---|---|---|---|---|---|---|", *rows]
    for f in failures:
        log("FAILED: " + json.dumps(f, default=str))
    return table, failures
