#!/usr/bin/env bash
# One command on a fresh Debian 12 machine with Node >= 20: system packages,
# npm ci (which also builds the native OpenBLAS addon), then every notebook in
# full mode -> out/notebooks/ (executed .ipynb + HTML) and out/figures/ (PNG).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system.sh
npm ci --no-audit --no-fund
npm run notebooks
