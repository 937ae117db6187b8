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
