/*
 * fuzz_json: the JSON that crosses the network, from any bytes. The first byte picks the
 * reader: an edge's anomaly report as the overlay's collector checks it, or a signature set
 * as an edge loads it from the overlay, which then matches a message. A libFuzzer target
 * (SIPGUARD_FUZZ=ON with clang), replayed over tests/fuzz/regress/json by fuzz_replay.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "embed.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        load_signatures(json, len);
    } else {
        int reason;
        int64_t sigseq;
        collector_check_report_ex(json, len, "edge-1", 7, &reason, &sigseq);
    }
    return 0;
}
