/* Tests of the edge's modules: the report spool, the configuration, signature matching, and
 * the allowed sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "ban.h"
#include "bearer.h"
#include "edge_config.h"
#include "edge_sigsub.h"
#include "edge_spool.h"
#include "log.h"
#include "sigdb.h"
#include "wire.h"
#include "edge_senders.h"

static char dir[128];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sipguard-spool-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[400];
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
    return 0;
}

static size_t segment_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

static void append_n(spool_t *s, int n, uint64_t *seqs)
{
    char buf[200];
    for (int i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "{\"report\":%d,\"pad\":\"%0100d\"}", i, 0);
        uint64_t expect = spool_next_seq(s);
        seqs[i] = spool_append(s, buf, (size_t)len);
        assert_int_equal(seqs[i], expect);
        if (i)
            assert_true(seqs[i] > seqs[i - 1]);
    }
}

static void test_unacked_reports_survive_a_reopen_and_acked_ones_do_not(void **state)
{
    (void)state;
    char err[256];
    spool_t *s = spool_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(s);
    uint64_t seq[100];
    append_n(s, 100, seq);
    for (int i = 0; i < 100; i += 2)
        spool_ack(s, seq[i]);
    spool_ack(s, 999999999); /* unknown: ignored */
    spool_stats_t st;
    spool_stats(s, &st);
    assert_int_equal(st.pending, 50);
    spool_close(&s);
    s = spool_open(dir, 1 << 20, err, sizeof err);
    assert_non_null(s);
    spool_stats(s, &st);
    /* the open segment is kept whole until all of it is acked: the acked ones come back too,
     * and the overlay drops them as duplicates */
    assert_int_equal(st.recovered, 100);
    assert_int_equal(spool_entry(s, 1)->seq, seq[1]);
    char expect[200];
    snprintf(expect, sizeof expect, "{\"report\":%d,\"pad\":\"%0100d\"}", 1, 0);
    assert_string_equal(spool_entry(s, 1)->data, expect);
    for (int i = 0; i < 100; i++)
        spool_ack(s, seq[i]);
    spool_stats(s, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(segment_files(), 0);
    /* new numbers never repeat old ones */
    uint64_t next = spool_next_seq(s);
    assert_true(next > seq[99]);
    spool_close(&s);
    s = spool_open(dir, 1 << 20, err, sizeof err);
    assert_true(spool_next_seq(s) > next);
    spool_close(&s);
}

static void test_torn_frame_is_cut_and_the_rest_kept(void **state)
{
    (void)state;
    char err[256];
    spool_t *s = spool_open(dir, 1 << 20, err, sizeof err);
    uint64_t seq[10];
    append_n(s, 10, seq);
    spool_close(&s);
    /* tear the last frame, as a kill mid-write would */
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[400] = "";
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "seg-", 4))
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    closedir(d);
    struct stat st;
    stat(p, &st);
    assert_int_equal(truncate(p, st.st_size - 7), 0);
    s = spool_open(dir, 1 << 20, err, sizeof err);
    spool_stats_t ss;
    spool_stats(s, &ss);
    assert_int_equal(ss.recovered, 9);
    assert_int_equal(ss.torn, 1);
    /* and a corrupt byte inside a frame: the CRC catches it */
    spool_close(&s);
    FILE *f = fopen(p, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc('#', f);
    fclose(f);
    s = spool_open(dir, 1 << 20, err, sizeof err);
    spool_stats(s, &ss);
    assert_int_equal(ss.recovered, 0);
    assert_int_equal(ss.torn, 1);
    spool_close(&s);
}

static void test_bound_drops_the_oldest_and_counts_them(void **state)
{
    (void)state;
    char err[256];
    log_set_level(LOG_LEVEL_ERROR);
    spool_t *s = spool_open(dir, 65536, err, sizeof err);
    uint64_t seq[2000];
    append_n(s, 2000, seq);
    spool_stats_t st;
    spool_stats(s, &st);
    assert_true(st.bytes <= 65536);
    assert_true(st.dropped > 0);
    assert_int_equal(st.dropped + st.pending, 2000);
    /* what is left is the newest, in order */
    assert_int_equal(spool_entry(s, spool_count(s) - 1)->seq, seq[1999]);
    assert_int_equal(spool_entry(s, 0)->seq, seq[st.dropped]);
    spool_close(&s);
    log_set_level(LOG_LEVEL_WARNING);
}

static void test_full_disk_is_an_error_not_a_loss(void **state)
{
    (void)state;
    char err[256];
    spool_t *s = spool_open(dir, 1 << 20, err, sizeof err);
    uint64_t seq[5];
    append_n(s, 5, seq);
    /* a file size limit makes write() fail as a full disk would */
    struct rlimit old, lim = {4096, 4096};
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    lim.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    log_set_level(LOG_LEVEL_ERROR + 0);
    char big[3000];
    memset(big, 'x', sizeof big);
    uint64_t a = spool_append(s, big, sizeof big), b = spool_append(s, big, sizeof big);
    setrlimit(RLIMIT_FSIZE, &old);
    spool_stats_t st;
    spool_stats(s, &st);
    assert_true(a > 0 && b > a); /* kept in memory, still sent */
    assert_true(st.write_errors >= 1);
    assert_int_equal(st.pending, 7);
    assert_int_equal(spool_entry(s, 6)->len, sizeof big);
    spool_ack(s, b);
    spool_ack(s, a);
    spool_stats(s, &st);
    assert_int_equal(st.pending, 5);
    spool_close(&s);
}

static void test_unwritable_spool_directory_is_refused(void **state)
{
    (void)state;
    char err[256];
    assert_null(spool_open("/proc/sipguard-spool", 1 << 20, err, sizeof err));
    assert_non_null(strstr(err, "/proc/sipguard-spool"));
}

static void test_config_types_ranges_and_names(void **state)
{
    (void)state;
    edge_config_t c;
    edge_config_default(&c);
    char err[256];
    assert_int_equal(c.local_policy, LOCAL_ALWAYS);
    assert_int_equal(edge_config_set(&c, "scoring.local_policy=near", err, sizeof err), 0);
    assert_int_equal(c.local_policy, LOCAL_NEAR);
    assert_int_equal(edge_config_set(&c, "SCORING.Local_Margin=0.25", err, sizeof err), 0);
    assert_true(c.local_margin == 0.25);
    assert_int_equal(edge_config_set(&c, "scoring.local_margin=2", err, sizeof err), -1);
    assert_non_null(strstr(err, "from 0 to 1"));
    assert_true(c.local_flagged);
    assert_int_equal(edge_config_set(&c, "scoring.local_flagged=no", err, sizeof err), 0);
    assert_false(c.local_flagged);
    assert_int_equal(edge_config_set(&c, "report.raw=maybe", err, sizeof err), -1);
    assert_non_null(strstr(err, "yes or no"));
    assert_int_equal(edge_config_set(&c, "report.raw=off", err, sizeof err), 0);
    assert_false(c.raw);
    assert_int_equal(edge_config_set(&c, "ingest.max_message=12x", err, sizeof err), -1);
    assert_int_equal(edge_config_set(&c, "ingest.nope=1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown key"));
    assert_int_equal(edge_config_set(&c, "noequals", err, sizeof err), -1);
    char longv[700];
    memset(longv, 'a', sizeof longv);
    memcpy(longv, "edge.id=", 8);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(edge_config_set(&c, longv, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer than"));
    char host[64];
    unsigned port;
    assert_int_equal(edge_split_hostport("[::1]:9060", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9060);
    assert_int_equal(edge_split_hostport("127.0.0.1:70000", host, sizeof host, &port), -1);
    assert_int_equal(edge_split_hostport("nohost", host, sizeof host, &port), -1);
    /* validation: the model is required; an overlay needs its key */
    edge_config_default(&c);
    assert_int_equal(edge_config_validate(&c, err, sizeof err), -1);
    edge_config_set(&c, "edge.model=x.model", err, sizeof err);
    assert_int_equal(edge_config_validate(&c, err, sizeof err), 0);
    edge_config_set(&c, "edge.log_level=verbose", err, sizeof err);
    assert_int_equal(edge_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "log_level = verbose"));
    edge_config_set(&c, "edge.log_level=debug", err, sizeof err);
    assert_int_equal(edge_config_validate(&c, err, sizeof err), 0);
    edge_config_set(&c, "overlay.endpoint=tcp://127.0.0.1:7070", err, sizeof err);
    assert_int_equal(edge_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "server_key"));
}

/* A SIGHUP takes the settings that can change while running and names the others: the
 * changes are listed by kind, and taking them leaves every restart-only field as it was. */
static void test_config_live_settings_are_taken_and_the_rest_named(void **state)
{
    (void)state;
    char err[256], names[512];
    static edge_config_t running, fresh, before;
    edge_config_default(&running);
    edge_config_default(&fresh);
    assert_int_equal(edge_config_changes(&running, &fresh, true, names, sizeof names), 0);
    assert_int_equal(edge_config_changes(&running, &fresh, false, names, sizeof names), 0);
    assert_string_equal(names, "");
    const char *sets[] = {"verdict.monitor=yes",      "ban.after=4",
                          "report.max_rate=50",       "edge.model=new.model",
                          "http.listen=127.0.0.1:1",  "ingest.capture_mb=32",
                          "scoring.local_policy=near"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        assert_int_equal(edge_config_set(&fresh, sets[i], err, sizeof err), 0);
    assert_int_equal(edge_config_changes(&running, &fresh, true, names, sizeof names), 5);
    assert_string_equal(names, "[edge] model, [scoring] local_policy, [verdict] monitor, "
                               "[ban] after, [report] max_rate");
    assert_int_equal(edge_config_changes(&running, &fresh, false, names, sizeof names), 2);
    assert_string_equal(names, "[ingest] capture_mb, [http] listen");
    before = running;
    edge_config_take_live(&running, &fresh);
    assert_true(running.monitor);
    assert_int_equal(running.ban_after, 4);
    assert_true(running.max_rate == 50);
    assert_string_equal(running.model, "new.model");
    assert_int_equal(running.local_policy, LOCAL_NEAR);
    assert_string_equal(running.http_listen, before.http_listen); /* the next start's */
    assert_int_equal(running.capture_mb, 64);
    assert_int_equal(edge_config_changes(&running, &fresh, true, names, sizeof names), 0);
    /* a short buffer holds what fits; the count is still every change */
    assert_int_equal(edge_config_changes(&before, &fresh, true, names, 12), 5);
    assert_true(strlen(names) < 12);
}

static sigdb_t *load_sigs(const char *text, embed_opts_t *eo, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    assert_non_null(root);
    sigdb_t *db = sigdb_from_json(root, eo, err, errlen);
    json_decref(root);
    return db;
}

/* The signature score is exactly sum(weight x count) over the embedding, negative weights
 * included; the vectorscan prefilter never hides a match. */
static void test_signature_score_is_the_linear_score_over_the_embedding(void **state)
{
    (void)state;
    embed_opts_t eo;
    embed_opts_default(&eo);
    char err[256];
    sigdb_t *db = load_sigs(
        "{\"format\":\"sipguard-signatures\",\"version\":1,\"sequence\":9,\"feature\":\"ngram:4\","
        "\"shape\":\"fields\",\"signatures\":["
        "{\"id\":\"a\",\"threshold\":3.5,\"features\":[{\"string\":\"aaaa\",\"weight\":0.5},"
        "{\"string\":\"bbbb\",\"weight\":-1}]},"
        "{\"id\":\"b\",\"threshold\":0,\"features\":[{\"string\":\"zzzz\",\"weight\":-1}]},"
        "{\"id\":\"c\",\"threshold\":1,\"features\":[{\"string\":\"Call\",\"weight\":1}]}]}",
        &eo, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(sigdb_count(db), 3);
    assert_int_equal(sigdb_sequence(db), 9);
    embed_t *e = embed_new(&eo);
    embed_set_sorted(e, false);
    sparse_t *v = sparse_new();
    sigscratch_t *sc = sigdb_scratch_new(db);
    sig_matches_t m;
    /* 10 a's hold 7 "aaaa": 3.5 -> a matches; b (threshold 0, no zzzz) always matches */
    const char *msg = "aaaaaaaaaa";
    embed_message(e, (const uint8_t *)msg, strlen(msg), v);
    size_t len;
    const uint8_t *bytes = embed_last_bytes(e, &len);
    assert_int_equal(sigdb_match(db, sc, bytes, len, v, &m), 2);
    assert_string_equal(sigdb_id(db, m.index[0]), "a");
    assert_true(fabs(m.score[0] - 3.5) < 1e-12);
    assert_string_equal(sigdb_id(db, m.index[1]), "b");
    /* one "bbbb" pulls a below its threshold; "zzzz" pulls b below 0 */
    msg = "aaaaaaaaaabbbbzzzz";
    embed_message(e, (const uint8_t *)msg, strlen(msg), v);
    bytes = embed_last_bytes(e, &len);
    assert_int_equal(sigdb_match(db, sc, bytes, len, v, &m), 0);
    /* scratch is clean between calls: the first case again */
    msg = "aaaaaaaaaa";
    embed_message(e, (const uint8_t *)msg, strlen(msg), v);
    bytes = embed_last_bytes(e, &len);
    assert_int_equal(sigdb_match(db, sc, bytes, len, v, &m), 2);
    sigdb_scratch_destroy(&sc);
    sigdb_destroy(&db);
    embed_destroy(&e);
    sparse_destroy(&v);
}

static void test_bad_signature_files_are_refused_with_the_reason(void **state)
{
    (void)state;
    embed_opts_t eo;
    embed_opts_default(&eo);
    char err[256];
    const char *head = "{\"format\":\"sipguard-signatures\",\"version\":1,\"feature\":\"ngram:4\","
                       "\"shape\":\"fields\",\"signatures\":";
    struct {
        const char *sigs, *why;
    } cases[] = {
        {"[{\"id\":\"x\",\"threshold\":1,\"features\":[{\"string\":\"abc\",\"weight\":1}]}]",
         "not a feature of this embedding"},
        {"[{\"id\":\"x\",\"threshold\":\"high\",\"features\":[]}]", "\"threshold\" must be"},
        {"[{\"id\":\"x\",\"threshold\":1,\"features\":[]}]", "non-empty array"},
        {"[{\"id\":\"x\",\"threshold\":1,\"features\":[{\"string\":\"abcd\"}]}]",
         "\"weight\" (number)"},
        {"[{\"id\":\"x\",\"threshold\":1,\"features\":[{\"string\":\"abcd\",\"weight\":1}]},"
         "{\"id\":\"x\",\"threshold\":1,\"features\":[{\"string\":\"abcd\",\"weight\":1}]}]",
         "appears twice"},
        {"7", "must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[600];
        snprintf(text, sizeof text, "%s%s}", head, cases[i].sigs);
        sigdb_t *db = load_sigs(text, &eo, err, sizeof err);
        assert_null(db);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].why);
    }
    assert_null(load_sigs("{\"format\":\"other\"}", &eo, err, sizeof err));
    assert_null(
        load_sigs("{\"format\":\"sipguard-signatures\",\"version\":2}", &eo, err, sizeof err));
    /* shaping tokens are written as \u00XX and match the shaped bytes */
    char text[600];
    snprintf(text, sizeof text,
             "%s[{\"id\":\"t\",\"threshold\":1,\"features\":[{\"string\":\"ag=\\u00c0\","
             "\"weight\":1}]}]}",
             head);
    sigdb_t *db = load_sigs(text, &eo, err, sizeof err);
    assert_non_null(db);
    embed_t *e = embed_new(&eo);
    sparse_t *v = sparse_new();
    sigscratch_t *sc = sigdb_scratch_new(db);
    const char *msg = "From: <sip:a@b>;tag=a8f3k2\r\n";
    embed_message(e, (const uint8_t *)msg, strlen(msg), v);
    size_t len;
    const uint8_t *bytes = embed_last_bytes(e, &len);
    sig_matches_t m;
    assert_int_equal(sigdb_match(db, sc, bytes, len, v, &m), 1);
    sigdb_scratch_destroy(&sc);
    sigdb_destroy(&db);
    embed_destroy(&e);
    sparse_destroy(&v);
}

static void test_wire_frames_round_trip_and_reject_malformed(void **state)
{
    (void)state;
    uint8_t buf[256];
    const char *json = "{\"seq\":77}";
    size_t n = wire_encode(buf, WIRE_REPORT, "edge-7", 77, json, strlen(json));
    assert_int_equal(n, wire_size(6, strlen(json)));
    wire_msg_t w;
    assert_int_equal(wire_decode(buf, n, WIRE_REPORT, &w), 0);
    assert_int_equal(w.id_len, 6);
    assert_memory_equal(w.id, "edge-7", 6);
    assert_int_equal(w.seq, 77);
    assert_int_equal(w.json_len, strlen(json));
    assert_memory_equal(w.json, json, w.json_len);
    assert_int_equal(wire_decode(buf, n, WIRE_ACK, &w), -1); /* another tag */
    for (size_t cut = 0; cut < 4 + 1 + 6 + 8; cut++)         /* every truncation */
        assert_int_equal(wire_decode(buf, cut, WIRE_REPORT, &w), -1);
    buf[4] = 200; /* id length past the limit */
    assert_int_equal(wire_decode(buf, n, WIRE_REPORT, &w), -1);
    n = wire_encode(buf, WIRE_ACK, "e", UINT64_MAX, NULL, 0);
    assert_int_equal(wire_decode(buf, n, WIRE_ACK, &w), 0);
    assert_true(w.seq == UINT64_MAX && w.json_len == 0);
    char longid[80];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(wire_encode(buf, WIRE_ACK, longid, 1, NULL, 0), 0);
    assert_int_equal(wire_encode(buf, WIRE_ACK, "", 1, NULL, 0), 0);
}

static endpoint_t ep(const char *addr)
{
    endpoint_t e = {0};
    if (inet_pton(AF_INET, addr, e.addr) == 1)
        e.family = 4;
    else if (inet_pton(AF_INET6, addr, e.addr) == 1)
        e.family = 6;
    return e;
}

static allowlist_t *parse_list(const char *text, char *err, size_t errlen)
{
    return allowlist_parse(text, strlen(text), "allow.txt", err, errlen);
}

static bool allowed(const allowlist_t *a, const char *addr)
{
    endpoint_t e = ep(addr);
    assert_int_not_equal(e.family, 0);
    return allowlist_contains(a, &e);
}

/* Addresses and prefixes of both families, comments and repeats; lookups at the edges of
 * each prefix, IPv4-mapped sources, and a prefix ending inside the second half of an IPv6
 * address. */
static void test_allowlist_matches_addresses_and_prefixes(void **state)
{
    (void)state;
    char err[256] = "";
    allowlist_t *a = parse_list("# our infrastructure\n10.0.0.0/8\n192.0.2.10\n"
                                "  2001:db8::/32   # the trunk\n\n198.51.100.0/24\r\n"
                                "2001:db8::/32\n::1\n2001:db8:1:0:8000::/65",
                                err, sizeof err);
    assert_non_null(a);
    assert_int_equal(allowlist_size(a), 6); /* the repeat once */
    assert_true(allowed(a, "10.0.0.0"));
    assert_true(allowed(a, "10.255.255.255"));
    assert_false(allowed(a, "9.255.255.255"));
    assert_false(allowed(a, "11.0.0.0"));
    assert_true(allowed(a, "192.0.2.10"));
    assert_false(allowed(a, "192.0.2.11"));
    assert_true(allowed(a, "198.51.100.255"));
    assert_false(allowed(a, "198.51.101.0"));
    assert_true(allowed(a, "2001:db8:ffff:ffff::1"));
    assert_false(allowed(a, "2001:db9::"));
    assert_true(allowed(a, "::1"));
    assert_false(allowed(a, "::2"));
    assert_true(allowed(a, "::ffff:10.1.2.3"));
    assert_false(allowed(a, "::ffff:11.1.2.3"));
    assert_true(allowed(a, "2001:db8:1:0:8000::1"));
    assert_true(allowed(a, "2001:db8:1:0:ffff:ffff:ffff:ffff"));
    endpoint_t unknown = {0};
    assert_false(allowlist_contains(a, &unknown));
    assert_false(allowlist_contains(NULL, &unknown));
    allowlist_destroy(&a);
    assert_null(a);

    a = parse_list("0.0.0.0/0\n", err, sizeof err);
    assert_non_null(a);
    assert_true(allowed(a, "255.255.255.255"));
    assert_false(allowed(a, "2001:db8::1")); /* IPv4's /0 is not IPv6's */
    allowlist_destroy(&a);
    a = parse_list("", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(allowlist_size(a), 0);
    assert_false(allowed(a, "10.0.0.1"));
    allowlist_destroy(&a);
}

/* Each mistake is refused with the file, the line and what is wrong. */
static void test_allowlist_errors_name_the_line(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"10.0.0.1/8", "allow.txt:1: 10.0.0.1/8 has host bits set (the prefix is 10.0.0.0/8)"},
        {"2001:db8::1/64",
         "allow.txt:1: 2001:db8::1/64 has host bits set (the prefix is 2001:db8::/64)"},
        {"# x\n\nfoo\n", "allow.txt:3: 'foo' is not an IPv4 or IPv6 address"},
        {"10.0.0.0/33", "allow.txt:1: '/33' is not a prefix length of 0 to 32"},
        {"2001:db8::/129", "allow.txt:1: '/129' is not a prefix length of 0 to 128"},
        {"10.0.0.0/", "allow.txt:1: '/' is not a prefix length of 0 to 32"},
        {"10.0.0.0/8x", "allow.txt:1: '/8x' is not a prefix length of 0 to 32"},
        {"10.0.0.0/-1", "allow.txt:1: '/-1' is not a prefix length of 0 to 32"},
        {"10.0.0.0 8", "allow.txt:1: '10.0.0.0 8' is not an IPv4 or IPv6 address"},
        {"10.0.0.0/8\n10.1.0.0/16/2", "allow.txt:2: '/16/2' is not a prefix length of 0 to 32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        allowlist_t *a = parse_list(bad[i].text, err, sizeof err);
        assert_null(a);
        assert_string_equal(err, bad[i].want);
    }
    char line[400], err[256] = "";
    memset(line, '1', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    assert_null(parse_list(line, err, sizeof err));
    assert_string_equal(err, "allow.txt:1: line longer than 256 bytes");
    assert_null(allowlist_parse("10.0.0.0/8\n1\0.2", 14, "allow.txt", err, sizeof err));
    assert_string_equal(err, "allow.txt:2: a NUL byte (not a text file?)");
    assert_null(allowlist_load("/nonexistent/allow.txt", err, sizeof err));
    assert_string_equal(err, "/nonexistent/allow.txt: No such file or directory");
}

/* Random prefixes of both families against a scan of every entry, over addresses drawn
 * inside and around them. */
static bool in_prefix(const uint8_t *addr, const uint8_t *net, int len)
{
    for (int b = 0; b < len; b++)
        if (((addr[b / 8] ^ net[b / 8]) >> (7 - b % 8)) & 1)
            return false;
    return true;
}

static void test_allowlist_agrees_with_a_scan(void **state)
{
    (void)state;
    enum { N = 300, Q = 20000 };
    static uint8_t net[N][16];
    static int fam[N], len[N];
    uint64_t x = 0x9E3779B97F4A7C15ULL;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    char *text = malloc(N * 64), *t = text;
    for (int i = 0; i < N; i++) {
        fam[i] = NEXT() % 3 ? 4 : 6;
        int bits = fam[i] == 4 ? 32 : 128;
        len[i] = (int)(bits / 4 + NEXT() % (uint64_t)(bits - bits / 4 + 1));
        for (int k = 0; k < 16; k++)
            net[i][k] = (uint8_t)NEXT();
        if (i % 10 == 0) /* some share a short common prefix, so lengths nest */
            memcpy(net[i], net[i / 2], 2);
        for (int b = len[i]; b < bits; b++)
            net[i][b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
        char a[INET6_ADDRSTRLEN];
        inet_ntop(fam[i] == 4 ? AF_INET : AF_INET6, net[i], a, sizeof a);
        t += sprintf(t, "%s/%d\n", a, len[i]);
    }
    char err[256] = "";
    allowlist_t *a = allowlist_parse(text, (size_t)(t - text), "random", err, sizeof err);
    assert_non_null(a);
    size_t in = 0;
    for (int q = 0; q < Q; q++) {
        endpoint_t e = {0};
        int i = (int)(NEXT() % N);
        e.family = fam[i];
        memcpy(e.addr, net[i], 16);
        /* flip a random bit: inside the prefix when past its length, outside when before */
        int bits = e.family == 4 ? 32 : 128, b = (int)(NEXT() % (uint64_t)bits);
        e.addr[b / 8] ^= (uint8_t)(0x80 >> (b % 8));
        bool want = false;
        for (int j = 0; j < N && !want; j++)
            want = fam[j] == e.family && in_prefix(e.addr, net[j], len[j]);
        in += want;
        assert_int_equal(allowlist_contains(a, &e), want);
    }
#undef NEXT
    assert_true(in > Q / 10 && in < Q - Q / 10); /* both answers well represented */
    allowlist_destroy(&a);
    free(text);
}

/* Entries come back in the one form the overlay hands its edges, and a union holds both
 * lists' entries once each. */
/* One entry exactly, as a domain ban's source must be: an address or a prefix without host
 * bits, and nothing around it. */
static void test_allowlist_entry_valid(void **state)
{
    (void)state;
    const char *good[] = {"203.0.113.9", "2001:db8:1:2::/64", "10.0.0.0/8", "::1", "0.0.0.0/0"};
    const char *bad[] = {"10.0.0.1/8", " 203.0.113.9",   "203.0.113.9 # us", "203.0.113.9\n",
                         "1.2.3.4/33", "2001:db8::/129", "not-an-address",   "",
                         "1.2.3.4/"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(allowlist_entry_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(allowlist_entry_valid(bad[i]));
}

static void test_allowlist_entries_and_union(void **state)
{
    (void)state;
    char err[256] = "", buf[64];
    allowlist_t *own = parse_list("2001:DB8:0::/32\n192.0.2.10\n10.0.0.0/8\n", err, sizeof err);
    allowlist_t *domain = parse_list("10.0.0.0/8\n::ffff:0:0/96\n", err, sizeof err);
    assert_non_null(own);
    assert_non_null(domain);
    const char *want[] = {"192.0.2.10/32", "10.0.0.0/8", "2001:db8::/32"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(allowlist_entry_text(own, i, buf, sizeof buf), want[i]);
    allowlist_t *u = allowlist_union(own, domain);
    assert_non_null(u);
    assert_int_equal(allowlist_size(u), 4);
    assert_true(allowed(u, "192.0.2.10") && allowed(u, "10.9.9.9") && allowed(u, "2001:db8::5"));
    assert_true(allowed(u, "::ffff:0:1"));
    assert_false(allowed(u, "192.0.2.11"));
    /* the entries as text make the same list again */
    char text[512] = "";
    for (size_t i = 0; i < allowlist_size(u); i++)
        strcat(strcat(text, allowlist_entry_text(u, i, buf, sizeof buf)), "\n");
    allowlist_t *again = parse_list(text, err, sizeof err);
    assert_non_null(again);
    assert_int_equal(allowlist_size(again), 4);
    for (size_t i = 0; i < 4; i++) {
        char b2[64];
        assert_string_equal(allowlist_entry_text(again, i, b2, sizeof b2),
                            allowlist_entry_text(u, i, buf, sizeof buf));
    }
    allowlist_t *only = allowlist_union(NULL, domain);
    assert_int_equal(allowlist_size(only), 2);
    allowlist_destroy(&only);
    allowlist_destroy(&again);
    allowlist_destroy(&u);
    allowlist_destroy(&own);
    allowlist_destroy(&domain);
}

/* A server socket with CURVE for the subscription test, bound to a free loopback port. */
static void *curve_server_socket(void *ctx, int type, const char *secret, char *endpoint)
{
    void *sock = zmq_socket(ctx, type);
    int one = 1, zero = 0;
    assert_non_null(sock);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40), 0);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_bind(sock, "tcp://127.0.0.1:*"), 0);
    size_t len = 256;
    assert_int_equal(zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &len), 0);
    return sock;
}

/* Whether a snapshot request reaches the router within ms; answers it with set seq. */
static bool snapshot_asked(void *router, int ms, uint64_t seq)
{
    zmq_pollitem_t item = {router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, ms) <= 0)
        return false;
    char id[256], req[16];
    int idlen = zmq_recv(router, id, sizeof id, 0);
    int rlen = zmq_recv(router, req, sizeof req, 0);
    assert_true(idlen > 0 && rlen == WIRE_TAG_LEN && !memcmp(req, WIRE_SNAPSHOT_REQ, 4));
    static const char json[] =
        "{\"format\":\"sipguard-signatures\",\"version\":1,\"signatures\":[]}";
    uint8_t frame[WIRE_TAG_LEN + 8 + sizeof json];
    size_t n = wire_encode_set(frame, WIRE_SNAPSHOT, seq, json, sizeof json - 1);
    assert_int_equal(zmq_send(router, id, (size_t)idlen, ZMQ_SNDMORE), idlen);
    assert_int_equal(zmq_send(router, frame, n, 0), (int)n);
    return true;
}

/* Ticks the subscription (its clock moving on 3.5 s a turn: a request sent before the new
 * connection is up is dropped, and asked again 3 s later) until the router gets a snapshot
 * request, answers it with set seq, and the subscription takes it. */
static bool snapshot_taken(sigsub_t *s, void *router, double *now, uint64_t seq)
{
    for (int turn = 0; turn < 12; turn++, *now += 3.5) {
        sigsub_tick(s, *now);
        if (!snapshot_asked(router, 500, seq))
            continue;
        zmq_pollitem_t item = {sigsub_snapshot_socket(s), 0, ZMQ_POLLIN, 0};
        return zmq_poll(&item, 1, 5000) == 1 && sigsub_on_messages(s) && sigsub_sequence(s) == seq;
    }
    return false;
}

/* The overlay sends its set again every 5 s; an edge that hears nothing for 15 s takes its
 * subscription for dead (a half-open connection, or a handshake refused by an overlay since
 * replaced, which libzmq does not retry), makes it anew and asks for a snapshot again. */
static void test_a_silent_subscription_is_made_anew(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char spub[41], ssec[41], cpub[41], csec[41], snap_ep[256], upd_ep[256], err[256];
    assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
    assert_int_equal(zmq_curve_keypair(cpub, csec), 0);
    void *router = curve_server_socket(ctx, ZMQ_ROUTER, ssec, snap_ep);
    void *pub = curve_server_socket(ctx, ZMQ_PUB, ssec, upd_ep);
    char cache[sizeof dir + 32];
    snprintf(cache, sizeof cache, "%s/signatures.json", dir);
    sigsub_t *s = sigsub_new(ctx, snap_ep, upd_ep, spub, cpub, csec, cache, err, sizeof err);
    assert_non_null(s);
    double now = 1000;
    assert_true(snapshot_taken(s, router, &now, 1));
    sigsub_tick(s, now + 10); /* quiet, but not for long */
    assert_false(snapshot_asked(router, 300, 1));
    now += 16; /* 16 s without an update: subscribed again, and asks */
    assert_true(snapshot_taken(s, router, &now, 2));
    assert_int_equal(sigsub_sequence(s), 2);
    sigsub_destroy(&s);
    zmq_close(router);
    zmq_close(pub);
    zmq_ctx_term(ctx);
}

/* ---------------------------------------------------------------- bans */

static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static ban_opts_t ban_opts(unsigned after, double window, double seconds, double max_seconds)
{
    return (ban_opts_t){after, window, seconds, max_seconds, 64, 1000};
}

static double strike(bantable_t *t, const char *addr, double now)
{
    endpoint_t e = ep(addr);
    assert_int_not_equal(e.family, 0);
    return bantable_strike(t, &e, 1, now);
}

static double banned(bantable_t *t, const char *addr, double now)
{
    endpoint_t e = ep(addr);
    return bantable_banned(t, &e, now);
}

/* `after` strikes within the window ban a source; strikes spread wider start the count again;
 * other sources and unknown addresses are untouched. */
static void test_ban_after_strikes_within_the_window(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(3, 10, 60, 1000);
    bantable_t *t = bantable_new(&o);
    assert_true(strike(t, "198.51.100.7", 0) == 0);
    assert_true(strike(t, "198.51.100.7", 5) == 0);
    assert_true(strike(t, "198.51.100.7", 12) == 0); /* the window from 0 has closed */
    assert_true(strike(t, "198.51.100.7", 13) == 0);
    assert_true(banned(t, "198.51.100.7", 13) == 0);
    assert_true(strike(t, "198.51.100.7", 14) == 60); /* three within 10 s of 12 */
    assert_true(fabs(banned(t, "198.51.100.7", 14.5) - 59.5) < 1e-9);
    assert_true(banned(t, "198.51.100.8", 14.5) == 0);
    assert_true(banned(t, "198.51.100.7", 74) == 0); /* over */
    endpoint_t unknown = {0};
    assert_true(bantable_strike(t, &unknown, 1, 20) == 0);
    assert_true(bantable_banned(t, &unknown, 20) == 0);
    ban_stats_t st;
    bantable_tick(t, 20, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.bans, 1);
    bantable_destroy(&t);
}

/* New [ban] settings (a SIGHUP) count strikes from then on; a running ban keeps its end. */
static void test_ban_opts_change_for_later_strikes(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(3, 10, 60, 1000);
    bantable_t *t = bantable_new(&o);
    assert_true(strike(t, "198.51.100.7", 0) == 0);
    assert_true(strike(t, "198.51.100.7", 1) == 0);
    assert_true(strike(t, "198.51.100.7", 2) == 60);
    ban_opts_t o2 = ban_opts(1, 10, 30, 1000);
    bantable_set_opts(t, &o2);
    assert_true(fabs(banned(t, "198.51.100.7", 3) - 59) < 1e-9); /* its end stays */
    assert_true(strike(t, "198.51.100.9", 3) == 30);             /* one strike bans now */
    bantable_destroy(&t);
    /* a weighted strike: a signature match counting for after bans at once; an anomaly after
     * it adds to the same window */
    t = bantable_new(&o);
    endpoint_t sig = ep("198.51.100.10"), mixed = ep("198.51.100.11");
    assert_true(bantable_strike(t, &sig, 3, 0) == 60);
    assert_true(bantable_strike(t, &mixed, 2, 0) == 0);
    assert_true(bantable_strike(t, &mixed, 1, 1) == 60);
    bantable_destroy(&t);
}

/* The domain's list bans on top of the table's own: each source until its until (an IPv6 one
 * by the table's prefix); the next list replaces the last, so a source it leaves out is no
 * longer banned by the domain, while a ban of the edge's own stays; the domain's bans are
 * listed as such and not saved (they come back with the cached set). */
static void test_ban_domain_list_is_imposed_and_replaced(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(2, 10, 60, 1000);
    bantable_t *t = bantable_new(&o);
    const char *src[] = {"203.0.113.9", "2001:db8:5:6::/64", "198.51.100.1", "nonsense"};
    double until[] = {500, 400, 50, 500}; /* 198.51.100.1's ran out before 100 */
    assert_int_equal(bantable_set_domain(t, src, until, 4, 100), 2);
    assert_true(banned(t, "203.0.113.9", 100) == 400);
    assert_true(banned(t, "2001:db8:5:6:aaaa::1", 100) == 300); /* in the /64 */
    assert_true(banned(t, "2001:db8:5:7::1", 100) == 0);
    assert_true(banned(t, "198.51.100.1", 100) == 0);
    /* a source the edge bans itself as well: the later end counts */
    assert_true(strike(t, "198.51.100.7", 100) == 0 && strike(t, "198.51.100.7", 101) == 60);
    const char *src2[] = {"198.51.100.7"};
    double until2[] = {1000};
    assert_int_equal(bantable_set_domain(t, src2, until2, 1, 110), 1);
    assert_true(banned(t, "198.51.100.7", 110) == 890);
    assert_true(banned(t, "203.0.113.9", 110) == 0); /* left out of the new list */
    ban_stats_t st;
    bantable_tick(t, 110, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.domain, 1);
    json_t *list = bantable_list(t, 110);
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_is_true(json_object_get(json_array_get(list, 0), "domain")));
    assert_true(json_number_value(json_object_get(json_array_get(list, 0), "until")) == 1000);
    json_decref(list);
    /* the domain's list emptied: the edge's own ban is left, and only it is saved */
    assert_int_equal(bantable_set_domain(t, NULL, NULL, 0, 120), 0);
    assert_true(banned(t, "198.51.100.7", 120) == 41);
    char path[300], err[300];
    snprintf(path, sizeof path, "%s/domain-bans.json", dir);
    assert_int_equal(bantable_save(t, path, 120, err, sizeof err), 0);
    bantable_t *back = bantable_new(&o);
    assert_int_equal(bantable_load(back, path, 120, err, sizeof err), 1);
    assert_true(banned(back, "198.51.100.7", 120) == 41);
    bantable_destroy(&back);
    bantable_destroy(&t);
}

/* Each later ban of a source is twice the one before, up to max_seconds; max_seconds after
 * its last ban ended the source starts again from the first length. */
static void test_ban_escalates_to_the_cap_and_is_forgotten(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(1, 10, 10, 35);
    bantable_t *t = bantable_new(&o);
    double now = 100;
    static const double want[] = {10, 20, 35, 35};
    for (int i = 0; i < 4; i++) {
        double len = strike(t, "203.0.113.1", now);
        assert_true(len == want[i]);
        now += len + 1; /* a strike after the ban ended */
    }
    now += 33; /* 34 s after the last ban ended: one second short of forgotten */
    assert_true(strike(t, "203.0.113.1", now) == 35);
    now += 35 + 35; /* ended at now + 35, and 35 s more */
    assert_true(strike(t, "203.0.113.1", now) == 10);
    bantable_destroy(&t);
}

/* IPv6 sources by their /64 (or by address with a prefix of 128); an IPv4-mapped source is
 * the IPv4 address. */
static void test_ban_ipv6_by_prefix_and_mapped_ipv4(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(2, 10, 60, 600);
    bantable_t *t = bantable_new(&o);
    assert_true(strike(t, "2001:db8:1:2::1", 0) == 0);
    assert_true(strike(t, "2001:db8:1:2:ffff::9", 1) == 60); /* the same /64 */
    assert_true(banned(t, "2001:db8:1:2:abcd::", 2) > 0);
    assert_true(banned(t, "2001:db8:1:3::1", 2) == 0);
    endpoint_t e = ep("2001:db8:1:2:ffff::9");
    char text[64];
    bantable_source_text(t, &e, text, sizeof text);
    assert_string_equal(text, "2001:db8:1:2::/64");
    assert_true(strike(t, "::ffff:198.51.100.7", 0) == 0);
    assert_true(strike(t, "198.51.100.7", 1) == 60);
    assert_true(banned(t, "::ffff:198.51.100.7", 2) > 0);
    e = ep("::ffff:198.51.100.7");
    bantable_source_text(t, &e, text, sizeof text);
    assert_string_equal(text, "198.51.100.7");
    bantable_destroy(&t);
    o.prefix6 = 128;
    t = bantable_new(&o);
    assert_true(strike(t, "2001:db8:1:2::1", 0) == 0);
    assert_true(strike(t, "2001:db8:1:2::2", 1) == 0);
    assert_true(strike(t, "2001:db8:1:2::1", 1) == 60);
    assert_true(banned(t, "2001:db8:1:2::2", 2) == 0);
    bantable_destroy(&t);
}

/* A new ipv6_prefix (a SIGHUP) bans by it from then on, while the bans made by the old one
 * run on; the domain's list bans an IPv6 prefix as listed, whatever the table's own; a saved
 * table keeps each ban's prefix. */
static void test_ban_prefixes_of_other_lengths_are_kept(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(1, 10, 60, 600);
    bantable_t *t = bantable_new(&o);
    assert_true(strike(t, "2001:db8:1:2::1", 0) == 60); /* its /64 */
    o.prefix6 = 48;
    bantable_set_opts(t, &o);
    assert_true(banned(t, "2001:db8:1:2::5", 1) == 59); /* the /64's ban runs on */
    assert_true(banned(t, "2001:db8:1:3::1", 1) == 0);  /* outside it, no /48 banned yet */
    assert_true(strike(t, "2001:db8:2:3::1", 1) == 60); /* now its /48 */
    assert_true(banned(t, "2001:db8:2:ffff::1", 2) == 59);
    endpoint_t e = ep("2001:db8:2:3::1");
    char text[64];
    bantable_source_text(t, &e, text, sizeof text);
    assert_string_equal(text, "2001:db8:2::/48");
    /* a /40 from the domain: all of it, not the /48 at its start */
    const char *src[] = {"2001:db8:900::/40"};
    double until[] = {500};
    assert_int_equal(bantable_set_domain(t, src, until, 1, 2), 1);
    assert_true(banned(t, "2001:db8:9ff:1::1", 2) == 498);
    assert_true(banned(t, "2001:db8:a00::1", 2) == 0);
    /* the same bytes at two lengths are two sources: lifting the /64 leaves the /48 */
    assert_true(strike(t, "2001:db8:1::9", 3) == 60); /* 2001:db8:1::/48 */
    assert_int_equal(bantable_lift(t, "2001:db8:1:2::/64"), 1);
    assert_true(banned(t, "2001:db8:1:2::5", 4) == 59); /* by the /48 now */
    assert_int_equal(bantable_lift(t, "2001:db8:1::/48"), 1);
    assert_true(banned(t, "2001:db8:1:2::5", 4) == 0);
    /* saved and read back into a table of another prefix: each ban as it was */
    char path[300], err[300];
    snprintf(path, sizeof path, "%s/prefix-bans.json", dir);
    assert_true(strike(t, "2001:db8:3:4::1", 5) == 60);
    o.prefix6 = 64;
    bantable_set_opts(t, &o);
    assert_true(strike(t, "2001:db8:5:6::1", 5) == 60);
    assert_int_equal(bantable_save(t, path, 6, err, sizeof err), 0);
    o.prefix6 = 56;
    bantable_t *back = bantable_new(&o);
    assert_int_equal(bantable_load(back, path, 6, err, sizeof err), 3);
    assert_true(banned(back, "2001:db8:3:ffff::1", 6) == 59); /* the /48 */
    assert_true(banned(back, "2001:db8:5:6:1::1", 6) == 59);  /* the /64 */
    assert_true(banned(back, "2001:db8:5:7::1", 6) == 0);     /* not its /56 */
    assert_true(banned(back, "2001:db8:2:1::1", 6) == 55);    /* the /48 banned at 1 */
    bantable_destroy(&back);
    bantable_destroy(&t);
}

/* Spoofed sources cannot grow the table past max_sources: strikes that find no room are
 * counted; a banned source is never pushed out; room comes back as strikes age. */
static void test_ban_table_is_bounded(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(2, 10, 600, 6000);
    o.max_sources = 16;
    bantable_t *t = bantable_new(&o);
    strike(t, "192.0.2.1", 0);
    assert_true(strike(t, "192.0.2.1", 0) == 600);
    char a[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(a, sizeof a, "10.0.%d.%d", i / 250, i % 250);
        strike(t, a, 1 + i * 1e-3);
    }
    ban_stats_t st;
    bantable_tick(t, 2, &st);
    assert_int_equal(st.tracked, 16);
    assert_int_equal(st.untracked, 1000 - 15);
    assert_true(banned(t, "192.0.2.1", 2) > 0);
    /* the strikes' window closes: their sources are dropped, new ones fit */
    assert_true(strike(t, "172.16.0.1", 20) == 0);
    assert_true(strike(t, "172.16.0.1", 21) == 600);
    bantable_tick(t, 22, &st);
    assert_int_equal(st.tracked, 2);
    assert_int_equal(st.untracked, 1000 - 15);
    assert_true(banned(t, "192.0.2.1", 22) > 0);
    bantable_destroy(&t);
}

/* A SIGHUP's new max_sources: shrunk, the table drops what it has nothing to remember of
 * first, then the bans that end soonest; grown, it keeps everything and takes more. */
static void test_ban_capacity_changes_keep_the_longest_bans(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(1, 10, 100, 100000);
    o.max_sources = 64;
    bantable_t *t = bantable_new(&o);
    char a[32];
    for (int i = 0; i < 10; i++) { /* banned at 0..9 for 100 s: the later, the longer left */
        snprintf(a, sizeof a, "192.0.2.%d", i);
        assert_true(strike(t, a, i) == 100);
    }
    o.after = 5;
    bantable_set_opts(t, &o);
    for (int i = 0; i < 30; i++) { /* strikes that ban nothing: remembered for their window */
        snprintf(a, sizeof a, "10.0.0.%d", i);
        strike(t, a, 10);
    }
    ban_stats_t st;
    bantable_tick(t, 15, &st);
    assert_int_equal(st.tracked, 40);
    assert_int_equal(bantable_set_capacity(t, 64, 15), 0);  /* the same: nothing happens */
    assert_int_equal(bantable_set_capacity(t, 12, 30), 30); /* the strikes' window closed */
    bantable_tick(t, 30, &st);
    assert_int_equal(st.tracked, 10);
    assert_int_equal(st.active, 10);
    assert_int_equal(bantable_set_capacity(t, 5, 30), 5);
    for (int i = 0; i < 10; i++) {
        snprintf(a, sizeof a, "192.0.2.%d", i);
        assert_true((banned(t, a, 30) > 0) == (i >= 5));
    }
    assert_int_equal(bantable_set_capacity(t, 100, 30), 0);
    o.after = 1;
    bantable_set_opts(t, &o);
    for (int i = 0; i < 90; i++) {
        snprintf(a, sizeof a, "10.1.0.%d", i);
        strike(t, a, 31);
    }
    bantable_tick(t, 31, &st);
    assert_int_equal(st.tracked, 95);
    assert_int_equal(st.untracked, 0);
    for (int i = 5; i < 10; i++) {
        snprintf(a, sizeof a, "192.0.2.%d", i);
        assert_true(banned(t, a, 31) > 0);
    }
    bantable_destroy(&t);
}

/* Strikes, lifts and the passing of time at random, against a table kept the obvious way:
 * both agree on every source's ban at every step. Small tables (8 sources in 16 slots) and many
 * sets of addresses, so that probe runs wrap around the table's end, where removal must move
 * entries back across it. */
static void test_ban_table_agrees_with_a_plain_model(void **state)
{
    (void)state;
    enum { N = 8 };
    uint32_t x = 77;
    for (int round = 0; round < 200; round++) {
        ban_opts_t o = ban_opts(2, 5, 4, 20);
        o.max_sources = N;
        bantable_t *t = bantable_new(&o);
        struct {
            unsigned strikes, level;
            double start, until;
        } ref[N] = {{0}};
        char addr[N][32];
        for (int i = 0; i < N; i++)
            snprintf(addr[i], sizeof addr[i], "10.%u.%u.%d", next_rand(&x) % 256,
                     next_rand(&x) % 256, i);
        double now = 1000;
        for (int step = 0; step < 400; step++) {
            int i = (int)(next_rand(&x) % N), what = (int)(next_rand(&x) % 10);
            now += (double)(next_rand(&x) % 100) / 50.0;
            if (what < 6 && !(ref[i].until > now)) {
                double want = 0;
                if (ref[i].strikes == 0 || now >= ref[i].start + o.window) {
                    ref[i].start = now;
                    ref[i].strikes = 0;
                }
                if (++ref[i].strikes >= o.after) {
                    if (ref[i].until > 0 && now >= ref[i].until + o.max_seconds)
                        ref[i].level = 0;
                    want = o.seconds * (1 << (ref[i].level < 4 ? ref[i].level : 4));
                    want = want < o.max_seconds ? want : o.max_seconds;
                    ref[i].until = now + want;
                    ref[i].level++;
                    ref[i].strikes = 0;
                }
                assert_true(strike(t, addr[i], now) == want);
            } else if (what < 9) {
                int lifted = bantable_lift(t, addr[i]);
                /* a ban whose memory has run out may linger until swept: either answer then */
                if (ref[i].until > 0 && now < ref[i].until + o.max_seconds)
                    assert_int_equal(lifted, 1);
                else if (ref[i].until == 0)
                    assert_int_equal(lifted, 0);
                memset(&ref[i], 0, sizeof ref[i]);
            } else if (next_rand(&x) % 8 == 0) {
                bantable_tick(t, now, NULL);
            }
            for (int j = 0; j < N; j++) {
                double left = banned(t, addr[j], now);
                double want = ref[j].until > now ? ref[j].until - now : 0;
                assert_true(fabs(left - want) < 1e-9);
            }
        }
        bantable_destroy(&t);
    }
}

/* The log's budget for lines a peer can repeat (bans): burst lines a window, the rest held and
 * summed up once the window is over, by the next line or a flush; 0 is no limit. The summary
 * goes to standard error, read back here. */
static void test_log_limit_names_a_burst_and_sums_up_the_rest(void **state)
{
    (void)state;
    char path[64], line[512], summary[512] = "";
    snprintf(path, sizeof path, "/tmp/sipguard-loglimit-%d.log", (int)getpid());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    dup2(fileno(f), 2);
    log_level_t level = log_get_level(); /* an earlier test may have quietened the log */
    log_set_level(LOG_LEVEL_WARNING);
    log_limit_t l;
    log_limit_init(&l, 3, 60, "bans");
    for (int i = 0; i < 3; i++)
        assert_true(log_limit_take(&l, 100 + i));
    assert_false(log_limit_take(&l, 103));
    assert_false(log_limit_take(&l, 150));
    assert_int_equal(log_limit_flush(&l, 159, false), 0); /* the window is not over */
    assert_int_equal(log_limit_flush(&l, 161, false), 2);
    assert_int_equal(log_limit_flush(&l, 300, false), 0); /* summed up once */
    assert_true(log_limit_take(&l, 400));                 /* a new window */
    for (int i = 0; i < 2; i++)
        assert_true(log_limit_take(&l, 401));
    assert_false(log_limit_take(&l, 402));
    assert_true(log_limit_take(&l, 470)); /* the next window sums up the last one first */
    assert_int_equal(log_limit_flush(&l, 471, false), 0);
    assert_true(log_limit_take(&l, 40)); /* the clock went back: a new window */
    assert_int_equal(log_limit_flush(&l, 41, true), 0);
    log_limit_set_burst(&l, 1);
    assert_true(log_limit_take(&l, 1000));
    assert_false(log_limit_take(&l, 1001));
    assert_int_equal(log_limit_flush(&l, 1002, true), 1); /* at the end, whatever is held */
    log_limit_set_burst(&l, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(log_limit_take(&l, 2000));
    log_limit_destroy(&l);
    log_set_level(level);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    int summaries = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "not logged one by one") && ++summaries == 1)
            snprintf(summary, sizeof summary, "%s", line);
    fclose(f);
    unlink(path);
    assert_int_equal(summaries, 3);
    assert_non_null(strstr(summary, "2 more bans in the last 61 s, not logged one by one"));
}

/* The bearer check both HTTP endpoints use: only the exact token passes, whatever differs */
static void test_bearer_token_must_match_exactly(void **state)
{
    (void)state;
    assert_true(bearer_accepted(NULL, ""));
    assert_true(bearer_accepted("Bearer anything", ""));
    assert_true(bearer_accepted("Bearer s3cret", "s3cret"));
    assert_false(bearer_accepted(NULL, "s3cret"));
    assert_false(bearer_accepted("", "s3cret"));
    assert_false(bearer_accepted("s3cret", "s3cret"));         /* no scheme */
    assert_false(bearer_accepted("Basic s3cret", "s3cret"));   /* another scheme */
    assert_false(bearer_accepted("Bearer s3cre", "s3cret"));   /* a prefix */
    assert_false(bearer_accepted("Bearer s3cret2", "s3cret")); /* longer */
    assert_false(bearer_accepted("Bearer S3cret", "s3cret"));  /* case */
    assert_false(bearer_accepted("Bearer ", "s3cret"));
    assert_false(bearer_accepted("Bearer s3cre\xff", "s3cret"));
}

/* A lifted source is unbanned and its past forgotten; lifting what is not banned, or text that
 * is not an address, says so. */
static void test_ban_lift(void **state)
{
    (void)state;
    ban_opts_t o = ban_opts(1, 10, 10, 100);
    bantable_t *t = bantable_new(&o);
    assert_true(strike(t, "2001:db8::5", 0) == 10);
    assert_true(strike(t, "2001:db8::5", 11) == 20);
    assert_int_equal(bantable_lift(t, "2001:db8::77"), 1); /* the same /64 */
    assert_true(banned(t, "2001:db8::5", 12) == 0);
    assert_true(strike(t, "2001:db8::5", 12) == 10); /* a first ban again */
    assert_int_equal(bantable_lift(t, "192.0.2.9"), 0);
    assert_int_equal(bantable_lift(t, "not-an-address"), -1);
    assert_int_equal(bantable_lift(t, "192.0.2.9/xx"), -1);
    assert_int_equal(bantable_lift(t, ""), -1);
    bantable_destroy(&t);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Bans and what is remembered of past ones are saved and read back; a file that is not one
 * of ours, or holds a wrong ban, is refused with the file and the reason, leaving the table
 * as it was; no file is no bans. */
/* The file is written a ban at a time: it is still one JSON document, with every ban, and an
 * empty table saves an empty list. */
static void test_many_bans_saved_one_a_line_load_back_whole(void **state)
{
    (void)state;
    char path[sizeof dir + 32], err[512];
    snprintf(path, sizeof path, "%s/many-bans.json", dir);
    ban_opts_t o = ban_opts(1, 10, 100, 1000);
    o.max_sources = 8192;
    bantable_t *t = bantable_new(&o);
    assert_int_equal(bantable_save(t, path, 10, err, sizeof err), 0);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), 1);
    assert_int_equal(json_array_size(json_object_get(doc, "bans")), 0);
    json_decref(doc);
    for (int i = 0; i < 3000; i++) {
        char a[64];
        if (i % 3)
            snprintf(a, sizeof a, "198.%d.%d.%d", 18 + i / 65536, (i >> 8) & 255, i & 255);
        else
            snprintf(a, sizeof a, "2001:db8:%x::1", i);
        assert_true(strike(t, a, 1000 + i * 0.01) == 100);
    }
    assert_int_equal(bantable_save(t, path, 1040, err, sizeof err), 0);
    doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(doc);
    assert_true(json_number_value(json_object_get(doc, "saved")) == 1040);
    json_t *bans = json_object_get(doc, "bans");
    assert_int_equal(json_array_size(bans), 3000);
    size_t i;
    json_t *b;
    int v6 = 0;
    json_array_foreach(bans, i, b)
    {
        assert_int_equal(json_object_size(b), 3);
        assert_int_equal(json_integer_value(json_object_get(b, "bans")), 1);
        v6 += strstr(json_string_value(json_object_get(b, "source")), "/64") != NULL;
    }
    assert_int_equal(v6, 1000);
    json_decref(doc);
    bantable_t *back = bantable_new(&o);
    assert_int_equal(bantable_load(back, path, 1040, err, sizeof err), 3000);
    assert_true(fabs(banned(back, "2001:db8:3::9", 1040) - (1000 + 3 * 0.01 + 100 - 1040)) < 1e-6);
    bantable_destroy(&back);
    bantable_destroy(&t);
}

static void test_bans_survive_a_save_and_bad_files_are_refused(void **state)
{
    (void)state;
    char path[sizeof dir + 32], err[512];
    snprintf(path, sizeof path, "%s/bans.json", dir);
    ban_opts_t o = ban_opts(1, 10, 100, 1000);
    bantable_t *t = bantable_new(&o);
    assert_int_equal(bantable_load(t, path, 0, err, sizeof err), 0); /* no file yet */
    assert_true(strike(t, "198.51.100.1", 1000) == 100);
    assert_true(strike(t, "198.51.100.1", 1101) == 200); /* a second ban */
    assert_true(strike(t, "2001:db8:5::1", 1200) == 100);
    assert_true(strike(t, "198.51.100.2", 0) == 100); /* ended at 100, forgotten at 1100 */
    assert_true(bantable_dirty(t));
    assert_int_equal(bantable_save(t, path, 1250, err, sizeof err), 0);
    assert_false(bantable_dirty(t));
    bantable_destroy(&t);

    t = bantable_new(&o);
    assert_int_equal(bantable_load(t, path, 1260, err, sizeof err), 2);
    assert_true(fabs(banned(t, "198.51.100.1", 1260) - 41) < 1e-6);
    assert_true(fabs(banned(t, "2001:db8:5::42", 1260) - 40) < 1e-6);
    assert_true(banned(t, "198.51.100.2", 1260) == 0);
    assert_true(strike(t, "198.51.100.1", 1400) == 400); /* its third ban */
    json_t *list = bantable_list(t, 1400);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "source")),
                        "198.51.100.1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "bans")), 3);
    json_decref(list);

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"{\"version\": 1, \"bans\": [", "bans.json:1:"},
        {"[1, 2]", "not a ban file"},
        {"{\"version\": 2, \"bans\": []}", "another version"},
        {"{\"version\": 1, \"bans\": {}}", "\"bans\" is not an array"},
        {"{\"version\": 1, \"bans\": [7]}", "ban 1: a ban is not an object"},
        {"{\"version\": 1, \"bans\": [{\"source\": \"10.0.0.300\", \"until\": 5, \"bans\": 1}]}",
         "ban 1: \"source\" is not an address"},
        {"{\"version\": 1, \"bans\": [{\"source\": \"10.0.0.3\", \"until\": \"soon\", \"bans\": "
         "1}]}",
         "ban 1: \"until\" is not a time"},
        {"{\"version\": 1, \"bans\": [{\"source\": \"10.0.0.3\", \"until\": 5, \"bans\": 0}]}",
         "ban 1: \"bans\" is not a count"},
        {"\x01\x02garbage", "bans.json:1:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(path, bad[i].text);
        err[0] = 0;
        assert_int_equal(bantable_load(t, path, 1400, err, sizeof err), -1);
        if (!strstr(err, bad[i].why) || !strstr(err, path))
            fail_msg("case %zu: %s", i, err);
        assert_true(banned(t, "198.51.100.1", 1400) > 0); /* the table as it was */
    }
    bantable_destroy(&t);
    unlink(path);
}

/* HEP senders are kept apart by address (not port), listed first heard first; past the 64
 * kept a new one is counted as untracked, until one of the 64 has been silent a day, whose
 * place it then takes; one silent a day is no longer listed. */
/* Two senders' copies of one message: the later one, from another sender within a second, is
 * a copy; the same bytes again from the same sender (a retransmission, a flood of identical
 * packets) are not, nor from another sender later, nor between other endpoints. */
static void test_hep_copies_from_another_sender_are_dropped(void **state)
{
    (void)state;
    edge_senders_t *s = edge_senders_new();
    endpoint_t a = ep("192.0.2.1"), b = ep("192.0.2.2");
    static const char text[] = "OPTIONS sip:u@example.net SIP/2.0\r\nCall-ID: x\r\n\r\n";
    msg_t m = {0};
    m.src = ep("10.0.0.5");
    m.src.port = 5060;
    m.dst = ep("10.0.0.1");
    m.dst.port = 5060;
    m.data = (const uint8_t *)text;
    m.len = sizeof text - 1;
    assert_false(edge_senders_copy(s, &a, &m, 1000.0));
    assert_true(edge_senders_copy(s, &b, &m, 1000.004));  /* b's copy of a's */
    assert_false(edge_senders_copy(s, &a, &m, 1000.5));   /* a retransmission, from a */
    assert_true(edge_senders_copy(s, &b, &m, 1000.504));  /* and b's copy of it */
    assert_false(edge_senders_copy(s, &b, &m, 1003.0));   /* later: a message of its own */
    m.src.port = 5062;                                    /* another sender's socket */
    assert_false(edge_senders_copy(s, &a, &m, 1003.001)); /* other endpoints */
    assert_int_equal(edge_senders_copies(s), 2);
    /* a copy is found though 5,000 other messages came between: 2,000 a second from a, the
     * copy from b a quarter of a second behind */
    static char texts[5001][64];
    msg_t many[5001];
    for (int i = 0; i <= 5000; i++) {
        many[i] = m;
        many[i].len =
            (size_t)snprintf(texts[i], sizeof texts[i], "MESSAGE sip:u SIP/2.0\r\nX: %d", i);
        many[i].data = (const uint8_t *)texts[i];
    }
    for (int i = 0; i <= 5000; i++) {
        assert_false(edge_senders_copy(s, &a, &many[i], 2000 + i * 0.0005));
        if (i >= 500)
            assert_true(edge_senders_copy(s, &b, &many[i - 500], 2000 + i * 0.0005));
    }
    assert_int_equal(edge_senders_copies(s), 2 + 4501);
    assert_false(edge_senders_copy(NULL, &a, &m, 1)); /* no table: nothing dropped */
    edge_senders_destroy(&s);
}

static void test_hep_senders_are_counted_by_address_and_bounded(void **state)
{
    (void)state;
    edge_senders_t *s = edge_senders_new();
    static edge_sender_t list[EDGE_SENDERS_MAX];
    endpoint_t a = ep("192.0.2.1"), b = ep("2001:db8::5");
    a.port = 5060;
    edge_senders_count(s, &a, 1000, false);
    edge_senders_count(s, &b, 1001, false);
    a.port = 5061; /* another of the proxy's sockets */
    edge_senders_count(s, &a, 1002, true);
    assert_int_equal(edge_senders_list(s, list, 1003), 2);
    assert_int_equal(list[0].addr.family, 4);
    assert_int_equal(list[0].addr.port, 0);
    assert_int_equal(list[0].messages, 2);
    assert_int_equal(list[0].responses, 1); /* its answers counted apart */
    assert_true(list[0].last == 1002);
    assert_int_equal(list[1].messages, 1);
    assert_int_equal(list[1].responses, 0);
    char text[64];
    for (int i = 0; i < EDGE_SENDERS_MAX; i++) { /* 62 more fill the table, 2 find no room */
        snprintf(text, sizeof text, "10.0.0.%d", i + 1);
        endpoint_t e = ep(text);
        edge_senders_count(s, &e, 2000, false);
    }
    assert_int_equal(edge_senders_list(s, list, 2000), EDGE_SENDERS_MAX);
    assert_int_equal(edge_senders_untracked(s), 2);
    endpoint_t late = ep("198.51.100.9");
    double day = EDGE_SENDERS_FORGET_SECONDS;
    edge_senders_count(s, &late, 1001 + day - 1, false);
    assert_int_equal(edge_senders_untracked(s), 3);  /* none silent a day yet */
    edge_senders_count(s, &late, 1001 + day, false); /* 2001:db8::5 is: its place */
    size_t n = edge_senders_list(s, list, 1001 + day);
    assert_int_equal(n, EDGE_SENDERS_MAX);
    bool found = false, old = false;
    for (size_t i = 0; i < n; i++) {
        msg_address_format(&list[i].addr, text);
        assert_string_not_equal(text, "2001:db8::5");
        found |= !strcmp(text, "198.51.100.9") && list[i].messages == 1;
        old |= !strcmp(text, "192.0.2.1");
    }
    assert_true(found && old);
    assert_int_equal(edge_senders_list(s, list, 1002 + day), EDGE_SENDERS_MAX - 1); /* 192.0.2.1
                                                                                     * silent */
    /* forgotten (a proxy taken out of service): not listed, until it sends again */
    endpoint_t e1 = ep("10.0.0.1");
    assert_true(edge_senders_forget(s, &e1));
    assert_false(edge_senders_forget(s, &e1));
    assert_false(edge_senders_forget(s, &b)); /* not in the table any more */
    n = edge_senders_list(s, list, 2001);
    for (size_t i = 0; i < n; i++)
        assert_false(list[i].addr.family == 4 && !memcmp(list[i].addr.addr, e1.addr, 4));
    edge_senders_count(s, &e1, 2002, false);
    n = edge_senders_list(s, list, 2002);
    found = false;
    for (size_t i = 0; i < n; i++)
        found |= list[i].addr.family == 4 && !memcmp(list[i].addr.addr, e1.addr, 4) &&
                 list[i].messages == 2;
    assert_true(found);
    assert_int_equal(edge_senders_untracked(NULL), 0);
    assert_false(edge_senders_forget(NULL, &a));
    edge_senders_count(NULL, &a, 1, false); /* no table: nothing to do */
    edge_senders_destroy(&s);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unacked_reports_survive_a_reopen_and_acked_ones_do_not,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_torn_frame_is_cut_and_the_rest_kept, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(test_bound_drops_the_oldest_and_counts_them, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(test_full_disk_is_an_error_not_a_loss, make_dir,
                                        remove_dir),
        cmocka_unit_test(test_unwritable_spool_directory_is_refused),
        cmocka_unit_test(test_config_types_ranges_and_names),
        cmocka_unit_test(test_config_live_settings_are_taken_and_the_rest_named),
        cmocka_unit_test(test_signature_score_is_the_linear_score_over_the_embedding),
        cmocka_unit_test(test_bad_signature_files_are_refused_with_the_reason),
        cmocka_unit_test(test_wire_frames_round_trip_and_reject_malformed),
        cmocka_unit_test(test_allowlist_matches_addresses_and_prefixes),
        cmocka_unit_test(test_allowlist_errors_name_the_line),
        cmocka_unit_test(test_allowlist_agrees_with_a_scan),
        cmocka_unit_test(test_allowlist_entries_and_union),
        cmocka_unit_test(test_allowlist_entry_valid),
        cmocka_unit_test_setup_teardown(test_a_silent_subscription_is_made_anew, make_dir,
                                        remove_dir),
        cmocka_unit_test(test_ban_after_strikes_within_the_window),
        cmocka_unit_test_setup_teardown(test_many_bans_saved_one_a_line_load_back_whole, make_dir,
                                        remove_dir),
        cmocka_unit_test(test_ban_opts_change_for_later_strikes),
        cmocka_unit_test(test_ban_escalates_to_the_cap_and_is_forgotten),
        cmocka_unit_test_setup_teardown(test_ban_domain_list_is_imposed_and_replaced, make_dir,
                                        remove_dir),
        cmocka_unit_test(test_ban_ipv6_by_prefix_and_mapped_ipv4),
        cmocka_unit_test_setup_teardown(test_ban_prefixes_of_other_lengths_are_kept, make_dir,
                                        remove_dir),
        cmocka_unit_test(test_ban_table_is_bounded),
        cmocka_unit_test(test_ban_capacity_changes_keep_the_longest_bans),
        cmocka_unit_test(test_ban_table_agrees_with_a_plain_model),
        cmocka_unit_test(test_ban_lift),
        cmocka_unit_test(test_log_limit_names_a_burst_and_sums_up_the_rest),
        cmocka_unit_test(test_hep_senders_are_counted_by_address_and_bounded),
        cmocka_unit_test(test_hep_copies_from_another_sender_are_dropped),
        cmocka_unit_test(test_bearer_token_must_match_exactly),
        cmocka_unit_test_setup_teardown(test_bans_survive_a_save_and_bad_files_are_refused,
                                        make_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
