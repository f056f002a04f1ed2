#!/usr/bin/env bash
# Check that a regular (non-editable) install of geocell works away from the source tree.
#
#   scripts/check_install.sh            # about 1-2 minutes; KEEP_WORK=1 keeps the temp folder
#
# 1. Copy the source tree as git sees it (tracked files and new, not-ignored ones) into a temp
#    folder. Building in the checkout itself would reuse its build/ folder, and setuptools packs
#    every file left there, so modules deleted from the repository could ship in the wheel.
# 2. Make a fresh virtualenv with --system-site-packages: the dependencies already installed
#    for this Python (torch is a 5 GB wheel) are reused instead of installed again. The project
#    itself goes into the venv with `pip install .` (non-editable, dependencies resolved by pip;
#    only missing ones are fetched from PyPI). pip never removes a package outside the venv, so
#    an editable geocell in the system site-packages stays as it is; the checks below make sure
#    the venv's copy is the one imported.
# 3. From a folder outside the repository: the installed files (every package, the boundary
#    data), `geocell --help`, `geocell train --help`, a tiny `geocell label`, and
#    `geocell train --quick` (about 40-60 s; it builds bluemarble-v1 into the user cache,
#    $GEOCELL_CACHE or ~/.cache/geocell, on first use).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/geocell-install-XXXXXX")"
cleanup() {
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
unset PYTHONPATH  # nothing may reach the checkout except through the install

step "copy the source tree into $WORK/src"
mkdir "$WORK/src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard --deduplicate \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"

step "fresh virtualenv (--system-site-packages: reuse the installed torch) and pip install ."
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
VPY="$WORK/venv/bin/python"
(cd "$WORK/src" && "$VPY" -m pip install --quiet --disable-pip-version-check .)

mkdir "$WORK/outside"
cd "$WORK/outside"

step "installed files: every package and the package data, imported from the venv"
"$VPY" - "$WORK/venv" <<'EOF'
import importlib
import sys
from importlib.resources import files
from pathlib import Path

venv = Path(sys.argv[1]).resolve()
packages = ["geocell", "heads", "losses", "geocell_engine", "geocell_engine.data", "geocell_engine.engine",
            "geocell_engine.evaluation", "geocell_engine.cli"]
for name in packages:
    module = importlib.import_module(name)
    where = Path(module.__file__).resolve()
    if venv not in where.parents:
        sys.exit(f"FAIL: {name} imported from {where}, not from the venv {venv}")
for name in ("admin1.parquet", "country_codes.csv"):
    data = files("geocell").joinpath("data", name)
    if not data.is_file():
        sys.exit(f"FAIL: package data geocell/data/{name} is missing from the install")
print(f"ok: {len(packages)} modules from {venv}, geocell/data/*.parquet and *.csv present")
EOF

step "geocell --help (and train --help)"
"$WORK/venv/bin/geocell" --help | head -n 5
"$WORK/venv/bin/geocell" train --help > "$WORK/train_help.txt"
grep -q -- "--print-config" "$WORK/train_help.txt"
echo "ok: train --help lists $(grep -c -- '^  --' "$WORK/train_help.txt") flags"

step "geocell label (the boundaries shipped in the wheel)"
printf 'lat,lon\n48.8566,2.3522\n-33.8688,151.2093\n' > points.csv
"$WORK/venv/bin/geocell" label points.csv --out labelled.csv --quiet
grep -q FRA labelled.csv && grep -q AUS labelled.csv
echo "ok: Paris -> FRA, Sydney -> AUS"

step "geocell train --quick --out-dir $WORK/runs"
start=$(date +%s)
"$WORK/venv/bin/geocell" train --quick --quiet --out-dir "$WORK/runs"
for name in config.yaml metrics.jsonl best.pt last.pt report.md report.json; do
    test -s "$WORK/runs/region-bluemarble-v1/$name" || { echo "FAIL: run file $name missing"; exit 1; }
done
echo "ok: quick run finished in $(( $(date +%s) - start )) s, run folder complete"

step "check_install: all checks passed"
