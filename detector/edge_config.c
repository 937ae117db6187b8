#include "edge_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge_record.h"
#include "log.h"

typedef enum { T_STR, T_BOOL, T_LONG, T_DOUBLE, T_POLICY } ctype_t;

typedef struct {
    const char *section, *key;
    ctype_t type;
    size_t off, size; /* where in edge_config_t, and the buffer size of strings */
    double lo, hi;    /* bounds of numbers */
    const char *def;
    const char *help;
    bool live; /* a SIGHUP applies a change (edge_config_take_live); else the next start */
} setting_t;

/* S, B, L and D declare a string, yes/no, whole-number and real setting that takes effect at
 * the next start; SH, BH, LH and DH one that a SIGHUP applies too. */
#define SETTING_STR(sec, k, field, d, h, hup)                                                      \
    {                                                                                              \
        sec, k, T_STR, offsetof(edge_config_t, field), sizeof(((edge_config_t *)0)->field), 0, 0,  \
            d, h, hup                                                                              \
    }
#define SETTING_NUM(type, sec, k, field, lo, hi, d, h, hup)                                        \
    {                                                                                              \
        sec, k, type, offsetof(edge_config_t, field), 0, lo, hi, d, h, hup                         \
    }
#define S(sec, k, field, d, h) SETTING_STR(sec, k, field, d, h, false)
#define SH(sec, k, field, d, h) SETTING_STR(sec, k, field, d, h, true)
#define B(sec, k, field, d, h) SETTING_NUM(T_BOOL, sec, k, field, 0, 0, d, h, false)
#define BH(sec, k, field, d, h) SETTING_NUM(T_BOOL, sec, k, field, 0, 0, d, h, true)
#define L(sec, k, field, lo, hi, d, h) SETTING_NUM(T_LONG, sec, k, field, lo, hi, d, h, false)
#define LH(sec, k, field, lo, hi, d, h) SETTING_NUM(T_LONG, sec, k, field, lo, hi, d, h, true)
#define D(sec, k, field, lo, hi, d, h) SETTING_NUM(T_DOUBLE, sec, k, field, lo, hi, d, h, false)
#define DH(sec, k, field, lo, hi, d, h) SETTING_NUM(T_DOUBLE, sec, k, field, lo, hi, d, h, true)

static const setting_t settings[] = {
    S("edge", "id", id, "edge1",
      "name of this edge in reports and on the overlay (unique per domain)"),
    SH("edge", "model", model, "", "model file from `sipguard train` (required)"),
    SH("edge", "log_level", log_level, "info", "error, warning, info or debug"),
    B("edge", "syslog", syslog, "no", "log to syslog (daemon facility) instead of standard error"),
    S("ingest", "hep_listen", hep_listen, "127.0.0.1:9060",
      "UDP address for HEPv3 from Kamailio siptrace, OpenSIPS, FreeSWITCH, Asterisk; empty: off"),
    S("ingest", "hep_tcp_listen", hep_tcp_listen, "",
      "TCP address for HEPv3 streams (OpenSIPS proto_hep, heplify -nt tcp, Kamailio siptrace "
      "with transport=tcp), up to 64 senders at once; empty: off"),
    S("ingest", "hep_tls_listen", hep_tls_listen, "",
      "TCP address for HEPv3 streams over TLS (heplify -nt tls, a proxy in another site), "
      "with hep_tls_cert and hep_tls_key; its senders count in the 64 of hep_tcp_listen; "
      "empty: off"),
    LH("ingest", "hep_tcp_per_source", hep_tcp_per_source, 0, 64, "16",
       "HEP connections (TCP and TLS) one source may hold of the 64: an IPv4 address, or an IPv6 "
       "/64; past it, the source's own connection that has sent no message for longest "
       "gives its slot if that was 10 s ago, else the new one is closed; 0: no limit"),
    SH("ingest", "hep_tls_cert", hep_tls_cert, "",
       "PEM certificate the TLS listener presents (the chain after it); a SIGHUP reads it and "
       "the two below again, for the senders that connect after it (a renewed certificate)"),
    SH("ingest", "hep_tls_key", hep_tls_key, "", "PEM private key of hep_tls_cert"),
    SH("ingest", "hep_tls_client_ca", hep_tls_client_ca, "",
       "PEM CA certificates: when set, a TLS sender must present a certificate issued by one of "
       "them (mutual TLS), or it is refused; empty: any sender (see hep_auth_key)"),
    S("ingest", "hep_auth_key", hep_auth_key, "",
      "when set, HEPv3 packets must carry this auth key (chunk 0x0e); others, HEPv1 and v2 "
      "(which cannot carry one) included, are counted and dropped"),
    S("ingest", "udp_listen", udp_listen, "",
      "UDP address for plain SIP datagrams mirrored to the edge; empty: off"),
    S("ingest", "pcap_file", pcap_file, "", "pcap or pcapng file to replay; empty: off"),
    B("ingest", "pcap_pace", pcap_pace, "no",
      "replay at the capture's own pace (yes) or as fast as possible (no)"),
    B("ingest", "pcap_exit", pcap_exit, "no", "stop the edge when the replay has ended"),
    S("ingest", "interface", interface, "",
      "network interface to capture live (libpcap); empty: off"),
    S("ingest", "bpf", bpf, "udp or tcp or sctp", "BPF filter for the live capture"),
    L("ingest", "snaplen", snaplen, 256, 262144, "65535",
      "bytes kept of each captured packet; the capture ring holds capture_mb / snaplen packets"),
    L("ingest", "capture_mb", capture_mb, 1, 4096, "64",
      "size of the kernel's capture ring in MiB; packets that find it full are dropped and "
      "counted"),
    B("ingest", "keep_copies", keep_copies, "no",
      "keep the copies of a packet that a capture on Linux's any device shows once for every "
      "interface it crosses (a bridge and a container's veth, a bond and its slave); no: "
      "judge each packet once and count the copies"),
    S("ingest", "sip_ports", sip_ports, "5060-5090", "UDP/TCP ports that carry SIP (LO-HI)"),
    L("ingest", "max_message", max_message, 256, 1 << 20, "65535",
      "longer messages are cut and reported as truncated"),
    L("ingest", "tcp_streams", tcp_streams, 1, 1 << 24, "65536",
      "TCP connection directions followed at once (live capture, pcap replay); past this the "
      "least recently used stream is dropped and counted"),
    L("ingest", "tcp_memory_mb", tcp_memory_mb, 1, 1 << 20, "512",
      "MiB all TCP streams may hold together (buffers and early segments); past this the least "
      "recently used streams are dropped and counted"),
    {"scoring", "local_policy", T_POLICY, offsetof(edge_config_t, local_policy), 0, 0, 0, "always",
     "when the local k-NN model runs: always; near (only when the global score reaches "
     "(1 - local_margin) x its threshold); sample (a local_sample fraction, plus every global "
     "anomaly); never",
     true},
    DH("scoring", "local_margin", local_margin, 0, 1, "0.5", "margin of the near policy"),
    DH("scoring", "local_sample", local_sample, 0, 1, "0.1", "fraction of the sample policy"),
    BH("scoring", "local_flagged", local_flagged, "yes",
       "whether the local model also scores messages the global model or a signature flagged "
       "already (their verdict stands either way): no spares an attack's messages, the slowest "
       "to search, and their reports carry no local score"),
    SH("detectors", "context", context_model, "",
       "context model from `sipguard context train`: the flood and dialog detectors; empty: off"),
    SH("signatures", "file", signatures_file, "",
       "JSON file of signatures to match inline (sipguard sig format); empty: none"),
    SH("verdict", "allow_file", allow_file, "",
       "sources never answered with a blocking verdict (your PBXs, trunks, proxies): a file of "
       "addresses and CIDR prefixes, IPv4 or IPv6, one a line, # comments; their messages are "
       "judged and counted (sipguard_verdicts_waived_total) but not reported; a SIGHUP reads "
       "it again; empty: none"),
    BH("verdict", "monitor", monitor, "no",
       "a dry run: judge, count and report every message as usual, but answer every caller "
       "(POST /v1/score) normal, with the judgement in its \"judged\" field"),
    LH("ban", "after", ban_after, 0, 1000000, "0",
       "ban a source after this many blocking judgements (anomaly or signature) within window: "
       "its messages are then answered \"banned\" without being scored; allowed sources are never "
       "banned; 0: no bans"),
    LH("ban", "signature_strikes", ban_signature_strikes, 1, 1000000, "1",
       "how many of after a signature match counts for (an anomaly counts for one): with "
       "signature_strikes = after, a known attack tool is banned at its first match while an "
       "anomaly needs after of them within window"),
    DH("ban", "window", ban_window, 0.001, 86400, "60", "seconds the judgements must fall within"),
    DH("ban", "seconds", ban_seconds, 0.001, 1e8, "600",
       "length of a source's first ban; each later one is twice the one before"),
    DH("ban", "max_seconds", ban_max_seconds, 0.001, 1e9, "86400",
       "longest ban, and how long a source's past bans count after its last one ended"),
    LH("ban", "ipv6_prefix", ban_ipv6_prefix, 1, 128, "64",
       "IPv6 sources are banned by this prefix (a tool rotating addresses in its /64 is one "
       "source); IPv4 sources by address; bans made under an earlier prefix keep theirs"),
    LH("ban", "max_sources", ban_max_sources, 16, 1 << 24, "65536",
       "sources tracked at once (banned, striking or remembered); past it new strikes are "
       "counted in sipguard_ban_untracked_total, not kept"),
    SH("ban", "file", ban_file, "",
       "where bans are kept across restarts (JSON, saved within a second of a change, at most "
       "every 5 seconds while changes go on); empty: "
       "bans.json in [overlay] spool_dir; moved by a SIGHUP, the table takes in what the new "
       "file holds and is saved there"),
    LH("ban", "log_max", ban_log_max, 0, 1000000, "20",
       "bans logged one by one a minute (a warning each); the rest are summed up in one line a "
       "minute, since a scan from thousands of sources would flood the log (sipguard_bans_total "
       "and GET /v1/bans have them all); 0: log every ban"),
    BH("ban", "domain", ban_domain, "no",
       "also ban the sources other edges of the domain banned: the overlay's list, which comes "
       "with its signature set (needs [overlay] signatures_snapshot; works with after = 0 too)"),
    SH("report", "jsonl", jsonl, "",
       "also write reports as JSON Lines to this file, or - for standard output; a SIGHUP "
       "reopens it (after logrotate moved it away); empty: off"),
    BH("report", "anomalies_only", anomalies_only, "yes",
       "report anomalies only (no): every message is reported"),
    DH("report", "normal_sample", normal_sample, 0, 1, "0",
       "fraction of normal messages also reported (verdict normal): the overlay keeps them as "
       "its clean sample for building and verifying signatures"),
    LH("report", "top_features", top_features, 0, 5, "5",
       "how many top contributing features each report names"),
    BH("report", "raw", raw, "yes", "include the raw message in reports"),
    DH("report", "max_rate", max_rate, 0, 1e7, "0",
       "most reports a second (bursts up to as many); past it messages are still judged and "
       "counted, but not reported (sipguard_reports_rate_limited_total), which spares the "
       "edge, the link and the overlay during a flood; 0: no limit"),
    SH("record", "dir", record_dir, "",
       "keep the messages judged as pcap files in this directory, to train the next model on "
       "(sipguard train -o new.model DIR/*.pcap) or as evidence; a file is written as "
       "NAME.pcap.part and renamed to NAME.pcap when finished; empty: off"),
    SH("record", "verdicts", record_verdicts, "normal",
       "which messages: normal (judged normal, the training material), anomalies (judged "
       "anomalous or matching a signature) or all"),
    DH("record", "sample", record_sample, 0.000001, 1, "1",
       "fraction of those messages written (one in 1/sample, evenly spread), so that max_mb "
       "holds days of a busy edge's traffic rather than hours"),
    LH("record", "file_mb", record_file_mb, 1, 1 << 20, "64",
       "a file is finished past this many MiB"),
    DH("record", "file_seconds", record_file_seconds, 1, 604800, "3600",
       "or once it has been open this long; a SIGHUP finishes it too"),
    LH("record", "max_mb", record_max_mb, 1, 1L << 30, "1024",
       "the finished files kept, in all (at least file_mb); past it the oldest are removed"),
    S("overlay", "endpoint", overlay_endpoint, "",
      "the overlay's report socket, e.g. tcp://overlay.example.net:7070; empty: no overlay"),
    S("overlay", "server_key", overlay_server_key, "",
      "the overlay's CURVE public key (Z85, 40 characters)"),
    S("overlay", "signatures_snapshot", sig_snapshot, "",
      "the overlay's signature snapshot socket, e.g. tcp://overlay:7071; empty: signatures only "
      "from [signatures] file"),
    S("overlay", "signatures_updates", sig_updates, "",
      "the overlay's signature update socket, e.g. tcp://overlay:7072"),
    S("overlay", "key_dir", key_dir, "/var/lib/sipguard/keys",
      "where this edge's CURVE key pair lives (edge.key, edge.pub); made on first start"),
    S("overlay", "spool_dir", spool_dir, "/var/lib/sipguard/spool",
      "on-disk spool of reports not yet acknowledged by the overlay"),
    L("overlay", "spool_max_bytes", spool_max_bytes, 65536, 1L << 40, "268435456",
      "spool bound; past it the oldest reports are dropped, counted and logged"),
    D("overlay", "ack_timeout", ack_timeout, 0.1, 3600, "5",
      "seconds without an acknowledgement before a report is sent again"),
    S("http", "listen", http_listen, "127.0.0.1:8080",
      "address of the HTTP endpoint (POST /v1/score, GET /metrics, GET /healthz); empty: off"),
    SH("http", "api_token", http_token, "",
       "bearer token every /v1/ request must carry (Authorization: Bearer TOKEN), when the "
       "endpoint listens beyond loopback; /metrics and /healthz stay open; empty: none"),
    SH("http", "tls_cert", http_tls_cert, "",
       "PEM certificate (its chain after it): the endpoint speaks HTTPS only, with tls_key; a "
       "SIGHUP reads both again (a renewed certificate) on the same port; empty: plain HTTP"),
    SH("http", "tls_key", http_tls_key, "", "PEM private key of tls_cert"),
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

static const char *policy_names[] = {"always", "near", "sample", "never"};

const char *edge_local_policy_name(local_policy_t p)
{
    return (unsigned)p < 4 ? policy_names[p] : "?";
}

static const setting_t *find_setting(const char *section, const char *key)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!strcasecmp(settings[i].section, section) && !strcasecmp(settings[i].key, key))
            return &settings[i];
    return NULL;
}

static bool section_known(const char *section)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!strcasecmp(settings[i].section, section))
            return true;
    return false;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Stores one value; returns NULL or the reason it was refused. */
static const char *apply(edge_config_t *c, const setting_t *s, const char *v, char *why,
                         size_t whylen)
{
    char *field = (char *)c + s->off, *end;
    switch (s->type) {
    case T_STR:
        if (strlen(v) >= s->size) {
            snprintf(why, whylen, "value longer than %zu characters", s->size - 1);
            return why;
        }
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    case T_BOOL:
        return parse_bool(v, (bool *)field) ? "expected yes or no" : NULL;
    case T_LONG: {
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n < (long)s->lo || n > (long)s->hi) {
            snprintf(why, whylen, "expected a whole number from %.0f to %.0f", s->lo, s->hi);
            return why;
        }
        *(long *)field = n;
        return NULL;
    }
    case T_DOUBLE: {
        errno = 0;
        double d = strtod(v, &end);
        if (!*v || *end || errno || !(d >= s->lo && d <= s->hi)) {
            snprintf(why, whylen, "expected a number from %g to %g", s->lo, s->hi);
            return why;
        }
        *(double *)field = d;
        return NULL;
    }
    case T_POLICY:
        for (int i = 0; i < 4; i++)
            if (!strcasecmp(v, policy_names[i])) {
                *(local_policy_t *)field = (local_policy_t)i;
                return NULL;
            }
        return "expected always, near, sample or never";
    }
    return "unknown type";
}

void edge_config_default(edge_config_t *c)
{
    memset(c, 0, sizeof *c);
    char why[128];
    for (size_t i = 0; i < NSETTINGS; i++)
        apply(c, &settings[i], settings[i].def, why, sizeof why);
}

typedef struct {
    edge_config_t *c;
    char reason[256];
    bool failed;
} load_ctx_t;

/* inih stops at the first refused line and returns its number; the reason waits here. */
static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    load_ctx_t *x = user;
    const setting_t *s = find_setting(section, key);
    char why[160];
    const char *reason = NULL;
    if (!s)
        reason = section_known(section) ? "unknown key" : "unknown section";
    else
        reason = apply(x->c, s, value, why, sizeof why);
    if (reason) {
        snprintf(x->reason, sizeof x->reason, "[%s] %s: %s", section, key, reason);
        x->failed = true;
        return 0;
    }
    return 1;
}

int edge_config_load(edge_config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    load_ctx_t x = {.c = c};
    int r = ini_parse_file(f, on_ini, &x);
    fclose(f);
    if (x.failed) {
        snprintf(err, errlen, "%s:%d: %s", path, r, x.reason);
        return -1;
    }
    if (r != 0) {
        snprintf(err, errlen, "%s:%d: not valid INI (expected [section] or key = value)", path, r);
        return -1;
    }
    return 0;
}

int edge_config_set(edge_config_t *c, const char *assignment, char *err, size_t errlen)
{
    const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq) {
        snprintf(err, errlen, "--set %s: expected SECTION.KEY=VALUE", assignment);
        return -1;
    }
    char section[64], key[64];
    if ((size_t)(dot - assignment) >= sizeof section || (size_t)(eq - dot - 1) >= sizeof key) {
        snprintf(err, errlen, "--set %s: name too long", assignment);
        return -1;
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    const setting_t *s = find_setting(section, key);
    char why[160];
    const char *reason = s ? apply(c, s, eq + 1, why, sizeof why)
                           : (section_known(section) ? "unknown key" : "unknown section");
    if (reason) {
        snprintf(err, errlen, "--set %s.%s: %s", section, key, reason);
        return -1;
    }
    return 0;
}

int edge_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hl = (size_t)(close - s - 1);
        s++;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

socklen_t edge_hostport_sockaddr(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    unsigned port;
    memset(ss, 0, sizeof *ss);
    if (edge_split_hostport(s, host, sizeof host, &port) != 0)
        return 0;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return sizeof *a4;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return sizeof *a6;
    }
    return 0;
}

static int check_listen(const char *what, const char *v, char *err, size_t errlen)
{
    char host[128];
    unsigned port;
    if (*v && edge_split_hostport(v, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "%s = %s: expected HOST:PORT or [IPV6]:PORT", what, v);
        return -1;
    }
    return 0;
}

int edge_config_validate(const edge_config_t *c, char *err, size_t errlen)
{
    if (!c->model[0]) {
        snprintf(err, errlen, "[edge] model is required (a model file from sipguard train)");
        return -1;
    }
    if (!c->id[0] || strpbrk(c->id, " \t/\"\\")) {
        snprintf(err, errlen, "[edge] id must be non-empty, without spaces, quotes or slashes");
        return -1;
    }
    if (check_listen("[ingest] hep_listen", c->hep_listen, err, errlen) ||
        check_listen("[ingest] hep_tcp_listen", c->hep_tcp_listen, err, errlen) ||
        check_listen("[ingest] hep_tls_listen", c->hep_tls_listen, err, errlen) ||
        check_listen("[ingest] udp_listen", c->udp_listen, err, errlen) ||
        check_listen("[http] listen", c->http_listen, err, errlen))
        return -1;
    if (!c->hep_listen[0] && !c->hep_tcp_listen[0] && !c->hep_tls_listen[0] && !c->udp_listen[0] &&
        !c->pcap_file[0] && !c->interface[0] && !c->http_listen[0]) {
        snprintf(err, errlen,
                 "no input: set one of [ingest] hep_listen, hep_tcp_listen, hep_tls_listen, "
                 "udp_listen, pcap_file, interface or [http] listen");
        return -1;
    }
    if (!c->http_tls_cert[0] != !c->http_tls_key[0]) {
        snprintf(err, errlen, "[http] tls_cert and tls_key go together");
        return -1;
    }
    if (c->hep_tls_listen[0] && (!c->hep_tls_cert[0] || !c->hep_tls_key[0])) {
        snprintf(err, errlen, "[ingest] hep_tls_listen needs hep_tls_cert and hep_tls_key");
        return -1;
    }
    if (c->overlay_endpoint[0] && strlen(c->overlay_server_key) != 40) {
        snprintf(err, errlen,
                 "[overlay] server_key must be the overlay's 40-character Z85 "
                 "public key when endpoint is set");
        return -1;
    }
    if ((c->sig_snapshot[0] || c->sig_updates[0]) &&
        (!c->sig_snapshot[0] || !c->sig_updates[0] || strlen(c->overlay_server_key) != 40)) {
        snprintf(err, errlen,
                 "[overlay] signatures_snapshot and signatures_updates go together, "
                 "with server_key");
        return -1;
    }
    record_which_t which;
    if (record_which_parse(c->record_verdicts, &which) != 0) {
        snprintf(err, errlen, "[record] verdicts = %s: expected normal, anomalies or all",
                 c->record_verdicts);
        return -1;
    }
    if (c->record_max_mb < c->record_file_mb) {
        snprintf(err, errlen, "[record] max_mb (%ld) must be at least file_mb (%ld)",
                 c->record_max_mb, c->record_file_mb);
        return -1;
    }
    if (log_level_of(c->log_level) < 0) {
        snprintf(err, errlen, "[edge] log_level = %s: expected error, warning, info or debug",
                 c->log_level);
        return -1;
    }
    if (c->ban_after > 0 && c->ban_max_seconds < c->ban_seconds) {
        snprintf(err, errlen, "[ban] max_seconds (%g) is shorter than seconds (%g)",
                 c->ban_max_seconds, c->ban_seconds);
        return -1;
    }
    unsigned lo, hi;
    char tail;
    if (sscanf(c->sip_ports, "%u-%u%c", &lo, &hi, &tail) != 2 || lo > hi || hi > 65535) {
        snprintf(err, errlen, "[ingest] sip_ports = %s: expected LO-HI", c->sip_ports);
        return -1;
    }
    return 0;
}

static void print_value(const edge_config_t *c, const setting_t *s, FILE *out)
{
    const char *field = (const char *)c + s->off;
    switch (s->type) {
    case T_STR:
        fprintf(out, "%s", field);
        break;
    case T_BOOL:
        fprintf(out, "%s", *(const bool *)field ? "yes" : "no");
        break;
    case T_LONG:
        fprintf(out, "%ld", *(const long *)field);
        break;
    case T_DOUBLE:
        fprintf(out, "%g", *(const double *)field);
        break;
    case T_POLICY:
        fprintf(out, "%s", edge_local_policy_name(*(const local_policy_t *)field));
        break;
    }
}

/* Bytes of a setting's field in edge_config_t. */
static size_t field_size(const setting_t *s)
{
    switch (s->type) {
    case T_STR:
        return s->size;
    case T_BOOL:
        return sizeof(bool);
    case T_LONG:
        return sizeof(long);
    case T_DOUBLE:
        return sizeof(double);
    case T_POLICY:
        return sizeof(local_policy_t);
    }
    return 0;
}

static bool setting_differs(const edge_config_t *a, const edge_config_t *b, const setting_t *s)
{
    const char *x = (const char *)a + s->off, *y = (const char *)b + s->off;
    return s->type == T_STR ? strcmp(x, y) != 0 : memcmp(x, y, field_size(s)) != 0;
}

size_t edge_config_changes(const edge_config_t *from, const edge_config_t *to, bool live, char *buf,
                           size_t cap)
{
    size_t n = 0, len = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        if (s->live != live || !setting_differs(from, to, s))
            continue;
        char name[96];
        snprintf(name, sizeof name, "[%s] %s", s->section, s->key);
        log_list_add(buf, cap, &len, name);
        n++;
    }
    return n;
}

void edge_config_take_live(edge_config_t *dst, const edge_config_t *src)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].live && setting_differs(dst, src, &settings[i]))
            memcpy((char *)dst + settings[i].off, (const char *)src + settings[i].off,
                   field_size(&settings[i]));
}

/* The help text as "# " lines of at most 90 columns (inih reads lines of up to 200). */
static void print_comment(FILE *out, const setting_t *s)
{
    char text[600];
    snprintf(text, sizeof text, "%s (default: %s%s)", s->help, *s->def ? s->def : "empty",
             s->live ? "; a SIGHUP applies a change" : "");
    const char *p = text;
    while (*p) {
        size_t n = strlen(p);
        if (n > 88) {
            n = 88;
            while (n > 20 && p[n] != ' ')
                n--;
        }
        fprintf(out, "# %.*s\n", (int)n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

/* Secrets are not printed: --check-config runs before every start of the unit, and its output
 * goes to the journal. A set one is shown as a comment, so the output still reads as a file. */
static bool secret_set(const edge_config_t *c, const setting_t *s)
{
    bool secret = (!strcmp(s->section, "ingest") && !strcmp(s->key, "hep_auth_key")) ||
                  (!strcmp(s->section, "http") && !strcmp(s->key, "api_token"));
    return secret && ((const char *)c + s->off)[0];
}

void edge_config_print(const edge_config_t *c, FILE *out, bool comments)
{
    const char *section = "";
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        if (strcmp(section, s->section)) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", s->section);
            section = s->section;
        }
        if (comments)
            print_comment(out, s);
        if (secret_set(c, s)) {
            fprintf(out, "# %s = (set; not shown)\n", s->key);
            continue;
        }
        fprintf(out, "%s = ", s->key);
        print_value(c, s, out);
        fputc('\n', out);
    }
}
