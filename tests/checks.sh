# Shared by the integration test scripts (sourced): check NAME CONDITION counts and prints one
# check; wait_for SECONDS CONDITION polls a condition (bounded in time). The script ends with
#   echo "$checks checks, $fails failed"; [ $fails = 0 ]
fails=0 checks=0
check() { checks=$((checks + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
wait_for() {
    local end=$((SECONDS + $1))
    while ((SECONDS < end)); do eval "$2" && return 0; sleep 0.1; done
    return 1
}
