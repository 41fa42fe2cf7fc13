"""Issue 11.3, deploy the commit and not the checkout: a fault that lives in the
working tree only. A deploy of a committed release must apply exactly that
commit's migrations and build exactly that commit's code, so a migration file that
is in the checkout but in no commit is neither applied (PM2: Supabase SQL files read
from the commit) nor built into the image (Compose: the build context is the
commit's tree, so the one-off migration container never sees it)."""
from .faults import Deploy, describe, release_with


def uncommitted_migration(world, n):
    """Commits release fN (with a migration), then leaves one more migration file
    uncommitted in the working tree and deploys fN: it must end on fN with exactly
    fN's schema."""
    old, version, rev = release_with(world, n)
    stray = world.add_migration(f"wt_only{n}")
    try:
        d = Deploy(world, version).finish()
        r = describe(world, d, old, version, None)
    finally:
        world.remove_migration(stray)
    if r["ended"] != "new":
        # Ending on the old release is a failure here too: nothing was wrong with fN.
        r["ended"] = f"NEITHER (expected {version} with its own schema): {r['ended']}"
    return r


SCENARIOS = [
    ("uncommitted migration in the working tree", "uncommitted", uncommitted_migration, ("pm2", "compose")),
]
