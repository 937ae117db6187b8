#!/usr/bin/env bash
# Installs the Debian packages that sipguard's build and tests need, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
PKGS=(cmake make gcc pkg-config
      libpcap-dev libosip2-dev libjansson-dev libxxhash-dev libcmocka-dev
      libinih-dev zlib1g-dev libsqlite3-dev libzmq3-dev libmicrohttpd-dev libvectorscan-dev
      libgnutls28-dev curl time help2man openssl python3)
# Integration-test peers (Kamailio's http_client and jansson modules come in its utils and
# extra modules; prometheus brings promtool, which checks the alerting rules): their tests
# skip when these are missing, so failing to install them is a warning, not an error.
OPTIONAL=(kamailio kamailio-utils-modules kamailio-extra-modules kamailio-tls-modules sip-tester
          sipvicious yara chromium tshark prometheus)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() optional=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${OPTIONAL[@]}"; do installed "$p" || optional+=("$p"); done
install_optional() {
    [ ${#optional[@]} -eq 0 ] || [ "$(id -u)" -ne 0 ] && return 0
    echo "sipguard: installing test peers ${optional[*]}" >&2
    [ -n "${UPDATED:-}" ] || apt-get update -qq >/dev/null 2>&1 || true
    # policy-rc.d 101: do not start the kamailio and prometheus services the packages ship
    printf '#!/bin/sh\nexit 101\n' > /tmp/sipguard-policy-rc.d
    chmod +x /tmp/sipguard-policy-rc.d
    [ -e /usr/sbin/policy-rc.d ] || cp /tmp/sipguard-policy-rc.d /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${optional[@]}" \
        >/dev/null 2>&1 || echo "sipguard: warning: could not install ${optional[*]}; their tests skip" >&2
    cmp -s /usr/sbin/policy-rc.d /tmp/sipguard-policy-rc.d && rm -f /usr/sbin/policy-rc.d
    return 0
}
if [ ${#missing[@]} -eq 0 ]; then
    install_optional
    exit 0
fi
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "sipguard: missing packages: ${missing[*]}" >&2
    echo "run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "sipguard: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
UPDATED=1
$cmd >/dev/null
install_optional
