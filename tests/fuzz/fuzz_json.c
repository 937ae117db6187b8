/*
 * fuzz_json: the JSON that crosses the network, from any bytes. The first byte picks what
 * reads it: an edge's anomaly report as the overlay's collector checks it; a signature set
 * as an edge loads it from the overlay, which then matches a message; a message's raw bytes
 * through a report's "raw" string, out as JSON text and back, which must give the same
 * bytes; or the decoding of such a string from whatever a peer sent. A libFuzzer target
 * (SIPGUARD_FUZZ=ON with clang), replayed over tests/fuzz/regress/json by fuzz_replay.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "embed.h"
#include "report.h"
#include "sigdb.h"

static const char probe[] = "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP "
                            "10.0.0.1;branch=z9hG4bK77\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\n\r\n";

static void load_signatures(const char *json, size_t len)
{
    static embed_t *e;
    static sparse_t *v;
    embed_opts_t eo;
    embed_opts_default(&eo);
    if (!e) {
        e = embed_new(&eo);
        v = sparse_new();
        if (!e || !v)
            abort();
        embed_set_sorted(e, false);
    }
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!root)
        return;
    char err[256];
    sigdb_t *db = sigdb_from_json(root, &eo, err, sizeof err);
    json_decref(root);
    if (!db)
        return;
    sigscratch_t *sc = sigdb_scratch_new(db);
    if (sc && embed_message(e, (const uint8_t *)probe, strlen(probe), v) == 0) {
        size_t n;
        const uint8_t *bytes = embed_last_bytes(e, &n);
        sig_matches_t m;
        sigdb_match(db, sc, bytes, n, v, &m);
        if (m.n < 0 || m.n > SIGDB_MAX_MATCHES)
            abort();
    }
    sigdb_scratch_destroy(&sc);
    sigdb_destroy(&db);
}

/* Bytes -> "raw" string -> JSON text -> parsed -> bytes: the overlay must get what the edge
 * captured, whatever it was. */
static void raw_round_trip(const uint8_t *data, size_t len)
{
    json_t *o = json_object();
    json_object_set_new(o, "raw", report_raw_string(data, len));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        abort();
    json_t *back = json_loads(text, JSON_ALLOW_NUL, NULL);
    free(text);
    json_t *raw = json_object_get(back, "raw");
    if (!json_is_string(raw))
        abort();
    size_t n = json_string_length(raw);
    uint8_t *out = malloc(n ? n : 1);
    if (!out)
        abort();
    if (report_raw_bytes(json_string_value(raw), n, out) != len || memcmp(out, data, len) != 0)
        abort();
    free(out);
    json_decref(back);
}

/* A "raw" string as a peer may send it: any bytes, into exactly the room promised. */
static void raw_decode(const uint8_t *data, size_t len)
{
    uint8_t *out = malloc(len ? len : 1);
    if (!out)
        abort();
    if (report_raw_bytes((const char *)data, len, out) > len)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        int reason;
        int64_t sigseq;
        collector_check_report_ex(json, len, "edge-1", 7, &reason, &sigseq);
        break;
    }
    case 1:
        load_signatures(json, len);
        break;
    case 2:
        raw_round_trip(data + 1, len);
        break;
    default:
        raw_decode(data + 1, len);
        break;
    }
    return 0;
}
