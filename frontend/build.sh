#!/usr/bin/env bash
# Rebuild the pages' bundle into ../ipytwist/web/static/ from the locked dependencies,
# after the type check and the unit tests.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run check
npm test
npm run build
