/* Tests of overlay/store and the collector's report checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "collector.h"
#include "store.h"

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
    char wal[80], shm[80];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_checks),
        cmocka_unit_test(test_store_keeps_each_report_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
