/*
 * edge_config: the settings of sipguard-edge, from an INI file (inih) and
 * command-line overrides.
 *
 * Every setting is declared once in a table (section, key, type, default,
 * help). The same table parses the file, applies `--set section.key=value`,
 * prints the effective configuration (`--check-config`), and writes the
 * commented example config (`--print-config`), so the documentation cannot
 * drift from what the parser accepts. Unknown sections or keys and values
 * of the wrong type are errors with the file and line, never ignored.
 */
#ifndef SIPGUARD_EDGE_CONFIG_H
#define SIPGUARD_EDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

/* When the local (k-NN) model runs. */
typedef enum {
    LOCAL_ALWAYS = 0, /* every message */
    LOCAL_NEAR,       /* only when the global score reaches (1 - margin) x its threshold */
    LOCAL_SAMPLE,     /* a random fraction of messages, plus every global anomaly */
    LOCAL_NEVER,
} local_policy_t;

typedef struct {
    /* [edge] */
    char id[64];
    char model[512];
    char log_level[16];
    bool syslog;
    /* [ingest] */
    char hep_listen[128];
    char hep_tcp_listen[128];
    char hep_tls_listen[128];
    char hep_tls_cert[512], hep_tls_key[512], hep_tls_client_ca[512];
    char hep_auth_key[128];
    long hep_tcp_per_source; /* HEP TCP/TLS connections one source may hold; 0: any */
    char udp_listen[128];
    char pcap_file[512];
    bool pcap_pace; /* replay at the capture's own pace instead of as fast as possible */
    bool pcap_exit; /* stop the daemon when the replay ends (tests, one-shot runs) */
    char interface[64];
    char bpf[512];
    long snaplen;    /* bytes kept of each captured packet */
    long capture_mb; /* kernel capture ring, MiB */
    char sip_ports[32];
    bool keep_copies; /* a cooked capture's copies of a packet on other interfaces */
    long max_message;
    long tcp_streams, tcp_memory_mb; /* TCP reassembly bounds */
    /* [scoring] */
    local_policy_t local_policy;
    double local_margin;
    double local_sample;
    bool local_flagged; /* the local model also scores what the global model or a signature
                         * flagged already */
    /* [detectors] */
    char context_model[512];
    /* [signatures] */
    char signatures_file[512];
    /* [verdict] */
    char allow_file[512]; /* sources never answered with a blocking verdict */
    bool monitor;         /* a dry run: every caller is answered normal */
    /* [ban] */
    long ban_after; /* blocking judgements within ban_window that ban a source; 0: off */
    double ban_window, ban_seconds, ban_max_seconds;
    long ban_signature_strikes; /* a signature match counts as this many judgements */
    long ban_ipv6_prefix, ban_max_sources;
    long ban_log_max;   /* bans logged one by one a minute, the rest summed up; 0: every one */
    char ban_file[512]; /* empty: spool_dir/bans.json */
    bool ban_domain;    /* impose the overlay's list of the domain's bans */
    /* [report] */
    char jsonl[512];
    bool anomalies_only;
    double normal_sample; /* fraction of normal messages reported too, as clean samples */
    double max_rate;      /* reports a second at most (token bucket); 0: no limit */
    long top_features;
    bool raw;
    /* [record] */
    char record_dir[512];     /* empty: no recording */
    char record_verdicts[16]; /* normal, anomalies or all */
    long record_file_mb, record_max_mb;
    double record_file_seconds, record_sample;
    /* [overlay] */
    char overlay_endpoint[256];
    char overlay_server_key[128];
    char sig_snapshot[256], sig_updates[256];
    char key_dir[512];
    char spool_dir[512];
    long spool_max_bytes;
    double ack_timeout;
    /* [http] */
    char http_listen[128];
    char http_token[128]; /* bearer token /v1/ requests must carry; empty: none */
    char http_tls_cert[512], http_tls_key[512]; /* HTTPS; both empty: plain HTTP */
} edge_config_t;

void edge_config_default(edge_config_t *c);

/* Reads an INI file over the current values. Returns 0, or -1 with "FILE:LINE: why" in err. */
int edge_config_load(edge_config_t *c, const char *path, char *err, size_t errlen);

/* Applies "section.key=value". Returns 0, or -1 with the reason in err. */
int edge_config_set(edge_config_t *c, const char *assignment, char *err, size_t errlen);

/* Cross-checks that no single value can: at least one input, listen addresses that parse,
 * a key for the overlay. Returns 0, or -1 with the reason in err. */
int edge_config_validate(const edge_config_t *c, char *err, size_t errlen);

/* The settings whose values differ between from and to, among those a SIGHUP applies (live)
 * or those that take effect at the next start (!live): their count, and "[section] key"
 * names, comma-separated, in buf. */
size_t edge_config_changes(const edge_config_t *from, const edge_config_t *to, bool live, char *buf,
                           size_t cap);

/* Copies into dst the settings of src that a SIGHUP applies; the others stay. Only the fields
 * that differ are written, so a thread reading another field of dst is not disturbed. */
void edge_config_take_live(edge_config_t *dst, const edge_config_t *src);

/* Writes every setting as INI. With comments, each is preceded by its help text. */
void edge_config_print(const edge_config_t *c, FILE *out, bool comments);

/* "always", "near", "sample", "never". */
const char *edge_local_policy_name(local_policy_t p);

/* Splits "HOST:PORT" or "[V6]:PORT" into host and port. Returns 0 or -1. */
int edge_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port);
/* The socket address of "IPV4:PORT" or "[IPV6]:PORT" (numeric hosts only, for binding);
 * its length, or 0 when s is not one. */
socklen_t edge_hostport_sockaddr(const char *s, struct sockaddr_storage *ss);

#endif
