#include "sigman.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "input.h"
#include "model.h"
#include "report.h"

void sigman_opts_default(sigman_opts_t *o)
{
    memset(o, 0, sizeof *o);
    siggen_opts_default(&o->gen);
}

/* The raw message of a report's JSON, as bytes (malloc'd), or NULL; fills the report. */
static uint8_t *raw_of(const char *json, size_t len, size_t *out_len, json_t **report)
{
    json_error_t je;
    *report = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    json_t *raw = json_object_get(*report, "raw");
    if (!json_is_string(raw))
        return NULL;
    size_t rl = json_string_length(raw);
    uint8_t *b = malloc(rl + 1);
    if (b)
        *out_len = report_raw_bytes(json_string_value(raw), rl, b);
    return b;
}

static int add_report(void *ctx, const char *json, size_t len)
{
    json_t *o;
    size_t n = 0;
    uint8_t *b = raw_of(json, len, &n, &o);
    if (b)
        siggen_add_report(ctx, b, n, json_string_value(json_object_get(o, "edge")),
                          json_number_value(json_object_get(o, "ts")));
    free(b);
    json_decref(o);
    return 0;
}

static int add_clean_report(void *ctx, const char *json, size_t len)
{
    json_t *o;
    size_t n = 0;
    uint8_t *b = raw_of(json, len, &n, &o);
    if (b)
        siggen_add_clean(ctx, b, n);
    free(b);
    json_decref(o);
    return 0;
}

/* The clean sample: what edges sampled, and the configured captures. */
static int add_clean(siggen_t *g, store_t *s, const char *paths, char *err, size_t errlen)
{
    char list[1024];
    snprintf(list, sizeof list, "%s", paths);
    size_t n = store_count_clean(s);
    if (store_each_clean(s, add_clean_report, g) != 0) {
        snprintf(err, errlen, "store: %s", store_error(s));
        return -1;
    }
    for (char *save, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        input_t *in = input_open(p, NULL, err, errlen);
        if (!in)
            return -1;
        msg_t m;
        while (input_next(in, &m) == 1) {
            siggen_add_clean(g, m.data, m.len);
            n++;
        }
        input_close(&in);
    }
    if (n == 0) {
        snprintf(err, errlen,
                 "no clean traffic: set [signatures] clean to normal captures, or "
                 "have edges sample normal messages ([report] normal_sample)");
        return -1;
    }
    return 0;
}

static void content_hash(json_t *sig, char out[17])
{
    char *feats = json_dumps(json_object_get(sig, "features"), JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(out, 17, "%016llx",
             (unsigned long long)XXH3_64bits(feats ? feats : "", feats ? strlen(feats) : 0));
    free(feats);
}

int sigman_build(store_t *s, const sigman_opts_t *o, double now, char *err, size_t errlen)
{
    if (!o->model[0]) {
        snprintf(err, errlen, "no model: set [signatures] model to the edges' model");
        return -1;
    }
    model_t *m = model_load(o->model, err, errlen);
    if (!m)
        return -1;
    siggen_opts_t go = o->gen;
    go.auto_members = o->auto_approve;
    go.auto_edges = o->auto_edges ? o->auto_edges : 1;
    siggen_t *g = siggen_new(&model_options(m)->embed, &go);
    int added = -1;
    if (!g) {
        snprintf(err, errlen, "%s embeds tokens; signatures need byte n-grams", o->model);
        goto out;
    }
    if (add_clean(g, s, o->clean, err, errlen) != 0 || store_each_report(s, add_report, g) != 0)
        goto out;
    json_t *doc = siggen_build(g, 0, "cand");
    size_t i;
    json_t *sig;
    bool activated = false;
    added = 0;
    if (store_begin(s) != 0) {
        snprintf(err, errlen, "store: %s", store_error(s));
        added = -1;
        json_decref(doc);
        goto out;
    }
    json_array_foreach(json_object_get(doc, "signatures"), i, sig)
    {
        char hash[17], id[32];
        content_hash(sig, hash);
        size_t members =
            (size_t)json_integer_value(json_object_get(json_object_get(sig, "cluster"), "members"));
        bool active = o->auto_approve && members >= o->auto_approve;
        snprintf(id, sizeof id, "sig-%06llu", (unsigned long long)store_next_signature_number(s));
        json_object_set_new(sig, "id", json_string(id));
        char *text = json_dumps(sig, JSON_COMPACT);
        int r = store_add_signature(s, id, hash, active ? "active" : "pending", now, text);
        free(text);
        if (r < 0) {
            added = -1;
            break;
        }
        added += r;
        activated = activated || (r > 0 && active);
    }
    json_decref(doc);
    if (added >= 0 && activated)
        store_bump_sequence(s);
    if (added < 0 || store_commit(s) != 0) {
        store_rollback(s);
        snprintf(err, errlen, "store: %s", store_error(s));
        added = -1;
    }
out:
    siggen_destroy(&g);
    model_destroy(&m);
    return added;
}

int sigman_transition(store_t *s, const char *id, const char *action, const char *reason,
                      double now)
{
    const char *from, *to;
    if (!strcmp(action, "approve"))
        from = "pending", to = "active";
    else if (!strcmp(action, "reject"))
        from = "pending|active", to = "rejected";
    else if (!strcmp(action, "expire"))
        from = "active", to = "expired";
    else
        return -1;
    json_t *cur = store_get_signature(s, id);
    bool was_active = cur && !strcmp(json_string_value(json_object_get(cur, "state")), "active");
    json_decref(cur);
    int rc = store_set_state(s, id, from, to, reason, now);
    if (rc == 0 && (was_active || !strcmp(to, "active")))
        store_bump_sequence(s); /* the active set changed */
    return rc;
}

json_t *sigman_active(store_t *s, const sigman_opts_t *o, char *err, size_t errlen)
{
    model_t *m = o->model[0] ? model_load(o->model, err, errlen) : NULL;
    if (!m) {
        if (!o->model[0])
            snprintf(err, errlen, "no model configured");
        return NULL;
    }
    char feature[32];
    embed_opts_feature_name(&model_options(m)->embed, feature, sizeof feature);
    json_t *doc =
        json_pack("{s:s, s:i, s:I, s:s, s:s, s:o}", "format", "sipguard-signatures", "version", 1,
                  "sequence", (json_int_t)store_sequence(s), "feature", feature, "shape",
                  embed_shape_name(model_options(m)->embed.shape), "signatures", json_array());
    model_destroy(&m);
    json_t *list = store_list_signatures(s, "active"), *row;
    size_t i;
    json_array_foreach(list, i, row)
        json_array_append(json_object_get(doc, "signatures"), json_object_get(row, "signature"));
    json_decref(list);
    return doc;
}
