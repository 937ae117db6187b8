#include "context.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

struct context {
    flood_t *flood;
    dialog_t *dialog;
    binding_t *binding;
};

context_model_t *context_model_load(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        json_file_error(err, errlen, path, &je);
        return NULL;
    }
    context_model_t *m = context_model_from_json(root, path, err, errlen);
    json_decref(root);
    return m;
}

context_model_t *context_model_from_json(json_t *root, const char *path, char *err, size_t errlen)
{
    context_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    char why[300] = "";
    const char *format = json_string_value(json_object_get(root, "format"));
    json_t *fl = json_object_get(root, "flood"), *dl = json_object_get(root, "dialog"),
           *bl = json_object_get(root, "binding");
    if (!format || strcmp(format, "sipguard-context"))
        snprintf(why, sizeof why, "not a context model (\"format\" must be \"sipguard-context\")");
    else if (json_integer_value(json_object_get(root, "version")) != 1)
        snprintf(why, sizeof why, "context model version must be 1");
    else if (!fl && !dl && !bl)
        snprintf(why, sizeof why, "neither a \"flood\", \"dialog\" nor \"binding\" model in it");
    else if ((!fl || flood_model_from_json(fl, &m->flood, why, sizeof why) == 0) &&
             (!bl || binding_model_from_json(bl, &m->binding, why, sizeof why) == 0)) {
        if (dl && !(m->dialog = dialog_model_from_json(dl, why, sizeof why)) && !why[0])
            snprintf(why, sizeof why, "dialog: out of memory");
    }
    m->has_flood = fl != NULL;
    m->has_binding = bl != NULL;
    if (why[0]) {
        snprintf(err, errlen, "%s: %s", path, why);
        context_model_destroy(&m);
        return NULL;
    }
    return m;
}

int context_model_save(const context_model_t *m, const char *path, char *err, size_t errlen)
{
    json_t *root = json_pack("{s:s, s:i}", "format", "sipguard-context", "version", 1);
    if (m->has_flood)
        json_object_set_new(root, "flood", flood_model_to_json(&m->flood));
    if (m->dialog)
        json_object_set_new(root, "dialog", dialog_model_to_json(m->dialog));
    if (m->has_binding)
        json_object_set_new(root, "binding", binding_model_to_json(&m->binding));
    int rc = wholefile_write_json(root, path, JSON_INDENT(1) | JSON_COMPACT, err, errlen);
    json_decref(root);
    return rc;
}

void context_model_destroy(context_model_t **self)
{
    context_model_t *m = *self;
    if (!m)
        return;
    dialog_model_destroy(&m->dialog);
    free(m);
    *self = NULL;
}

context_t *context_new(const context_model_t *m)
{
    context_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if ((m->has_flood && !(c->flood = flood_new(&m->flood, NULL))) ||
        (m->dialog && !(c->dialog = dialog_new(m->dialog))) ||
        (m->has_binding && !(c->binding = binding_new(&m->binding)))) {
        context_destroy(&c);
        return NULL;
    }
    return c;
}

void context_destroy(context_t **self)
{
    context_t *c = *self;
    if (!c)
        return;
    flood_destroy(&c->flood);
    dialog_destroy(&c->dialog);
    binding_destroy(&c->binding);
    free(c);
    *self = NULL;
}

void context_observe(context_t *c, const msg_t *m, const sipinfo_t *info, context_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    if (c->flood) {
        uint64_t before = flood_evicted(c->flood);
        flood_observe(c->flood, m, info, &out->flood);
        out->flood_evicted = (uint32_t)(flood_evicted(c->flood) - before);
    }
    if (c->dialog)
        dialog_observe(c->dialog, m, info, &out->dialog);
    if (c->binding) {
        uint64_t before = binding_refused(c->binding);
        binding_observe(c->binding, m, info, &out->binding);
        out->binding_refused = binding_refused(c->binding) != before;
    }
    out->anomaly = out->flood.flood || out->dialog.anomaly || out->binding.anomaly;
}

void context_stats(const context_t *c, context_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if ((out->has_flood = c->flood != NULL)) {
        out->flood_capacity = flood_capacity(c->flood);
        out->flood_evicted = flood_evicted(c->flood);
    }
    if ((out->has_dialog = c->dialog != NULL))
        dialog_stats(c->dialog, &out->dialog);
    if ((out->has_binding = c->binding != NULL)) {
        out->bindings = binding_count(c->binding);
        out->binding_capacity = binding_capacity(c->binding);
        out->bindings_refused = binding_refused(c->binding);
    }
}

/* What the dialog detector could not judge for what its feed carried (dialog.h). */
static int warn_feed(FILE *f, const char *prog, const dialog_stats_t *st)
{
    int n = 0;
    if (st->quiet_spells) {
        fprintf(f,
                "%s: warning: the feed carried no SIP response for %.0f s or more while "
                "requests that only follow one (ACKs, BYEs) kept coming (%llu times), so the "
                "dialog detector, whose model learned "
                "responses, stood aside and left %llu messages unjudged%s; mirror the proxy's "
                "replies too (Kamailio: modparam(\"siptrace\", \"trace_mode\", 1), or "
                "sip_trace() with its \"t\" mode), or train the context model on this feed as "
                "it is (docs/dialog.md)\n",
                prog, DIALOG_QUIET_SECONDS, (unsigned long long)st->quiet_spells,
                (unsigned long long)st->unjudged,
                st->no_responses ? ", and still stands aside" : "");
        n++;
    }
    if (st->requests_only) {
        char passed[64] = "";
        if (st->passed_over)
            snprintf(passed, sizeof passed, ", and passed over %llu responses",
                     (unsigned long long)st->passed_over);
        fprintf(f,
                "%s: warning: the dialog model learned no SIP response (its training traffic "
                "carried requests alone): it judges requests alone%s; train it on traffic with "
                "the replies if the feed can carry them (docs/dialog.md)\n",
                prog, passed);
        n++;
    }
    return n;
}

int context_warn(FILE *f, const char *prog, const context_stats_t *st)
{
    int n = warn_feed(f, prog, &st->dialog);
    if (st->dialog.evicted) {
        fprintf(f,
                "%s: warning: the dialog detector gave up %llu open dialog legs for room before "
                "their timeout (its table holds %zu) and took %llu legs up again at a later "
                "message; the later messages of calls it forgot may be flagged; raise it with "
                "`sipguard context train --dialog-capacity`\n",
                prog, (unsigned long long)st->dialog.evicted, st->dialog.capacity,
                (unsigned long long)st->dialog.resumed);
        n++;
    }
    if (st->flood_evicted) {
        fprintf(f,
                "%s: warning: the flood detector reused %llu counters still counting (its table "
                "holds %zu): those counts restarted; raise it with `sipguard context train "
                "--flood-capacity`\n",
                prog, (unsigned long long)st->flood_evicted, st->flood_capacity);
        n++;
    }
    if (st->bindings_refused) {
        fprintf(f,
                "%s: warning: the binding detector's table was full for %llu registrations (it "
                "holds %zu): those identities went unchecked; raise it with `sipguard context "
                "train --expected-users`\n",
                prog, (unsigned long long)st->bindings_refused, st->binding_capacity);
        n++;
    }
    return n;
}

void context_report(const context_verdict_t *v, json_t *o, json_t *detectors)
{
    if (v->flood.flood) {
        json_array_append_new(detectors, json_string("flood"));
        json_object_set_new(o, "flood",
                            json_pack("{s:s, s:s, s:f, s:f}", "key", flood_key_name(v->flood.key),
                                      "class", flood_class_name(v->flood.cls), "count",
                                      v->flood.count, "threshold", v->flood.threshold));
    }
    if (v->dialog.anomaly) {
        json_array_append_new(detectors, json_string("dialog"));
        json_object_set_new(o, "dialog",
                            json_pack("{s:s, s:s, s:I}", "token", v->dialog.token, "after",
                                      v->dialog.context, "seen", (json_int_t)v->dialog.count));
    }
    if (v->binding.anomaly) {
        json_array_append_new(detectors, json_string("binding"));
        json_object_set_new(o, "binding",
                            json_pack("{s:s, s:s, s:s}", "class",
                                      binding_class_name(v->binding.cls), "identity",
                                      v->binding.identity, "bound", v->binding.bound));
    }
}

size_t context_augment(const context_verdict_t *v, const uint8_t *data, size_t len, uint8_t *out,
                       size_t cap)
{
    char extra[160];
    const char *rate = v->flood.flood ? "over" : v->flood.key == -2 ? "none" : "ok";
    const char *dialog = !v->dialog.token[0] ? "none" : v->dialog.count ? "known" : "unseen";
    int n =
        snprintf(extra, sizeof extra, "X-Ctx-Rate: %s\r\nX-Ctx-Dialog: %s\r\nX-Ctx-Binding: %s\r\n",
                 rate, dialog, v->binding.judged ? binding_class_name(v->binding.cls) : "none");
    size_t head = len; /* after the last header line: before the blank line, else at the end */
    for (size_t i = 0; i + 3 < len; i++)
        if (!memcmp(data + i, "\r\n\r\n", 4)) {
            head = i + 2;
            break;
        }
    if (len + (size_t)n > cap)
        return 0;
    memcpy(out, data, head);
    memcpy(out + head, extra, (size_t)n);
    memcpy(out + head + (size_t)n, data + head, len - head);
    return len + (size_t)n;
}
