#!/usr/bin/env bash
# System packages the loopback testbeds need: OpenSSH (SSH clusters), Slurm + munge (SLURM
# cluster), iproute2 (network namespaces), procps (pgrep), passwd (useradd), openssl (a test
# password hash). Safe to run again: apt-get install is idempotent,
# and it waits for a dpkg lock held by another apt run instead of failing.
set -euo pipefail

packages=(openssh-server openssh-client slurm-wlm munge iproute2 procps util-linux passwd openssl chromium fonts-dejavu-core)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-system: all packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
