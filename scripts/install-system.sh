#!/usr/bin/env bash
# Every Debian package the README's two commands (bash scripts/setup.sh, npm test)
# need (see environment.md); .ci/run installs through this script only. Skips apt
# when all are present.
set -euo pipefail
PKGS=(jupyter-nbconvert jupyter-client python3-nbclient jupyter-notebook chromium
      dataset-fashion-mnist libopenblas-dev libdnnl-dev build-essential redis-server
      # npm test: the bench smoke run's PyTorch side, the golden values, the kernel test
      python3-torch python3-numpy python3-jupyter-kernel-test)
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
