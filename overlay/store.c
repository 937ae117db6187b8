#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLEAN_PRUNE_EVERY 256 /* clean samples between prunes of the clean table */

struct store {
    sqlite3 *db;
    sqlite3_stmt *ins, *rej, *edge;
    unsigned clean_since_prune;
    char
        failure[256]; /* why the batch rolled back: the ROLLBACK itself replaces SQLite's message */
};

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS reports (n INTEGER PRIMARY KEY, edge TEXT NOT NULL, "
    "  seq INTEGER NOT NULL, received REAL NOT NULL, json TEXT NOT NULL, UNIQUE (edge, seq));"
    "CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY, edge TEXT, seq INTEGER, "
    "  received REAL NOT NULL, reason TEXT NOT NULL, data BLOB);"
    "CREATE TABLE IF NOT EXISTS edges (edge TEXT PRIMARY KEY, last_seen REAL NOT NULL, "
    "  reports INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS signatures (id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, "
    "  state TEXT NOT NULL, reason TEXT, created REAL NOT NULL, updated REAL NOT NULL, "
    "  doc TEXT NOT NULL, cluster TEXT, version INTEGER NOT NULL DEFAULT 1, activated REAL);"
    "CREATE TABLE IF NOT EXISTS clean (edge TEXT NOT NULL, seq INTEGER NOT NULL, "
    "  received REAL NOT NULL, json TEXT NOT NULL, PRIMARY KEY (edge, seq));"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS clusters (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "  after INTEGER NOT NULL, unbuilt INTEGER NOT NULL, saved REAL NOT NULL, "
    "  state BLOB NOT NULL, notes TEXT);"
    "CREATE TABLE IF NOT EXISTS allowlist (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "  text TEXT NOT NULL, updated REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bans (source TEXT PRIMARY KEY, until REAL NOT NULL, "
    "  edge TEXT NOT NULL, first REAL NOT NULL, updated REAL NOT NULL, count INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES ('sequence', 0), ('next_signature', 1);";

/* Databases made before reports were numbered in arrival order (the clustering reads them on
 * in that order) get the numbered table, their reports numbered by arrival time. */
static int number_reports(sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT n FROM reports LIMIT 0", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_finalize(st);
        return 0; /* numbered already */
    }
    return sqlite3_exec(db,
                        "BEGIN;"
                        "CREATE TABLE reports_numbered (n INTEGER PRIMARY KEY, edge TEXT NOT NULL, "
                        "  seq INTEGER NOT NULL, received REAL NOT NULL, json TEXT NOT NULL, "
                        "  UNIQUE (edge, seq));"
                        "INSERT INTO reports_numbered (edge, seq, received, json) "
                        "  SELECT edge, seq, received, json FROM reports ORDER BY received;"
                        "DROP TABLE reports;"
                        "ALTER TABLE reports_numbered RENAME TO reports;"
                        "COMMIT;",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

/* Databases made before signatures had clusters, versions and activation times, or before
 * the saved clusters had notes, gain the columns. */
static int migrate(sqlite3 *db)
{
    if (number_reports(db) != 0)
        return -1;
    static const char *const add[] = {
        "ALTER TABLE signatures ADD COLUMN cluster TEXT",
        "ALTER TABLE signatures ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE edges ADD COLUMN signature_sequence INTEGER",
        "ALTER TABLE clusters ADD COLUMN notes TEXT",
        "ALTER TABLE signatures ADD COLUMN activated REAL"};
    for (size_t i = 0; i < sizeof add / sizeof add[0]; i++) {
        char *msg = NULL;
        int rc = sqlite3_exec(db, add[i], NULL, NULL, &msg);
        bool present = msg && strstr(msg, "duplicate column");
        sqlite3_free(msg);
        if (rc != SQLITE_OK && !present)
            return -1;
    }
    return sqlite3_exec(db, "CREATE INDEX IF NOT EXISTS signatures_cluster ON signatures (cluster)",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

store_t *store_open(const char *path, char *err, size_t errlen)
{
    store_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char *msg = NULL;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK || migrate(s->db) != 0 ||
        sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO reports (edge, seq, received, json) "
                           "VALUES (?, ?, ?, ?)",
                           -1, &s->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO rejected (edge, seq, received, reason, data) "
                           "VALUES (?, ?, ?, ?, ?)",
                           -1, &s->rej, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO edges (edge, last_seen, reports) VALUES (?, ?, 1) "
                           "ON CONFLICT (edge) DO UPDATE SET last_seen = excluded.last_seen, "
                           "reports = reports + 1",
                           -1, &s->edge, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        store_close(&s);
        return NULL;
    }
    return s;
}

void store_close(store_t **self)
{
    store_t *s = *self;
    if (!s)
        return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->rej);
    sqlite3_finalize(s->edge);
    sqlite3_close(s->db);
    free(s);
    *self = NULL;
}

int store_begin(store_t *s)
{
    s->failure[0] = 0;
    return sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int store_report(store_t *s, const char *edge, uint64_t seq, double received, const char *json,
                 size_t len)
{
    sqlite3_reset(s->ins);
    sqlite3_bind_text(s->ins, 1, edge, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->ins, 2, (sqlite3_int64)seq);
    sqlite3_bind_double(s->ins, 3, received);
    sqlite3_bind_text(s->ins, 4, json, (int)len, SQLITE_TRANSIENT);
    if (sqlite3_step(s->ins) != SQLITE_DONE)
        return -1;
    int fresh = sqlite3_changes(s->db) > 0;
    if (fresh) {
        sqlite3_reset(s->edge);
        sqlite3_bind_text(s->edge, 1, edge, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(s->edge, 2, received);
        if (sqlite3_step(s->edge) != SQLITE_DONE)
            return -1;
    }
    return fresh;
}

int store_rejected(store_t *s, const char *edge, uint64_t seq, double received, const char *why,
                   const char *data, size_t len)
{
    sqlite3_reset(s->rej);
    sqlite3_bind_text(s->rej, 1, edge, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s->rej, 2, (sqlite3_int64)seq);
    sqlite3_bind_double(s->rej, 3, received);
    sqlite3_bind_text(s->rej, 4, why, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s->rej, 5, data, (int)(len > 65536 ? 65536 : len), SQLITE_TRANSIENT);
    return sqlite3_step(s->rej) == SQLITE_DONE ? 0 : -1;
}

int store_commit(store_t *s)
{
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    store_rollback(s);
    return -1;
}

void store_rollback(store_t *s)
{
    if (!s->failure[0])
        snprintf(s->failure, sizeof s->failure, "%s", sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static uint64_t count(store_t *s, const char *sql)
{
    sqlite3_stmt *st;
    uint64_t n = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

uint64_t store_count_reports(store_t *s)
{
    return count(s, "SELECT count(*) FROM reports");
}

uint64_t store_count_rejected(store_t *s)
{
    return count(s, "SELECT count(*) FROM rejected");
}

/* Runs sql with ?1 = before, ?2 = placed, ?3 = limit (numbered, so a statement may leave ?2
 * out); the rows it changed, or -1. */
static long delete_rows(store_t *s, const char *sql, double before, int64_t placed, size_t limit)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_double(st, 1, before);
    sqlite3_bind_int64(st, 2, placed);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? (long)sqlite3_changes(s->db) : -1;
}

long store_prune(store_t *s, double before, int64_t placed, size_t limit, long *rejected)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    long reports = delete_rows(s,
                               "DELETE FROM reports WHERE n IN (SELECT n FROM reports WHERE "
                               "received < ?1 AND n <= ?2 AND n < (SELECT max(n) FROM reports) "
                               "ORDER BY n LIMIT ?3)",
                               before, placed, limit);
    long refused = reports < 0 ? -1
                               : delete_rows(s,
                                             "DELETE FROM rejected WHERE id IN (SELECT id FROM "
                                             "rejected WHERE received < ?1 ORDER BY id LIMIT ?3)",
                                             before, placed, limit);
    /* bans that ended before the retention window are history too */
    if (refused >= 0 &&
        delete_rows(s, "DELETE FROM bans WHERE until < ?1", before, placed, limit) < 0)
        refused = -1;
    if (refused < 0 || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    *rejected += refused;
    return reports;
}

const char *store_error(store_t *s)
{
    if (!s->failure[0])
        return sqlite3_errmsg(s->db);
    /* once: a later error outside a batch is SQLite's own again */
    static _Thread_local char once[sizeof s->failure];
    memcpy(once, s->failure, sizeof once);
    s->failure[0] = 0;
    return once;
}

int store_each_report(store_t *s, int (*fn)(void *ctx, const char *json, size_t len), void *ctx)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT json FROM reports", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = fn(ctx, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    sqlite3_finalize(st);
    return rc;
}

int store_each_report_after(store_t *s, int64_t *after, size_t limit,
                            int (*fn)(void *ctx, const char *json, size_t len, double received),
                            void *ctx)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT n, json, received FROM reports WHERE n > ? ORDER BY n LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, *after);
    sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *after = sqlite3_column_int64(st, 0);
        fn(ctx, (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1),
           sqlite3_column_double(st, 2));
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

json_t *store_list_reports(store_t *s, const char *edge, double since, int64_t after, size_t limit)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT n, edge, seq, received, json FROM reports WHERE n > ? AND "
                           "received >= ? AND (?3 IS NULL OR edge = ?3) ORDER BY n LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_double(st, 2, since);
    if (edge)
        sqlite3_bind_text(st, 3, edge, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_error_t je;
        json_t *r = json_loads((const char *)sqlite3_column_text(st, 4), JSON_ALLOW_NUL, &je);
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:I, s:f, s:o}", "n", (json_int_t)sqlite3_column_int64(st, 0),
                         "edge", sqlite3_column_text(st, 1), "seq",
                         (json_int_t)sqlite3_column_int64(st, 2), "received",
                         sqlite3_column_double(st, 3), "report", r ? r : json_null()));
    }
    sqlite3_finalize(st);
    return a;
}

int store_add_signature(store_t *s, const char *id, const char *hash, const char *state, double now,
                        const char *doc, const char *cluster, int version)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO signatures (id, hash, state, created, updated, "
                           "doc, cluster, version, activated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                           "CASE ?3 WHEN 'active' THEN ?4 END)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (cluster)
        sqlite3_bind_text(st, 7, cluster, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 8, version);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 4, now);
    sqlite3_bind_double(st, 5, now);
    sqlite3_bind_text(st, 6, doc, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(s->db) > 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

json_t *store_cluster_signature(store_t *s, const char *cluster)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, state, hash, version FROM signatures WHERE cluster = ? "
                           "ORDER BY version DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, cluster, -1, SQLITE_TRANSIENT);
    json_t *o = NULL;
    if (sqlite3_step(st) == SQLITE_ROW)
        o = json_pack("{s:s, s:s, s:s, s:i}", "id", sqlite3_column_text(st, 0), "state",
                      sqlite3_column_text(st, 1), "hash", sqlite3_column_text(st, 2), "version",
                      sqlite3_column_int(st, 3));
    sqlite3_finalize(st);
    return o;
}

int store_update_signature_doc(store_t *s, const char *id, const char *doc, double now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "UPDATE signatures SET doc = ?, updated = ? WHERE id = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, doc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 2, now);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

static json_t *signature_row(sqlite3_stmt *st)
{
    json_error_t je;
    json_t *doc = json_loads((const char *)sqlite3_column_text(st, 5), 0, &je);
    const char *reason = (const char *)sqlite3_column_text(st, 2);
    return json_pack("{s:s, s:s, s:o, s:f, s:f, s:o}", "id", sqlite3_column_text(st, 0), "state",
                     sqlite3_column_text(st, 1), "reason",
                     reason ? json_string(reason) : json_null(), "created",
                     sqlite3_column_double(st, 3), "updated", sqlite3_column_double(st, 4),
                     "signature", doc ? doc : json_null());
}

json_t *store_list_signatures(store_t *s, const char *state)
{
    sqlite3_stmt *st;
    const char *sql = state ? "SELECT id, state, reason, created, updated, doc FROM signatures "
                              "WHERE state = ? ORDER BY created, id"
                            : "SELECT id, state, reason, created, updated, doc FROM signatures "
                              "ORDER BY created, id";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    if (state)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, signature_row(st));
    sqlite3_finalize(st);
    return a;
}

json_t *store_get_signature(store_t *s, const char *id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, state, reason, created, updated, doc FROM signatures "
                           "WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? signature_row(st) : NULL;
    sqlite3_finalize(st);
    return o;
}

int store_set_state(store_t *s, const char *id, const char *from, const char *to,
                    const char *reason, double now)
{
    json_t *cur = store_get_signature(s, id);
    if (!cur)
        return -1;
    char allowed[128];
    snprintf(allowed, sizeof allowed, "|%s|", from);
    char state[40];
    snprintf(state, sizeof state, "|%s|", json_string_value(json_object_get(cur, "state")));
    json_decref(cur);
    if (!strstr(allowed, state))
        return -2;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE signatures SET state = ?1, reason = ?2, updated = ?3, "
                           "activated = coalesce(activated, CASE ?1 WHEN 'active' THEN ?3 END) "
                           "WHERE id = ?4",
                           -1, &st, NULL) != SQLITE_OK)
        return -3;
    sqlite3_bind_text(st, 1, to, -1, SQLITE_TRANSIENT);
    if (reason)
        sqlite3_bind_text(st, 2, reason, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_double(st, 3, now);
    sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -3;
    sqlite3_finalize(st);
    return rc;
}

int store_save_clusters(store_t *s, int64_t after, uint64_t unbuilt, double now, const void *state,
                        size_t len, const char *notes)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO clusters (id, after, unbuilt, saved, state, "
                           "notes) VALUES (1, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)unbuilt);
    sqlite3_bind_double(st, 3, now);
    sqlite3_bind_blob64(st, 4, state, len, SQLITE_STATIC);
    if (notes)
        sqlite3_bind_text(st, 5, notes, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

int store_load_clusters(store_t *s, int64_t *after, uint64_t *unbuilt, uint8_t **state, size_t *len,
                        char **notes)
{
    sqlite3_stmt *st;
    *notes = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT after, unbuilt, state, notes FROM clusters WHERE id = 1",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -1;
    }
    *after = sqlite3_column_int64(st, 0);
    *unbuilt = (uint64_t)sqlite3_column_int64(st, 1);
    const void *blob = sqlite3_column_blob(st, 2);
    *len = (size_t)sqlite3_column_bytes(st, 2);
    *state = malloc(*len ? *len : 1);
    if (*state && *len)
        memcpy(*state, blob, *len);
    const char *text = (const char *)sqlite3_column_text(st, 3);
    if (text && !(*notes = strdup(text))) {
        free(*state);
        *state = NULL;
    }
    sqlite3_finalize(st);
    return *state ? 1 : -1;
}

static uint64_t meta_get(store_t *s, const char *key)
{
    sqlite3_stmt *st;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int meta_bump(store_t *s, const char *key)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "UPDATE meta SET value = value + 1 WHERE key = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

uint64_t store_sequence(store_t *s)
{
    return meta_get(s, "sequence");
}

int store_bump_sequence(store_t *s)
{
    return meta_bump(s, "sequence");
}

const double store_latency_bounds[STORE_LATENCY_BUCKETS] = {1,   5,    15,    60,    300,
                                                            900, 3600, 14400, 86400, 604800};

int store_signature_stats(store_t *s, store_signature_stats_t *out)
{
    memset(out, 0, sizeof *out);
    static const char *const states[STORE_STATES] = {"pending", "active", "rejected", "expired"};
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT state, count(*) FROM signatures GROUP BY state", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int k = 0; k < STORE_STATES; k++)
            if (!strcmp((const char *)sqlite3_column_text(st, 0), states[k]))
                out->by_state[k] = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    /* per cluster, from its founding report to the first of its signatures going active: when
     * enforcement began; later versions refine a signature already enforced */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT min(activated) - min(json_extract(doc, '$.first_seen')) FROM "
                           "signatures WHERE activated IS NOT NULL AND json_extract(doc, "
                           "'$.first_seen') IS NOT NULL GROUP BY coalesce(cluster, id)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        double d = sqlite3_column_double(st, 0);
        if (d < 0)
            d = 0; /* a report's clock ahead of the overlay's */
        int b = 0;
        while (b < STORE_LATENCY_BUCKETS && d > store_latency_bounds[b])
            b++;
        out->to_active[b]++;
        out->to_active_sum += d;
        out->to_active_count++;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*) FROM edges WHERE signature_sequence < (SELECT value "
                           "FROM meta WHERE key = 'sequence')",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        out->edges_behind = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

char *store_get_allowlist(store_t *s, double *updated)
{
    sqlite3_stmt *st;
    *updated = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT text, updated FROM allowlist WHERE id = 1", -1, &st,
                           NULL) != SQLITE_OK)
        return NULL;
    int rc = sqlite3_step(st);
    char *text = NULL;
    if (rc == SQLITE_ROW) {
        text = strdup((const char *)sqlite3_column_text(st, 0));
        *updated = sqlite3_column_double(st, 1);
    } else if (rc == SQLITE_DONE) {
        text = strdup("");
    }
    sqlite3_finalize(st);
    return text;
}

int store_set_allowlist(store_t *s, const char *text, double now)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    sqlite3_stmt *st;
    int rc = -1;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO allowlist (id, text, updated) VALUES (1, ?, ?)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 2, now);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = meta_bump(s, "sequence");
    if (sqlite3_exec(s->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    return rc;
}

int store_put_ban(store_t *s, const char *source, double until, const char *edge, double now)
{
    sqlite3_stmt *st;
    /* a ban another edge made, or one made longer; a shorter one changes nothing the edges
     * hear, so the count alone goes up */
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO bans (source, until, edge, first, updated, count) "
                           "VALUES (?1, ?2, ?3, ?4, ?4, 1) ON CONFLICT (source) DO UPDATE SET "
                           "count = count + 1, updated = ?4, "
                           "edge = CASE WHEN ?2 > until THEN ?3 ELSE edge END, "
                           "until = max(until, ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    double before = -1;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT until FROM bans WHERE source = ?", -1, &q, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(q, 1, source, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            before = sqlite3_column_double(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, until);
    sqlite3_bind_text(st, 3, edge, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, now);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc < 0 ? -1 : until > before;
}

json_t *store_list_bans(store_t *s, double now, size_t limit)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT source, until, edge, first, count FROM bans WHERE until > ? "
                           "ORDER BY until DESC, source LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:s, s:f, s:s, s:f, s:I}", "source",
                                           (const char *)sqlite3_column_text(st, 0), "until",
                                           sqlite3_column_double(st, 1), "edge",
                                           (const char *)sqlite3_column_text(st, 2), "first",
                                           sqlite3_column_double(st, 3), "count",
                                           (json_int_t)sqlite3_column_int64(st, 4)));
    sqlite3_finalize(st);
    return a;
}

uint64_t store_count_bans(store_t *s, double now)
{
    sqlite3_stmt *st;
    uint64_t n = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM bans WHERE until > ?", -1, &st, NULL) !=
        SQLITE_OK)
        return 0;
    sqlite3_bind_double(st, 1, now);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

int store_delete_ban(store_t *s, const char *source)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    sqlite3_stmt *st;
    int rc = -1;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM bans WHERE source = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(s->db) > 0 : -1;
    }
    sqlite3_finalize(st);
    if (rc == 1 && meta_bump(s, "sequence") != 0)
        rc = -1;
    if (sqlite3_exec(s->db, rc >= 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    return rc;
}

uint64_t store_next_signature_number(store_t *s)
{
    uint64_t n = meta_get(s, "next_signature");
    meta_bump(s, "next_signature");
    return n;
}

json_t *store_list_edges(store_t *s)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT edge, last_seen, reports, signature_sequence FROM edges "
                           "ORDER BY edge",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(
            a, json_pack("{s:s, s:f, s:I, s:o}", "edge", sqlite3_column_text(st, 0), "last_seen",
                         sqlite3_column_double(st, 1), "reports",
                         (json_int_t)sqlite3_column_int64(st, 2), "signature_sequence",
                         sqlite3_column_type(st, 3) == SQLITE_NULL
                             ? json_null()
                             : json_integer(sqlite3_column_int64(st, 3))));
    sqlite3_finalize(st);
    return a;
}

int store_edge_state(store_t *s, const char *edge, double received, int64_t sigseq)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO edges (edge, last_seen, reports, signature_sequence) "
                           "VALUES (?1, ?2, 0, ?3) ON CONFLICT (edge) DO UPDATE SET "
                           "last_seen = max(last_seen, ?2), "
                           "signature_sequence = coalesce(?3, signature_sequence)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, edge, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 2, received);
    if (sigseq >= 0)
        sqlite3_bind_int64(st, 3, sigseq);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

int store_clean(store_t *s, const char *edge, uint64_t seq, double received, const char *json,
                size_t len, size_t keep)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO clean (edge, seq, received, json) "
                           "VALUES (?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, edge, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_double(st, 3, received);
    sqlite3_bind_text(st, 4, json, (int)len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(s->db) > 0 : -1;
    sqlite3_finalize(st);
    if (rc != 1)
        return rc;
    /* bounded per edge, the oldest samples going: pruned every CLEAN_PRUNE_EVERY samples (one
     * pass over the table), not at each (which cost a pass over the edge's samples each) */
    if (++s->clean_since_prune < CLEAN_PRUNE_EVERY)
        return 1;
    s->clean_since_prune = 0;
    if (sqlite3_prepare_v2(s->db,
                           "DELETE FROM clean WHERE rowid IN (SELECT rowid FROM (SELECT rowid, "
                           "row_number() OVER (PARTITION BY edge ORDER BY seq DESC) AS r FROM "
                           "clean) WHERE r > ?1)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)keep);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 1 : -1;
}

int store_each_clean(store_t *s, int (*fn)(void *ctx, const char *json, size_t len), void *ctx)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT json FROM clean", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = fn(ctx, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    sqlite3_finalize(st);
    return rc;
}

uint64_t store_count_clean(store_t *s)
{
    return count(s, "SELECT count(*) FROM clean");
}
