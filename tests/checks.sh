# Shared by the integration test scripts (sourced): check NAME CONDITION counts and prints one
# check; wait_for SECONDS CONDITION polls a condition (bounded in time); kill_ours stops only
# the test's own live processes. A script that counts checks ends with
#   echo "$checks checks, $fails failed"; [ $fails = 0 ]
fails=0 checks=0
check() { checks=$((checks + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
wait_for() {
    local end=$((SECONDS + $1))
    while ((SECONDS < end)); do eval "$2" && return 0; sleep 0.1; done
    return 1
}
# kill_ours SIGNAL PID...: signals each PID that is still a child of this shell. A process the
# test started may have exited long ago and its PID been taken by another test's process
# (pid_max can be as low as 32768, and the suite starts thousands), which a blind kill of
# every PID the test ever started would hit.
kill_ours() {
    local sig=$1 p ppid
    shift
    for p in "$@"; do
        ppid=$(awk '{sub(/^.*\) /, ""); print $2}' "/proc/$p/stat" 2>/dev/null)
        [ "$ppid" = "$$" ] && kill "-$sig" "$p" 2>/dev/null
    done
    return 0
}
# pick_ports VAR...: sets each VAR to a TCP/UDP port no socket on this machine uses, from
# 20000-32767, below the kernel's ephemeral range (32768-60999 by default). A test that stops a
# server and starts another on the same port needs this: a port the kernel handed out (bind to
# port 0) goes back to the pool once it is closed, where any outgoing connection, or a
# connection to it looping back onto itself while nothing listens, may take it meanwhile.
PICKED=" "
pick_ports() {
    local used v p
    used=$(cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null |
        awk '$2 ~ /:/ {n = split($2, a, ":"); print a[n]}')
    for v in "$@"; do
        while :; do
            p=$((20000 + RANDOM % 12768))
            [[ $PICKED == *" $p "* ]] && continue
            grep -qx "$(printf '%04X' "$p")" <<<"$used" || break
        done
        PICKED+="$p "
        printf -v "$v" '%s' "$p"
    done
}
# in_scratch_dir: makes the test's scratch directory $T and goes there; at exit the test's own
# processes (listed in PIDS) are killed and $T is removed (KEEP=1 keeps it and says where).
in_scratch_dir() {
    T=$(mktemp -d)
    PIDS=()
    trap 'kill_ours 9 "${PIDS[@]}"; [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT
    cd "$T" || exit 1
}
# port KEY FILE: a port a daemon wrote to its --ports-file; metric PORT NAME: a value from the
# /metrics of a daemon on loopback
port() { awk -v k="$1" '$1==k{print $2}' "$2"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m{print $2}'; }
