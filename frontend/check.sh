#!/usr/bin/env bash
# The frontend as CI checks it: build.sh (locked dependencies, tsc, unit tests, bundle),
# then the committed bundle must be exactly what that build wrote.
set -euo pipefail
cd "$(dirname "$0")"
git rev-parse --is-inside-work-tree >/dev/null  # the comparison needs a git checkout
./build.sh
generated=(../ipytwist/web/static LICENSES.md)
changed=$(git status --porcelain --untracked-files=all -- "${generated[@]}")
if [ -n "$changed" ]; then
  echo "The committed bundle differs from a rebuild of frontend/src:" >&2
  echo "$changed" >&2
  git --no-pager diff --stat -- "${generated[@]}" >&2
  echo "Run frontend/build.sh and commit ipytwist/web/static/ and frontend/LICENSES.md." >&2
  exit 1
fi
echo "The committed bundle is what frontend/src builds."
