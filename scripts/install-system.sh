#!/usr/bin/env bash
# Debian packages the lab needs (see environment.md). Skips apt when all are present.
set -euo pipefail
PKGS=(jupyter-nbconvert jupyter-client python3-nbclient jupyter-notebook chromium
      dataset-fashion-mnist libopenblas-dev libdnnl-dev build-essential redis-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
