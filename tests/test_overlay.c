/* Tests of overlay/store and the collector's report checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include <sqlite3.h>

#include "collector.h"
#include "embed.h"
#include "model.h"
#include "monotime.h"
#include "report.h"
#include "sigman.h"
#include "store.h"

static void remove_db(const char *path)
{
    char wal[96], shm[96];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);
}

static const char *good =
    "{\"edge\":\"e1\",\"seq\":7,\"input\":\"hep\",\"index\":3,\"ts\":1.5,\"src\":\"1.2.3.4:5060\","
    "\"dst\":null,\"transport\":\"udp\",\"call_id\":\"x\",\"parse_ok\":true,\"verdict\":"
    "\"anomaly\","
    "\"detector\":[\"local\"],\"global\":1,\"local\":null,\"threshold_global\":2,"
    "\"threshold_local\":0.5,\"signatures\":[],\"reported_at\":2.5,\"raw\":\"A\\u0000B\","
    "\"a_future_field\":{}}";

static void test_report_checks(void **state)
{
    (void)state;
    int reason;
    assert_null(collector_check_report(good, strlen(good), "e1", 7, &reason));
    /* the frame's edge and sequence must be the report's */
    assert_non_null(collector_check_report(good, strlen(good), "e2", 7, &reason));
    assert_int_equal(reason, REJ_IDENTITY);
    assert_non_null(collector_check_report(good, strlen(good), "e1", 8, &reason));
    assert_int_equal(reason, REJ_FIELDS);
    const char *bad[][2] = {
        {"{\"edge\":", "malformed"},
        {"[1,2]", "malformed"},
        {"{\"edge\":\"e1\",\"edge\":\"e1\"}", "malformed"}, /* duplicate keys */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_non_null(strstr(
            collector_check_report(bad[i][0], strlen(bad[i][0]), "e1", 7, &reason), bad[i][1]));
        assert_int_equal(reason, REJ_JSON);
    }
    /* each required field missing, then with the wrong type */
    const char *fields[] = {"\"seq\":7",         "\"ts\":1.5",
                            "\"parse_ok\":true", "\"detector\":[\"local\"]",
                            "\"local\":null",    "\"reported_at\":2.5"};
    const char *wrong[] = {"\"seq\":\"7\"",          "\"ts\":\"now\"",     "\"parse_ok\":1",
                           "\"detector\":\"local\"", "\"local\":\"high\"", "\"reported_at\":[]"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char buf[1024];
        const char *at = strstr(good, fields[i]);
        assert_non_null(at);
        size_t pre = (size_t)(at - good), fl = strlen(fields[i]);
        snprintf(buf, sizeof buf, "%.*s\"renamed_%zu\":0%s", (int)pre, good, i, at + fl);
        assert_non_null(collector_check_report(buf, strlen(buf), "e1", 7, &reason));
        assert_int_equal(reason, REJ_FIELDS);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)pre, good, wrong[i], at + fl);
        const char *why = collector_check_report(buf, strlen(buf), "e1", 7, &reason);
        assert_non_null(why);
        assert_int_equal(reason, REJ_FIELDS);
    }
}

/* The optional signature_sequence is read when it is a whole number, refused otherwise. */
static void test_report_signature_sequence(void **state)
{
    (void)state;
    int reason;
    int64_t seq;
    char j[1024];
    assert_null(collector_check_report_ex(good, strlen(good), "e1", 7, &reason, &seq));
    assert_int_equal(seq, -1);
    snprintf(j, sizeof j, "%.*s,\"signature_sequence\":12}", (int)strlen(good) - 1, good);
    assert_null(collector_check_report_ex(j, strlen(j), "e1", 7, &reason, &seq));
    assert_int_equal(seq, 12);
    snprintf(j, sizeof j, "%.*s,\"signature_sequence\":\"12\"}", (int)strlen(good) - 1, good);
    assert_non_null(strstr(collector_check_report_ex(j, strlen(j), "e1", 7, &reason, &seq),
                           "signature_sequence"));
    assert_int_equal(reason, REJ_FIELDS);
}

static void test_store_keeps_each_report_once(void **state)
{
    (void)state;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-store-%d.db", (int)getpid());
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_report(s, "e1", 1, 10, "{}", 2), 1);
    assert_int_equal(store_report(s, "e1", 1, 11, "{}", 2), 0); /* again: not stored twice */
    assert_int_equal(store_report(s, "e2", 1, 12, "{}", 2), 1); /* another edge's 1 */
    assert_int_equal(store_rejected(s, "e1", 9, 13, "why", "x", 1), 0);
    assert_int_equal(store_commit(s), 0);
    /* a rolled-back batch leaves nothing */
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_report(s, "e1", 2, 14, "{}", 2), 1);
    store_rollback(s);
    assert_int_equal(store_count_reports(s), 2);
    assert_int_equal(store_count_rejected(s), 1);
    store_close(&s);
    /* durable: reopened, the same */
    s = store_open(path, err, sizeof err);
    assert_int_equal(store_count_reports(s), 2);
    store_close(&s);
    assert_null(store_open("/proc/no/such.db", err, sizeof err));
    assert_non_null(strstr(err, "/proc/no/such.db"));
    remove_db(path);
}

/* The domain's bans: a new source or a later end changes the list (what moves the set on), a
 * shorter ban of a banned source only counts; the running ones are listed longest first and
 * counted; a lift deletes one and bumps the sequence; retention forgets long-ended ones. */
static void test_store_keeps_the_domains_bans(void **state)
{
    (void)state;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-bans-%d.db", (int)getpid());
    remove_db(path);
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_put_ban(s, "203.0.113.9", 700, "e1", 100), 1);
    assert_int_equal(store_put_ban(s, "203.0.113.9", 650, "e2", 110), 0); /* ends sooner */
    assert_int_equal(store_put_ban(s, "2001:db8:1:2::/64", 400, "e2", 120), 1);
    assert_int_equal(store_put_ban(s, "203.0.113.9", 900, "e2", 130), 1); /* ends later */
    assert_int_equal(store_put_ban(s, "198.51.100.1", 150, "e1", 140), 1);
    assert_int_equal(store_commit(s), 0);
    json_t *list = store_list_bans(s, 200, 0); /* 198.51.100.1's ended at 150 */
    assert_int_equal(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(first, "source")), "203.0.113.9");
    assert_true(json_number_value(json_object_get(first, "until")) == 900);
    assert_string_equal(json_string_value(json_object_get(first, "edge")), "e2");
    assert_int_equal(json_integer_value(json_object_get(first, "count")), 3);
    assert_true(json_number_value(json_object_get(first, "first")) == 100);
    json_decref(list);
    list = store_list_bans(s, 200, 1); /* at most one: the longest */
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(store_count_bans(s, 200), 2);
    uint64_t seq = store_sequence(s);
    assert_int_equal(store_delete_ban(s, "203.0.113.9"), 1);
    assert_int_equal(store_sequence(s), seq + 1);
    assert_int_equal(store_delete_ban(s, "203.0.113.9"), 0); /* gone: unknown */
    assert_int_equal(store_sequence(s), seq + 1);
    assert_int_equal(store_count_bans(s, 200), 1);
    long refused = 0;
    assert_true(store_prune(s, 500, 0, 100, &refused) >= 0); /* the /64's ended at 400 */
    list = store_list_bans(s, 0, 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    store_close(&s);
    remove_db(path);
}

/* Counts the reports store_each_report_after hands on after number *after. */
static int count_one(void *ctx, const char *json, size_t len, double received)
{
    (void)json;
    (void)len;
    (void)received;
    (*(int *)ctx)++;
    return 0;
}

/* Retention deletes the oldest reports received before the cut that the clustering has read,
 * a batch at a time, never the newest one, and refused reports by age alone; numbers go on
 * rising after it, so the clustering still reads what comes next. */
static void test_retention_prunes_old_placed_reports(void **state)
{
    (void)state;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-prune-%d.db", (int)getpid());
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_begin(s), 0);
    for (int i = 1; i <= 10; i++) /* numbered 1..10, received at 100..1000 */
        assert_int_equal(store_report(s, "e1", (uint64_t)i, 100.0 * i, "{}", 2), 1);
    for (int i = 1; i <= 4; i++)
        assert_int_equal(store_rejected(s, "e1", 100 + (uint64_t)i, 100.0 * i, "why", "x", 1), 0);
    assert_int_equal(store_commit(s), 0);
    long rejected = 0;
    /* received before 650: numbers 1-6; placed up to 4 only, in batches of 3 */
    assert_int_equal(store_prune(s, 650, 4, 3, &rejected), 3);
    assert_int_equal(rejected, 3);
    assert_int_equal(store_prune(s, 650, 4, 3, &rejected), 1); /* 4; 5 and 6 not placed yet */
    assert_int_equal(rejected, 4);
    assert_int_equal(store_prune(s, 650, 4, 3, &rejected), 0);
    assert_int_equal(store_count_reports(s), 6);
    assert_int_equal(store_count_rejected(s), 0);
    /* everything old and placed: the newest (10) stays */
    assert_int_equal(store_prune(s, 1e9, 10, 100, &rejected), 5);
    assert_int_equal(store_count_reports(s), 1);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_report(s, "e1", 11, 1100, "{}", 2), 1);
    assert_int_equal(store_commit(s), 0);
    int64_t after = 10; /* what the clustering had read */
    int got = 0;
    assert_int_equal(store_each_report_after(s, &after, 0, count_one, &got), 1);
    assert_int_equal(got, 1);
    assert_int_equal(after, 11);
    store_close(&s);
    remove_db(path);
}

/* Each edge keeps at most `keep` clean samples, the newest; the table is pruned every 256. */
static void test_clean_sample_is_bounded_per_edge(void **state)
{
    (void)state;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-clean-%d.db", (int)getpid());
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_begin(s), 0);
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(store_clean(s, "e2", i, 1, "{}", 2, 100), 1);
    for (uint64_t i = 1; i <= 1014; i++) /* the 1,024th sample overall prunes */
        assert_int_equal(store_clean(s, "e1", i, 1, "{}", 2, 100), 1);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_count_clean(s), 110);
    store_close(&s);
    remove_db(path);
}

/* A store made before reports were numbered and signatures versioned opens with its reports in
 * arrival order; anomalies list by edge and page on. */
static int collect(void *ctx, const char *json, size_t len, double received)
{
    (void)received;
    strncat(ctx, json, len);
    return 0;
}

static void test_an_old_store_is_migrated(void **state)
{
    (void)state;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-old-%d.db", (int)getpid());
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE reports (edge TEXT NOT NULL, seq INTEGER NOT NULL, received "
                     "REAL NOT NULL, json TEXT NOT NULL, PRIMARY KEY (edge, seq)) WITHOUT ROWID;"
                     "INSERT INTO reports VALUES ('b', 1, 30, 'C'), ('a', 1, 10, 'A'), "
                     "('a', 2, 20, 'B');"
                     "CREATE TABLE signatures (id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, "
                     "state TEXT NOT NULL, reason TEXT, created REAL NOT NULL, updated REAL NOT "
                     "NULL, doc TEXT NOT NULL);"
                     "CREATE TABLE clusters (id INTEGER PRIMARY KEY CHECK (id = 1), after "
                     "INTEGER NOT NULL, unbuilt INTEGER NOT NULL, saved REAL NOT NULL, state "
                     "BLOB NOT NULL);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_count_reports(s), 3);
    char seen[16] = "";
    int64_t after = 0;
    assert_int_equal(store_each_report_after(s, &after, 0, collect, seen), 3);
    assert_string_equal(seen, "ABC"); /* by arrival */
    assert_int_equal(store_each_report_after(s, &after, 0, collect, seen), 0);
    assert_int_equal(store_add_signature(s, "sig-1", "h1", "pending", 1, "{}", "a/1", 2), 1);
    assert_int_equal(store_set_state(s, "sig-1", "pending", "active", NULL, 3), 0);
    store_signature_stats_t ss;
    assert_int_equal(store_signature_stats(s, &ss), 0); /* the activation column is there */
    assert_int_equal(ss.by_state[1], 1);
    json_t *latest = store_cluster_signature(s, "a/1");
    assert_non_null(latest);
    assert_int_equal(json_integer_value(json_object_get(latest, "version")), 2);
    json_decref(latest);
    assert_int_equal(store_report(s, "a", 3, 40, "{\"x\":1}", 7), 1);
    json_t *page = store_list_reports(s, "a", 0, 0, 2);
    assert_int_equal(json_array_size(page), 2);
    int64_t next = json_integer_value(json_object_get(json_array_get(page, 1), "n"));
    json_decref(page);
    page = store_list_reports(s, "a", 0, next, 10);
    assert_int_equal(json_array_size(page), 1);
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(json_array_get(page, 0), "report"), "x")),
                     1);
    json_decref(page);
    page = store_list_reports(s, NULL, 25, 0, 10); /* received since 25 */
    assert_int_equal(json_array_size(page), 2);
    json_decref(page);
    /* saved clusters from before they had notes gain the column */
    assert_int_equal(store_save_clusters(s, 3, 0, 1, "x", 1, "{}"), 0);
    int64_t saved_after = 0;
    uint64_t unbuilt = 0;
    uint8_t *blob = NULL;
    char *notes = NULL;
    size_t len = 0;
    assert_int_equal(store_load_clusters(s, &saved_after, &unbuilt, &blob, &len, &notes), 1);
    assert_string_equal(notes, "{}");
    free(blob);
    free(notes);
    store_close(&s);
    remove_db(path);
}

/* The edge writes a message's bytes as a report's "raw" string and the overlay turns the
 * string back into bytes: every byte value, UTF-8 text (an e-acute is C3 A9, which must not
 * come back as the one byte E9), bytes that are not UTF-8, and NUL, through JSON text. */
static void test_raw_messages_survive_the_report(void **state)
{
    (void)state;
    uint8_t msg[256 + 64];
    size_t n = 0;
    for (int b = 0; b < 256; b++)
        msg[n++] = (uint8_t)b;
    static const char text[] =
        "From: \"Jos\xc3\xa9 \xe2\x82\xac\xf0\x9f\x93\x9e\" <sip:j@x>\xc3(\xff";
    memcpy(msg + n, text, sizeof text - 1);
    n += sizeof text - 1;
    json_t *o = json_object();
    json_object_set_new(o, "raw", report_raw_string(msg, n));
    char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII); /* as report_write_line */
    json_decref(o);
    json_t *back = json_loads(line, JSON_ALLOW_NUL, NULL);
    free(line);
    json_t *raw = json_object_get(back, "raw");
    assert_true(json_is_string(raw));
    uint8_t out[2 * sizeof msg];
    size_t got = report_raw_bytes(json_string_value(raw), json_string_length(raw), out);
    assert_int_equal(got, n);
    assert_memory_equal(out, msg, n);
    json_decref(back);
}

/* ---- the clustering's saved state, through sigman and the store ---- */

static void normal_message(int i, char *msg, size_t cap)
{
    snprintf(msg, cap,
             "REGISTER sip:example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.%d:5060;branch=z9hG4bK%d"
             "\r\nFrom: <sip:user%d@example.net>;tag=%d\r\nTo: <sip:user%d@example.net>\r\n"
             "Call-ID: %d@10.0.0.%d\r\nCSeq: %d REGISTER\r\nContact: <sip:user%d@10.0.0.%d>\r\n"
             "Expires: 3600\r\nContent-Length: 0\r\n\r\n",
             i % 200, i * 7919, i % 50, i * 31, i % 50, i * 17, i % 200, i % 9 + 1, i % 50,
             i % 200);
}

/* A model of normal REGISTERs, written to path: sigman needs one for its embedding. */
static void write_model(const char *path)
{
    model_opts_t o;
    model_opts_default(&o);
    model_builder_t *b = model_builder_new(&o);
    assert_non_null(b);
    embed_t *e = embed_new(&o.embed);
    sparse_t *v = sparse_new();
    for (int i = 0; i < 200; i++) {
        char msg[512];
        normal_message(i, msg, sizeof msg);
        assert_int_equal(embed_message(e, (const uint8_t *)msg, strlen(msg), v), 0);
        assert_int_equal(model_builder_add(b, v, i % 5 == 0), 0);
    }
    model_stats_t st;
    char err[256];
    model_t *m = model_builder_finish(b, &st, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    model_builder_destroy(&b);
    sparse_destroy(&v);
    embed_destroy(&e);
}

/* Stores the scanner's reports number from..to-1 of edge e1, received at `received`. */
static void store_scans(store_t *s, int from, int to, double received)
{
    assert_int_equal(store_begin(s), 0);
    for (int i = from; i < to; i++) {
        char msg[400], json[800];
        snprintf(msg, sizeof msg,
                 "OPTIONS sip:%d@example.net SIP/2.0\\r\\nVia: SIP/2.0/UDP 203.0.113.5:5070;"
                 "branch=z9hG4bK-scan%d\\r\\nUser-Agent: friendly-scanner\\r\\nCall-ID: %d\\r\\n"
                 "CSeq: 1 OPTIONS\\r\\n%s\\r\\n",
                 100 + i, i, i * 13, received > 5000 ? "Max-Forwards: 70\\r\\n" : "");
        int n = snprintf(json, sizeof json, "{\"edge\":\"e1\",\"seq\":%d,\"ts\":%d,\"raw\":\"%s\"}",
                         i, i, msg);
        assert_int_equal(store_report(s, "e1", (uint64_t)i, received, json, (size_t)n), 1);
    }
    for (int i = from; i < to; i++) { /* the clean sample: normal messages the edge saw */
        char msg[512], json[1200];
        normal_message(1000 + i, msg, sizeof msg);
        json_t *o = json_pack("{s:s, s:i, s:s}", "edge", "e1", "seq", 100000 + i, "raw", msg);
        char *text = json_dumps(o, JSON_COMPACT);
        snprintf(json, sizeof json, "%s", text);
        assert_int_equal(
            store_clean(s, "e1", 100000 + (uint64_t)i, received, json, strlen(json), 1000), 1);
        free(text);
        json_decref(o);
    }
    assert_int_equal(store_commit(s), 0);
}

/* The cluster key of the newest signature, and its version. */
static void newest_signature(store_t *s, char *cluster, size_t cap, int *version)
{
    json_t *list = store_list_signatures(s, NULL);
    assert_true(json_array_size(list) > 0);
    json_t *sig = json_object_get(json_array_get(list, json_array_size(list) - 1), "signature");
    snprintf(cluster, cap, "%s",
             json_string_value(json_object_get(json_object_get(sig, "cluster"), "key")));
    *version = (int)json_integer_value(json_object_get(sig, "version"));
    json_decref(list);
}

/* After retention deleted the reports that founded a cluster, a restarted overlay resumes the
 * saved clusters: the grown cluster's next signature is version 2 of the same cluster, and
 * only the reports after the saved state are read. Without the saved state (a store where the
 * state row is gone), the same store names the cluster after its oldest report left. */
static void test_saved_clusters_keep_their_names_past_retention(void **state)
{
    (void)state;
    char path[64], model[64], err[600];
    snprintf(path, sizeof path, "/tmp/sipguard-resume-%d.db", (int)getpid());
    snprintf(model, sizeof model, "/tmp/sipguard-resume-%d.model", (int)getpid());
    write_model(model);
    sigman_opts_t o;
    sigman_opts_default(&o);
    snprintf(o.model, sizeof o.model, "%s", model);
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    store_scans(s, 1, 21, 1000); /* old: founded the cluster */
    sigman_t *sm = sigman_new(&o, err, sizeof err);
    assert_non_null(sm);
    size_t clusters = 0;
    assert_int_equal(sigman_resume(sm, s, &clusters, err, sizeof err), 0); /* none saved */
    assert_true(sigman_build(sm, s, 5000, err, sizeof err) >= 1);
    char first[64], later[64];
    int version;
    newest_signature(s, first, sizeof first, &version);
    assert_string_equal(first, "e1/1");
    size_t bytes = 0;
    assert_int_equal(sigman_save(sm, s, 5000, &bytes, err, sizeof err), 0);
    assert_true(bytes > 20 * 100);
    assert_int_equal(sigman_saved(sm), 20);
    /* newer, with a header more (so the grown cluster's signature changes); placed but not
     * saved when the overlay stops */
    store_scans(s, 21, 41, 9000);
    assert_int_equal(sigman_ingest(sm, s, 0), 20);
    long rejected = 0;
    /* retention deletes the old reports the saved state holds: 1-20, the cluster's founders */
    assert_int_equal(store_prune(s, 5000, sigman_saved(sm), 1000, &rejected), 20);
    size_t live = sigman_clusters(sm);
    sigman_destroy(&sm);

    sm = sigman_new(&o, err, sizeof err);
    assert_int_equal(sigman_resume(sm, s, &clusters, err, sizeof err), 1);
    assert_int_equal(clusters, live);
    /* the clusters' last build results came back with them */
    json_t *list = sigman_list_clusters(sm, s, 1, 10);
    json_t *first_cluster = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(first_cluster, "key")), "e1/1");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(first_cluster, "last_build"), "verification"),
            "result")),
        "passed");
    json_decref(list);
    assert_int_equal(sigman_ingest(sm, s, 0), 20); /* 21-40: after the saved state only */
    assert_int_equal(sigman_build(sm, s, 9500, err, sizeof err), 1);
    newest_signature(s, later, sizeof later, &version);
    assert_string_equal(later, "e1/1");
    assert_int_equal(version, 2);
    sigman_destroy(&sm);

    /* the same store without the saved state: the cluster is named after report 21 */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM clusters", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    sm = sigman_new(&o, err, sizeof err);
    assert_int_equal(sigman_resume(sm, s, &clusters, err, sizeof err), 0);
    assert_true(sigman_build(sm, s, 9900, err, sizeof err) >= 1);
    newest_signature(s, later, sizeof later, &version);
    assert_string_equal(later, "e1/21");
    assert_int_equal(version, 1);
    sigman_destroy(&sm);

    /* a corrupt state is refused with the reason, and the clustering starts afresh */
    assert_int_equal(store_save_clusters(s, 40, 0, 1, "junk", 4, NULL), 0);
    sm = sigman_new(&o, err, sizeof err);
    assert_int_equal(sigman_resume(sm, s, &clusters, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(sigman_ingest(sm, s, 0), 20);
    sigman_destroy(&sm);
    store_close(&s);
    remove_db(path);
    unlink(model);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A save that fails (a file size limit makes the write fail as a full disk would) leaves the
 * state saved before it, and says why. */
static void test_a_failed_save_keeps_the_last_state(void **state)
{
    (void)state;
    char path[64], wal[80], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-full-%d.db", (int)getpid());
    snprintf(wal, sizeof wal, "%s-wal", path);
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(store_save_clusters(s, 5, 2, 1, "abc", 3, "{\"n\":1}"), 0);
    size_t big = 8u << 20;
    uint8_t *blob = calloc(1, big);
    assert_non_null(blob);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    off_t most = file_size(path) > file_size(wal) ? file_size(path) : file_size(wal);
    lim.rlim_cur = (rlim_t)most + 65536;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_int_equal(store_save_clusters(s, 9, 0, 2, blob, big, NULL), -1);
    assert_non_null(strstr(store_error(s), "disk")); /* "disk I/O error" here; "full" on ENOSPC */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    free(blob);
    int64_t after = 0;
    uint64_t unbuilt = 0;
    uint8_t *got = NULL;
    char *notes = NULL;
    size_t len = 0;
    assert_int_equal(store_load_clusters(s, &after, &unbuilt, &got, &len, &notes), 1);
    assert_string_equal(notes, "{\"n\":1}");
    free(notes);
    assert_int_equal(after, 5);
    assert_int_equal(unbuilt, 2);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "abc", 3);
    free(got);
    store_close(&s);
    remove_db(path);
}

/* Signatures by state, and the time from the founding report of each one's cluster to its
 * going active: set once, when it first goes active (approved or auto-approved), and kept
 * through expiry. */
static void test_signature_stats_time_detection_to_active(void **state)
{
    (void)state;
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/sipguard-sigstats-%d.db", (int)getpid());
    remove_db(path);
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    /* founded at 100: approved at 103 (3 s); active at once at 1000 (900 s); pending; one
     * without a first_seen (not counted) */
    assert_int_equal(
        store_add_signature(s, "sig-1", "h1", "pending", 101, "{\"first_seen\":100}", "a/1", 1), 1);
    assert_int_equal(
        store_add_signature(s, "sig-2", "h2", "active", 1000, "{\"first_seen\":100}", "a/2", 1), 1);
    assert_int_equal(
        store_add_signature(s, "sig-3", "h3", "pending", 50, "{\"first_seen\":40}", "a/3", 1), 1);
    assert_int_equal(store_add_signature(s, "sig-4", "h4", "active", 60, "{}", "a/4", 1), 1);
    assert_int_equal(store_set_state(s, "sig-1", "pending", "active", NULL, 103), 0);
    assert_int_equal(store_set_state(s, "sig-1", "active", "expired", "old", 5000), 0);
    /* the cluster's second version, active later: enforcement had begun with the first */
    assert_int_equal(
        store_add_signature(s, "sig-5", "h5", "active", 9000, "{\"first_seen\":100}", "a/1", 2), 1);
    store_edge_state(s, "e1", 10, 0);
    store_edge_state(s, "e2", 10, (int64_t)store_sequence(s));
    store_bump_sequence(s);
    store_signature_stats_t ss;
    assert_int_equal(store_signature_stats(s, &ss), 0);
    assert_int_equal(ss.by_state[0], 1); /* pending */
    assert_int_equal(ss.by_state[1], 3); /* active */
    assert_int_equal(ss.by_state[3], 1); /* expired */
    assert_int_equal(ss.to_active_count, 2);
    assert_true(fabs(ss.to_active_sum - 903) < 1e-9);
    assert_int_equal(ss.to_active[1], 1); /* 3 s: in (1, 5] */
    assert_int_equal(ss.to_active[5], 1); /* 900 s: in (300, 900] */
    assert_int_equal(ss.edges_behind, 2);
    store_close(&s);
    remove_db(path);
}

/* Sends standard error to path until stderr_restore(the returned descriptor). */
static int stderr_to(const char *path)
{
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static void stderr_restore(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static size_t count_in_file(const char *path, const char *needle, char *last_line, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) {
            n++;
            snprintf(last_line, cap, "%s", line);
        }
    fclose(f);
    return n;
}

/* A client whose key is not a configured edge is refused and named in the log: ten a minute,
 * the rest summed up, since an unknown client can retry as often as it likes. */
static void test_refused_clients_are_named_ten_a_minute_and_summed_up(void **state)
{
    (void)state;
    enum { CLIENTS = 25 };
    char path[64], log[64], err[256], pub[41], sec[41], epub[41], esec[41], said[512] = "";
    snprintf(path, sizeof path, "/tmp/sipguard-zap-%d.db", (int)getpid());
    snprintf(log, sizeof log, "/tmp/sipguard-zap-%d.log", (int)getpid());
    store_t *s = store_open(path, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_int_equal(zmq_curve_keypair(epub, esec), 0);
    edge_key_t edge = {.id = "e1"};
    memcpy(edge.key, epub, sizeof edge.key);
    void *z = zmq_ctx_new();
    collector_t *c =
        collector_new(z, "tcp://127.0.0.1:*", sec, &edge, 1, 65536, s, err, sizeof err);
    assert_non_null(c);
    int saved = stderr_to(log);
    void *client[CLIENTS];
    int zero = 0;
    for (int i = 0; i < CLIENTS; i++) {
        char cpub[41], csec[41];
        zmq_curve_keypair(cpub, csec);
        client[i] = zmq_socket(z, ZMQ_DEALER);
        zmq_setsockopt(client[i], ZMQ_CURVE_SERVERKEY, pub, 40);
        zmq_setsockopt(client[i], ZMQ_CURVE_PUBLICKEY, cpub, 40);
        zmq_setsockopt(client[i], ZMQ_CURVE_SECRETKEY, csec, 40);
        zmq_setsockopt(client[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_connect(client[i], collector_endpoint(c));
    }
    collector_stats_t st;
    double t0 = mono_now();
    do { /* bounded: 20 s */
        zmq_pollitem_t it = {collector_zap(c), 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 100);
        collector_on_zap(c);
        collector_tick(c);
        collector_stats(c, &st);
    } while (st.zap_denied < CLIENTS && mono_now() - t0 < 20);
    for (int i = 0; i < CLIENTS; i++)
        zmq_close(client[i]);
    collector_destroy(&c); /* sums up what it held */
    stderr_restore(saved);
    zmq_ctx_term(z);
    store_close(&s);
    remove_db(path);
    assert_int_equal(st.zap_denied, CLIENTS);
    assert_int_equal(count_in_file(log, "not a configured edge", said, sizeof said), 10);
    assert_int_equal(count_in_file(log, "more refused CURVE clients", said, sizeof said), 1);
    assert_non_null(strstr(said, "15 more refused CURVE clients in the last"));
    unlink(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_checks),
        cmocka_unit_test(test_raw_messages_survive_the_report),
        cmocka_unit_test(test_report_signature_sequence),
        cmocka_unit_test(test_store_keeps_each_report_once),
        cmocka_unit_test(test_store_keeps_the_domains_bans),
        cmocka_unit_test(test_retention_prunes_old_placed_reports),
        cmocka_unit_test(test_clean_sample_is_bounded_per_edge),
        cmocka_unit_test(test_an_old_store_is_migrated),
        cmocka_unit_test(test_saved_clusters_keep_their_names_past_retention),
        cmocka_unit_test(test_a_failed_save_keeps_the_last_state),
        cmocka_unit_test(test_signature_stats_time_detection_to_active),
        cmocka_unit_test(test_refused_clients_are_named_ten_a_minute_and_summed_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
