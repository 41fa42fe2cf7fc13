"""The MUVA world's app for fault campaigns: the dependency-free node app
(examples/node-app) with examples/muva's deploykit.toml, migrations and workflow.

examples/muva is a real Next.js app now, but the campaigns deploy hundreds of times
and patch server.js per case; a `pnpm install` + `next build` per deploy would make
them hours long. So they keep the stand-in, built with `npm run build` as before."""
import re
import shutil

from .common import ROOT

# The Next.js app's own files; the stand-in brings its own package.json and ecosystem.
NEXT_APP_FILES = ("package.json", "pnpm-lock.yaml", "ecosystem.config.js", "next.config.js",
                  "app", "lib", ".gitignore", "node_modules", ".next")


def copy_muva_standin(repo):
    """Lays out the stand-in MUVA repository at `repo` (which must not exist)."""
    shutil.copytree(ROOT / "examples/node-app", repo)
    shutil.copytree(ROOT / "examples/muva", repo, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if d == str(ROOT / "examples/muva")
                                             and n in NEXT_APP_FILES])
    toml = (repo / "deploykit.toml").read_text()
    toml = toml.replace('install = [["pnpm", "install", "--frozen-lockfile"]]\n', "")
    toml = re.sub(r'build = \[\["pnpm", "run", "build"\]\].*', 'build = [["npm", "run", "build"]]', toml)
    (repo / "deploykit.toml").write_text(toml)
