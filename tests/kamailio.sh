# Shared by the Kamailio tests (sourced). kamailio_cfg MODS PORT UAS EXTRA GATE writes to standard
# output the configuration of a Kamailio on 127.0.0.1:PORT (modules from MODS) that record-routes
# every dialog to a UAS on 127.0.0.1:UAS: EXTRA is configuration added after the common modules
# (more modules and their parameters), GATE the first thing its request route does.
# siptrace_cfg URI [MODE [VERSION]] writes the siptrace module's configuration: HEP (version 3,
# or VERSION) to URI; with MODE 1 (trace_mode) every message Kamailio receives or sends, without
# it only what sip_trace() is called on.
siptrace_cfg() {
    cat <<CFG
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "$1")
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", ${3:-3})
${2:+modparam(\"siptrace\", \"trace_mode\", $2)}
modparam("siptrace", "trace_on", 1)
CFG
}
kamailio_cfg() {
    local mods=$1 port=$2 uas=$3 extra=$4 gate=$5
    cat <<CFG
#!KAMAILIO
debug=1
log_stderror=yes
children=1
listen=udp:127.0.0.1:$port
mpath="$mods/"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
$extra
request_route {
    $gate
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
        # sipp's own caller sends its ACK and BYE to the proxy's address, with no Route: on to
        # the callee, or the callee repeats its 200 OK and the BYE goes unanswered
        if (uri == myself) { \$du = "sip:127.0.0.1:$uas"; t_relay(); }
        exit;
    }
    record_route();
    \$du = "sip:127.0.0.1:$uas";
    t_relay();
}
CFG
}
