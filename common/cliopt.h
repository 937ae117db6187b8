/*
 * cliopt: one table per command drives option parsing and --help.
 *
 * As harry does, each option is declared once (long name, short letter,
 * argument name, help text, default) and both getopt_long and the usage
 * text are generated from that table, so the help can never drift from
 * what the parser accepts.
 */
#ifndef SIPGUARD_CLIOPT_H
#define SIPGUARD_CLIOPT_H

#include <stdio.h>

typedef struct {
    const char *name; /* long name without dashes */
    char letter;      /* short option, or 0 */
    const char *arg;  /* argument name, or NULL for a flag */
    const char *help;
    const char *def; /* default shown in help, or NULL */
} cliopt_t;

typedef struct {
    const char *usage;    /* "sipguard train [OPTIONS] -o MODEL INPUT..." */
    const char *summary;  /* one paragraph */
    const cliopt_t *opts; /* terminated by a zero entry */
    const char *epilog;   /* exit codes, examples; may be NULL */
} clicmd_t;

/*
 * Parses the next option. Returns the index of the option in the table,
 * -1 at the end of options (optind then points at the first operand), or
 * -2 after printing an error for an unknown option or a missing argument.
 * *arg receives the argument. --help is handled by the caller via the
 * "help" entry every table should have.
 */
int cliopt_next(const clicmd_t *cmd, int argc, char **argv, const char **arg);

/* Prints the usage, the summary and every option with its default. */
void cliopt_help(const clicmd_t *cmd, FILE *out);

/* Parses a number; prints "OPTION: expected ... got ..." and returns -1 when invalid. */
int cliopt_double(const char *opt, const char *s, double lo, double hi, double *out);
int cliopt_int(const char *opt, const char *s, long lo, long hi, long *out);

/* A program's exit status once what it printed on standard output has been flushed: a run
 * that succeeded (0, or 3: some inputs unread) but whose output was lost (a full disk under a
 * redirection) becomes 1, said on standard error as "PROGRAM: writing standard output
 * failed", as the GNU tools do. Commands that check their own writes have said it already. */
int cliopt_finish_stdout(const char *program, int status);

#endif
