/*
 * cmdutil: what the detector's offline commands share: the embedding
 * options (declared once, used by train and embed), the reader options, and
 * the loop that reads every message of every input with errors and skips
 * reported per file.
 */
#ifndef SIPGUARD_CMDUTIL_H
#define SIPGUARD_CMDUTIL_H

#include <stdbool.h>

#include "cliopt.h"
#include "decode.h"
#include "embed.h"
#include "model.h"
#include "msg.h"

/* Exit codes of every sipguard command. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_INPUT = 3 };

#define CMD_EMBED_OPTIONS                                                                          \
    {"feature", 'f', "SPEC", "features: ngram:N (N = 1..8) or token", "ngram:4"},                  \
        {"binary", 0, NULL, "count each feature once (0/1) instead of its occurrences", NULL},     \
        {"norm", 0, "NORM", "vector normalisation: none, l1 or l2", "none"},                       \
        {"shape", 0, "MODE",                                                                       \
         "value shaping: fields (per-message random values only), all (every "                     \
         "digit/hex run and IPv4 address) or none",                                                \
         "fields"},                                                                                \
        {"no-shape", 0, NULL, "the same as --shape none", NULL},                                   \
        {"no-header-norm", 0, NULL, "keep header names as written (no canonical names)", NULL},    \
    {                                                                                              \
        "delimiters", 0, "CHARS", "token delimiters; \\t \\r \\n \\xHH understood",                \
            "space and \\t\\r\\n,;:=@/<>\"'()[]?&"                                                 \
    }

#define CMD_INPUT_OPTIONS                                                                          \
    {"sip-ports", 0, "LO-HI", "UDP/TCP ports that carry SIP", "5060-5090"},                        \
        {"no-sniff", 0, NULL, "do not take SIP-looking payloads on other ports", NULL},            \
        {"hep-port", 0, "PORT", "UDP port of HEPv3 datagrams", "9060"},                            \
        {"keep-copies", 0, NULL,                                                                   \
         "keep the copies of a packet that a capture on Linux's any device shows on every "        \
         "interface it crossed (by default each packet is read once and its copies counted)",      \
         NULL},                                                                                    \
        {"max-message", 0, "BYTES", "longer messages are cut and marked truncated", "65535"},      \
        {"tcp-streams", 0, "N",                                                                    \
         "TCP connection directions followed at once; past this the least recently used stream "   \
         "is dropped (counted)",                                                                   \
         "65536"},                                                                                 \
    {                                                                                              \
        "tcp-memory", 0, "MIB",                                                                    \
            "memory all TCP streams may hold together (buffers, early segments); past this the "   \
            "least recently used streams are dropped (counted)",                                   \
            "512"                                                                                  \
    }

/* Applies an embedding option by name; 1 when handled, 0 when not its option, -1 invalid. */
int cmd_embed_option(const char *name, const char *arg, embed_opts_t *o);
/* Applies an input option by name; 1 when handled, 0 when not its option, -1 invalid. */
int cmd_input_option(const char *name, const char *arg, decode_opts_t *o);

/*
 * The next option of a command that the command handles itself. What every command does alike
 * is done here: an unknown or incomplete option, --help and, when dopts and eo are not NULL,
 * the input options and the embedding options. Returns the option's name (its argument in *arg), or
 * NULL when the command stops reading options: *status is then -1 at the end of the options (optind
 * is at the first operand), EXIT_OK after printing the help, or EXIT_USAGE after printing an error.
 */
const char *cmd_next_option(const clicmd_t *cmd, int argc, char **argv, const char **arg,
                            decode_opts_t *dopts, embed_opts_t *eo, int *status);

/* What train says of the model it made and info of a model file: "LEAD NAME: messages,
 * vectors, features (embedding)", then the global and the local model, a line each. lead may
 * be NULL. */
void cmd_print_model_summary(FILE *out, const char *lead, const char *name, const model_opts_t *mo,
                             const model_stats_t *st);

typedef int (*cmd_message_fn)(void *ctx, const msg_t *m);

/* Line-buffers out when an input is standard input ("-", a live capture piped in), so that
 * each result shows as its message comes rather than when a block fills. */
void cmd_lines_as_they_come(FILE *out, char **paths, int n);

/*
 * Reads every message of every path and calls fn. A path that cannot be
 * opened is reported and counted in *failed_inputs. Skips are printed to
 * stderr per input unless quiet. Returns -1 when fn returned non-zero (abort).
 */
int cmd_for_each_message(char **paths, int n, const decode_opts_t *o, bool quiet, cmd_message_fn fn,
                         void *ctx, int *failed_inputs);

#endif
