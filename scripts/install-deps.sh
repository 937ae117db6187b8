#!/usr/bin/env bash
# Installs the Debian packages that sipguard's build and tests need, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
PKGS=(cmake make gcc pkg-config
      libpcap-dev libosip2-dev libjansson-dev libxxhash-dev libcmocka-dev
      libinih-dev zlib1g-dev libzmq3-dev libmicrohttpd-dev libvectorscan-dev
      curl time)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "sipguard: missing packages: ${missing[*]}" >&2
    echo "run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "sipguard: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd >/dev/null
