#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

struct store {
    sqlite3 *db;
    sqlite3_stmt *ins, *rej, *edge;
};

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS reports (edge TEXT NOT NULL, seq INTEGER NOT NULL, "
    "  received REAL NOT NULL, json TEXT NOT NULL, PRIMARY KEY (edge, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY, edge TEXT, seq INTEGER, "
    "  received REAL NOT NULL, reason TEXT NOT NULL, data BLOB);"
    "CREATE TABLE IF NOT EXISTS edges (edge TEXT PRIMARY KEY, last_seen REAL NOT NULL, "
    "  reports INTEGER NOT NULL DEFAULT 0);";

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
        sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK ||
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

const char *store_error(store_t *s)
{
    return sqlite3_errmsg(s->db);
}
