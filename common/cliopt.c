#include "cliopt.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLIOPT_MAX 64

int cliopt_next(const clicmd_t *cmd, int argc, char **argv, const char **arg)
{
    struct option longs[CLIOPT_MAX + 1];
    char shorts[CLIOPT_MAX * 2 + 2] = "";
    size_t n = 0, sl = 0;
    for (; n < CLIOPT_MAX && cmd->opts[n].name; n++) {
        const cliopt_t *o = &cmd->opts[n];
        longs[n] =
            (struct option){o->name, o->arg ? required_argument : no_argument, NULL, 256 + (int)n};
        if (o->letter) {
            shorts[sl++] = o->letter;
            if (o->arg)
                shorts[sl++] = ':';
        }
    }
    longs[n] = (struct option){0, 0, 0, 0};
    shorts[sl] = '\0';
    opterr = 0;
    int c = getopt_long(argc, argv, shorts, longs, NULL);
    if (c == -1)
        return -1;
    *arg = optarg;
    if (c >= 256)
        return c - 256;
    for (size_t i = 0; i < n; i++)
        if (cmd->opts[i].letter == c)
            return (int)i;
    if (optopt && optopt < 256)
        fprintf(stderr, "sipguard: option -%c: %s\n", optopt,
                strchr(shorts, optopt) ? "needs an argument" : "unknown option");
    else
        fprintf(stderr, "sipguard: %s: unknown option or missing argument\n", argv[optind - 1]);
    fprintf(stderr, "usage: %s\n(see --help)\n", cmd->usage);
    return -2;
}

/* Prints text wrapped at `width` columns, continuation lines indented by `indent`. */
static void print_wrapped(FILE *out, const char *text, size_t indent, size_t width)
{
    size_t col = indent, room = width > indent + 20 ? width - indent : 20;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (col > indent && col + 1 + w > indent + room) {
            fprintf(out, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, w, out);
        col += w;
        p += w;
    }
    fputc('\n', out);
}

void cliopt_help(const clicmd_t *cmd, FILE *out)
{
    fprintf(out, "usage: %s\n\n%s\n\noptions:\n", cmd->usage, cmd->summary);
    for (const cliopt_t *o = cmd->opts; o->name; o++) {
        char lhs[64];
        if (o->letter)
            snprintf(lhs, sizeof lhs, "-%c, --%s%s%s", o->letter, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(lhs, sizeof lhs, "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        char text[512];
        if (o->def)
            snprintf(text, sizeof text, "%s (default: %s)", o->help, o->def);
        else
            snprintf(text, sizeof text, "%s", o->help);
        if (strlen(lhs) > 27) /* its help on the next line, as help2man and getopt tools expect */
            fprintf(out, "  %s\n%31s", lhs, "");
        else
            fprintf(out, "  %-28s ", lhs);
        print_wrapped(out, text, 31, 100);
    }
    if (cmd->epilog)
        fprintf(out, "\n%s\n", cmd->epilog);
}

int cliopt_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "sipguard: --%s: expected a number in [%g, %g], got '%s'\n", opt, lo, hi,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

int cliopt_int(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "sipguard: --%s: expected an integer in [%ld, %ld], got '%s'\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cliopt_finish_stdout(const char *program, int status)
{
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && (status == 0 || status == 3)) {
        /* errno is the flush's; an earlier write that failed left only the error flag */
        fprintf(stderr, "%s: writing standard output failed%s%s\n", program, errno ? ": " : "",
                errno ? strerror(errno) : "");
        return 1;
    }
    return status;
}
