#!/usr/bin/env bash
# What `make install` (cmake --install) lays down, staged under DESTDIR in a scratch
# directory: the programs, man pages that render cleanly, the docs, the configuration files
# (kept when an operator changed them), and systemd units that systemd accepts and whose
# paths are the installed files.
# usage: install_test.sh BUILD_DIR SOURCE_DIR PREFIX CONFDIR UNITDIR MANDIR DOCDIR MAN(0|1)
set -uo pipefail
BUILD=$1 SRC=$2 PREFIX=$3 CONFDIR=$4 UNITDIR=$5 MANDIR=$6 DOCDIR=$7 MAN=$8
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT
. "$SRC/tests/checks.sh"
R=$T/stage
install_tree() { DESTDIR=$R cmake --install "$BUILD" >"$T/install.log" 2>&1; }

check "cmake --install succeeds" "install_tree"
VERSION=$("$BUILD/cli/sipguard" --version)
for p in bin/sipguard sbin/sipguard-edge sbin/sipguard-overlay; do
    check "$p is installed and runs" "[ \"\$('$R$PREFIX/$p' --version | cut -d' ' -f2)\" = '${VERSION#* }' ]"
done

# the configuration: the shipped files, valid once a model is set
check "edge.conf and overlay.conf in $CONFDIR, as shipped" \
    "cmp -s '$R$CONFDIR/edge.conf' '$SRC/etc/sipguard-edge.conf' && cmp -s '$R$CONFDIR/overlay.conf' '$SRC/etc/sipguard-overlay.conf'"
check "and among the examples" \
    "[ -s '$R$DOCDIR/examples/sipguard-edge.conf' ] && [ -s '$R$DOCDIR/examples/sipguard-overlay.conf' ] && cmp -s '$R$DOCDIR/examples/sipguard-alerts.yml' '$SRC/etc/prometheus/sipguard-alerts.yml' && cmp -s '$R$DOCDIR/examples/sipguard-dashboard.json' '$SRC/etc/grafana/sipguard-dashboard.json'"
cd "$T"
"$R$PREFIX/bin/sipguard" gen -o train --attacks none 2>/dev/null &&
    "$R$PREFIX/bin/sipguard" train -q -o edge.model train.pcap
check "the shipped edge.conf passes --check-config with a model" \
    "'$R$PREFIX/sbin/sipguard-edge' -c '$R$CONFDIR/edge.conf' --set edge.model=edge.model \
        --set overlay.key_dir=$T/keys --set overlay.spool_dir=$T/spool --check-config >/dev/null 2>edge.err"
check "the shipped overlay.conf passes --check-config" \
    "'$R$PREFIX/sbin/sipguard-overlay' -c '$R$CONFDIR/overlay.conf' --set overlay.db=$T/o.db \
        --set overlay.key_dir=$T/okeys --check-config >/dev/null 2>overlay.err"
echo "# an operator's change" >> "$R$CONFDIR/edge.conf"
echo "stale" > "$R$DOCDIR/examples/sipguard-edge.conf"
install_tree
check "installing again keeps a changed edge.conf" \
    "tail -1 '$R$CONFDIR/edge.conf' | grep -q \"operator's change\" && grep -q 'Keeping: .*edge.conf' install.log"
check "and refreshes the example" "cmp -s '$R$DOCDIR/examples/sipguard-edge.conf' '$SRC/etc/sipguard-edge.conf'"

# the units: systemd's own check, on copies whose paths point into the staged tree
for d in edge overlay; do
    U=$R$UNITDIR/sipguard-$d.service
    check "sipguard-$d.service runs the installed program with the installed configuration" \
        "grep -q '^ExecStart=$PREFIX/sbin/sipguard-$d -c $CONFDIR/$d.conf' '$U'"
    DOC=$(sed -n 's|^Documentation=.*file://\([^ ]*\).*|\1|p' "$U")
    check "its documentation ($DOC) is installed" "[ -n '$DOC' ] && [ -s '$R$DOC' ]"
    if command -v systemd-analyze >/dev/null; then
        mkdir -p units
        sed "s|$PREFIX/|$R$PREFIX/|g; s|$CONFDIR/|$R$CONFDIR/|g" "$U" > "units/sipguard-$d.service"
        systemd-analyze verify --man=no "units/sipguard-$d.service" > "verify-$d.log" 2>&1
        vrc=$?
        check "systemd-analyze verify accepts it ($(head -c 300 verify-$d.log))" \
            "[ $vrc = 0 ] && [ ! -s verify-$d.log ]"
    fi
done

# man pages, made from --help
if [ "$MAN" = 1 ]; then
    PAGES="man1/sipguard.1 man8/sipguard-edge.8 man8/sipguard-overlay.8"
    for c in train score eval info embed gen replay context sig; do PAGES="$PAGES man1/sipguard-$c.1"; done
    for p in $PAGES; do
        check "$p renders without a warning" \
            "[ -s '$R$MANDIR/$p' ] && [ -z \"\$(groff -man -Tutf8 -ww -z '$R$MANDIR/$p' 2>&1)\" ]"
    done
    # grep reads all of a render (no -q): under pipefail, a grep -q that stops early fails
    # the groff still writing into the pipe
    render() { groff -man -Tascii -P-c -P-b -P-u "$R$MANDIR/$1" 2>/dev/null; }
    check "sipguard-train(1) is titled and named as its command, with its options" \
        "render man1/sipguard-train.1 | grep '^SIPGUARD-TRAIN(1)' >/dev/null && render man1/sipguard-train.1 | grep 'sipguard-train - learn' >/dev/null && render man1/sipguard-train.1 | grep -- '--fpr X' >/dev/null"
    check "sipguard-sig(1)'s synopsis lists its three forms" \
        "[ \$(render man1/sipguard-sig.1 | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | grep -c '^ *sipguard sig ') = 3 ]"
    check "sipguard-edge(8) names its configuration file and keeps its examples a line each" \
        "render man8/sipguard-edge.8 | grep '$CONFDIR/edge.conf' >/dev/null && render man8/sipguard-edge.8 | grep '^ *sipguard-edge -c /etc/sipguard/edge.conf --check-config\$' >/dev/null"
    if command -v man >/dev/null; then
        check "man finds the pages under the installed tree" \
            "man -M '$R$MANDIR' -w sipguard-overlay | grep 'man8/sipguard-overlay.8' >/dev/null"
    fi
fi
echo "$checks checks, $fails failed"
[ $fails = 0 ]
