/*
 * fuzz_config: the edge's settings from any text, one "section.key=value" per line as
 * --set and the INI loader apply them, then the cross-checks and the printout; and each
 * line as a HOST:PORT; and the whole text as a [verdict] allow_file, looked up with addresses
 * taken from its bytes. A value must be taken or refused with a reason, never crash. A
 * libFuzzer target (SIPGUARD_FUZZ=ON with clang), replayed over tests/fuzz/regress/config.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allowlist.h"
#include "edge_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    edge_config_t c;
    edge_config_default(&c);
    char err[512];
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        err[0] = '\0';
        if (edge_config_set(&c, line, err, sizeof err) != 0 && !err[0])
            abort(); /* a refusal must say why */
        char host[256];
        unsigned port;
        edge_split_hostport(line, host, sizeof host, &port);
    }
    edge_config_validate(&c, err, sizeof err);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        edge_config_print(&c, null, true);
        fclose(null);
    }
    err[0] = '\0';
    allowlist_t *a = allowlist_parse((const char *)data, size, "fuzz", err, sizeof err);
    if (!a && !err[0])
        abort();
    for (size_t at = 0; a && at + 17 <= size; at += 17) {
        endpoint_t ep = {.family = data[at] & 1 ? 6 : 4};
        memcpy(ep.addr, data + at + 1, 16);
        allowlist_contains(a, &ep);
    }
    allowlist_destroy(&a);
    free(text);
    return 0;
}
