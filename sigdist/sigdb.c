#include "sigdb.h"

#include "fsutil.h"
#include "report.h"

#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;
    double weight;
    uint32_t sig;
} sigfeat_t;

typedef struct {
    char id[64];
    double threshold;
} sig_t_;

struct sigdb {
    sig_t_ *sig;
    size_t nsig;
    uint64_t sequence;
    /* every (feature key, weight, signature), in an open-addressing table by key; equal keys
     * sit in consecutive probes, so one lookup walks all signatures of a feature */
    sigfeat_t *table;
    size_t tcap, nfeat;
    /* positive-weight strings: pattern id -> signature */
    hs_database_t *hs;
    uint32_t *pattern_sig;
    uint32_t *always; /* signatures with threshold <= 0 */
    size_t nalways;
};

struct sigscratch {
    hs_scratch_t *hs;
    uint8_t *candidate; /* per signature */
    uint32_t *list;
    size_t nlist;
    double *score; /* per signature, zero outside sigdb_match */
};

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static int fail(char *err, size_t errlen, const char *what, size_t i, const char *why)
{
    snprintf(err, errlen, "%s %zu: %s", what, i, why);
    return -1;
}

static int table_insert(sigdb_t *db, uint64_t key, double w, uint32_t sig)
{
    size_t mask = db->tcap - 1, h = mix(key) & mask;
    while (db->table[h].sig != UINT32_MAX)
        h = (h + 1) & mask;
    db->table[h] = (sigfeat_t){key, w, sig};
    db->nfeat++;
    return 0;
}

static int check_embedding(json_t *root, const embed_opts_t *eo, char *err, size_t errlen)
{
    char want[32];
    embed_opts_feature_name(eo, want, sizeof want);
    const char *f = json_string_value(json_object_get(root, "feature"));
    const char *sh = json_string_value(json_object_get(root, "shape"));
    if (!f || strcmp(f, want)) {
        snprintf(err, errlen, "signatures are for feature \"%s\", the model uses \"%s\"",
                 f ? f : "(missing)", want);
        return -1;
    }
    if (!sh || strcmp(sh, embed_shape_name(eo->shape))) {
        snprintf(err, errlen, "signatures are for shape \"%s\", the model uses \"%s\"",
                 sh ? sh : "(missing)", embed_shape_name(eo->shape));
        return -1;
    }
    return 0;
}

/* Reads one signature's fields into db and its positive strings into the pattern lists. */
static int add_signature(sigdb_t *db, json_t *js, size_t i, const embed_opts_t *eo, char ***pats,
                         size_t **plens, size_t *npat, size_t *patcap, char *err, size_t errlen)
{
    json_t *id = json_object_get(js, "id"), *thr = json_object_get(js, "threshold"),
           *feats = json_object_get(js, "features");
    if (!json_is_object(js))
        return fail(err, errlen, "signature", i, "not an object");
    if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) >= 64)
        return fail(err, errlen, "signature", i, "\"id\" must be a string of 1-63 characters");
    if (!json_is_number(thr))
        return fail(err, errlen, "signature", i, "\"threshold\" must be a number");
    if (!json_is_array(feats) || json_array_size(feats) == 0)
        return fail(err, errlen, "signature", i, "\"features\" must be a non-empty array");
    snprintf(db->sig[i].id, sizeof db->sig[i].id, "%s", json_string_value(id));
    db->sig[i].threshold = json_number_value(thr);
    size_t j;
    json_t *f;
    json_array_foreach(feats, j, f)
    {
        json_t *str = json_object_get(f, "string"), *w = json_object_get(f, "weight");
        char why[160];
        if (!json_is_string(str) || !json_is_number(w)) {
            snprintf(why, sizeof why, "feature %zu needs \"string\" (text) and \"weight\" (number)",
                     j);
            return fail(err, errlen, "signature", i, why);
        }
        size_t slen = json_string_length(str);
        uint8_t *bytes = malloc(slen + 1);
        size_t blen = report_raw_bytes(json_string_value(str), slen, bytes);
        uint64_t key;
        if (embed_feature_key(eo, bytes, blen, &key) != 0) {
            free(bytes);
            snprintf(why, sizeof why, "feature %zu is not a feature of this embedding", j);
            return fail(err, errlen, "signature", i, why);
        }
        table_insert(db, key, json_number_value(w), (uint32_t)i);
        if (json_number_value(w) > 0) {
            if (*npat == *patcap) {
                *patcap = *patcap ? *patcap * 2 : 64;
                *pats = realloc(*pats, *patcap * sizeof **pats);
                *plens = realloc(*plens, *patcap * sizeof **plens);
                db->pattern_sig = realloc(db->pattern_sig, *patcap * sizeof *db->pattern_sig);
            }
            (*pats)[*npat] = (char *)bytes;
            (*plens)[*npat] = blen;
            db->pattern_sig[(*npat)++] = (uint32_t)i;
        } else {
            free(bytes);
        }
    }
    return 0;
}

static int compile_patterns(sigdb_t *db, char **pats, size_t *lens, size_t n, char *err,
                            size_t errlen)
{
    if (n == 0)
        return 0;
    unsigned *ids = malloc(n * sizeof *ids), *flags = calloc(n, sizeof *flags);
    for (size_t i = 0; i < n; i++)
        ids[i] = (unsigned)i;
    hs_compile_error_t *ce = NULL;
    hs_error_t r = hs_compile_lit_multi((const char *const *)pats, flags, ids, lens, (unsigned)n,
                                        HS_MODE_BLOCK, NULL, &db->hs, &ce);
    free(ids);
    free(flags);
    if (r != HS_SUCCESS) {
        snprintf(err, errlen, "vectorscan cannot compile the signature strings: %s",
                 ce ? ce->message : "unknown error");
        hs_free_compile_error(ce);
        return -1;
    }
    return 0;
}

sigdb_t *sigdb_from_json(json_t *root, const embed_opts_t *eo, char *err, size_t errlen)
{
    json_t *sigs = json_object_get(root, "signatures");
    const char *format = json_string_value(json_object_get(root, "format"));
    if (!json_is_object(root) || !format || strcmp(format, "sipguard-signatures")) {
        snprintf(err, errlen, "not a signature file (\"format\" must be \"sipguard-signatures\")");
        return NULL;
    }
    if (json_integer_value(json_object_get(root, "version")) != 1) {
        snprintf(err, errlen, "signature format version must be 1");
        return NULL;
    }
    if (!json_is_array(sigs)) {
        snprintf(err, errlen, "\"signatures\" must be an array");
        return NULL;
    }
    if (check_embedding(root, eo, err, errlen) != 0)
        return NULL;
    sigdb_t *db = calloc(1, sizeof *db);
    size_t total = 0, i;
    json_t *js;
    json_array_foreach(sigs, i, js) total += json_array_size(json_object_get(js, "features"));
    db->nsig = json_array_size(sigs);
    db->sig = calloc(db->nsig ? db->nsig : 1, sizeof *db->sig);
    db->always = calloc(db->nsig ? db->nsig : 1, sizeof *db->always);
    db->tcap = 16;
    while (db->tcap < 2 * total)
        db->tcap *= 2;
    db->table = malloc(db->tcap * sizeof *db->table);
    for (size_t k = 0; k < db->tcap; k++)
        db->table[k].sig = UINT32_MAX;
    json_t *seq = json_object_get(root, "sequence");
    db->sequence =
        json_is_integer(seq) && json_integer_value(seq) > 0 ? (uint64_t)json_integer_value(seq) : 0;
    char **pats = NULL;
    size_t *plens = NULL, npat = 0, patcap = 0;
    int rc = 0;
    json_array_foreach(sigs, i, js)
    {
        if (add_signature(db, js, i, eo, &pats, &plens, &npat, &patcap, err, errlen) != 0) {
            rc = -1;
            break;
        }
        if (db->sig[i].threshold <= 0)
            db->always[db->nalways++] = (uint32_t)i;
    }
    for (size_t k = 0; k < db->nsig && rc == 0; k++)
        for (size_t m = k + 1; m < db->nsig; m++)
            if (!strcmp(db->sig[k].id, db->sig[m].id)) {
                snprintf(err, errlen, "signature id \"%s\" appears twice", db->sig[k].id);
                rc = -1;
                break;
            }
    if (rc == 0)
        rc = compile_patterns(db, pats, plens, npat, err, errlen);
    for (size_t k = 0; k < npat; k++)
        free(pats[k]);
    free(pats);
    free(plens);
    if (rc != 0)
        sigdb_destroy(&db);
    return db;
}

sigdb_t *sigdb_load_doc(const char *path, const embed_opts_t *eo, json_t **doc, char *err,
                        size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        json_file_error(err, errlen, path, &je);
        return NULL;
    }
    char why[400];
    sigdb_t *db = sigdb_from_json(root, eo, why, sizeof why);
    if (!db)
        snprintf(err, errlen, "%s: %s", path, why);
    if (db && doc)
        *doc = root;
    else
        json_decref(root);
    return db;
}

sigdb_t *sigdb_load(const char *path, const embed_opts_t *eo, char *err, size_t errlen)
{
    return sigdb_load_doc(path, eo, NULL, err, errlen);
}

void sigdb_destroy(sigdb_t **self)
{
    sigdb_t *db = *self;
    if (!db)
        return;
    hs_free_database(db->hs);
    free(db->sig);
    free(db->table);
    free(db->pattern_sig);
    free(db->always);
    free(db);
    *self = NULL;
}

size_t sigdb_count(const sigdb_t *db)
{
    return db->nsig;
}

uint64_t sigdb_sequence(const sigdb_t *db)
{
    return db->sequence;
}

const char *sigdb_id(const sigdb_t *db, int index)
{
    return db->sig[index].id;
}

sigscratch_t *sigdb_scratch_new(const sigdb_t *db)
{
    sigscratch_t *s = calloc(1, sizeof *s);
    s->candidate = calloc(db->nsig ? db->nsig : 1, 1);
    s->list = calloc(db->nsig ? db->nsig : 1, sizeof *s->list);
    s->score = calloc(db->nsig ? db->nsig : 1, sizeof *s->score);
    if (!s->candidate || !s->list || !s->score) {
        sigdb_scratch_destroy(&s);
        return NULL;
    }
    if (db->hs && hs_alloc_scratch(db->hs, &s->hs) != HS_SUCCESS) {
        sigdb_scratch_destroy(&s);
        return NULL;
    }
    return s;
}

void sigdb_scratch_destroy(sigscratch_t **self)
{
    sigscratch_t *s = *self;
    if (!s)
        return;
    hs_free_scratch(s->hs);
    free(s->candidate);
    free(s->list);
    free(s->score);
    free(s);
    *self = NULL;
}

typedef struct {
    const sigdb_t *db;
    sigscratch_t *sc;
} scan_ctx_t;

static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                    void *p)
{
    (void)from, (void)to, (void)flags;
    scan_ctx_t *x = p;
    uint32_t sig = x->db->pattern_sig[id];
    if (!x->sc->candidate[sig]) {
        x->sc->candidate[sig] = 1;
        x->sc->list[x->sc->nlist++] = sig;
    }
    return 0;
}

/* Adds one match, keeping the best SIGDB_MAX_MATCHES by score, best first. */
static void keep_match(sig_matches_t *out, int sig, double score)
{
    if (out->n == SIGDB_MAX_MATCHES && out->score[SIGDB_MAX_MATCHES - 1] >= score)
        return;
    int pos = out->n < SIGDB_MAX_MATCHES ? out->n++ : SIGDB_MAX_MATCHES - 1;
    while (pos > 0 && out->score[pos - 1] < score) {
        out->index[pos] = out->index[pos - 1];
        out->score[pos] = out->score[pos - 1];
        pos--;
    }
    out->index[pos] = sig;
    out->score[pos] = score;
}

int sigdb_match(const sigdb_t *db, sigscratch_t *sc, const uint8_t *bytes, size_t len,
                const sparse_t *v, sig_matches_t *out)
{
    out->n = 0;
    sc->nlist = 0;
    for (size_t i = 0; i < db->nalways; i++) {
        sc->candidate[db->always[i]] = 1;
        sc->list[sc->nlist++] = db->always[i];
    }
    scan_ctx_t x = {db, sc};
    if (db->hs && hs_scan(db->hs, (const char *)bytes, (unsigned)len, 0, sc->hs, on_match, &x) !=
                      HS_SUCCESS) {
        for (size_t i = 0; i < sc->nlist; i++)
            sc->candidate[sc->list[i]] = 0;
        return -1;
    }
    if (sc->nlist == 0)
        return 0;
    /* exact linear scores of the candidates over the embedding */
    double *score = sc->score;
    size_t mask = db->tcap - 1;
    for (size_t i = 0; i < v->n; i++)
        for (size_t h = mix(v->keys[i]) & mask; db->table[h].sig != UINT32_MAX; h = (h + 1) & mask)
            if (db->table[h].key == v->keys[i] && sc->candidate[db->table[h].sig])
                score[db->table[h].sig] += db->table[h].weight * v->vals[i];
    for (size_t i = 0; i < sc->nlist; i++) {
        uint32_t s = sc->list[i];
        if (score[s] >= db->sig[s].threshold)
            keep_match(out, (int)s, score[s]);
        sc->candidate[s] = 0;
        score[s] = 0;
    }
    return out->n;
}
