/* Tests of overlay/store and the collector's report checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "collector.h"
#include "report.h"
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
                     "NULL, doc TEXT NOT NULL);",
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_checks),
        cmocka_unit_test(test_raw_messages_survive_the_report),
        cmocka_unit_test(test_report_signature_sequence),
        cmocka_unit_test(test_store_keeps_each_report_once),
        cmocka_unit_test(test_retention_prunes_old_placed_reports),
        cmocka_unit_test(test_clean_sample_is_bounded_per_edge),
        cmocka_unit_test(test_an_old_store_is_migrated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
