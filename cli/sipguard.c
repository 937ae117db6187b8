/*
 * sipguard: the offline command. A thin front that picks the subcommand and
 * hands over to the component that owns it; it holds no logic of its own.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cliopt.h"
#include "cmd_sig.h"
#include "commands.h"
#include "gen.h"
#include "log.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"train", cmd_train, "learn normal traffic into a model file"},
    {"score", cmd_score, "score every message against a model (JSON Lines)"},
    {"eval", cmd_eval, "AUC and detection rates of a model on normal and attack inputs"},
    {"info", cmd_info, "what a model file holds: embedding, training, thresholds, its centre"},
    {"embed", cmd_embed, "write the sparse vector of every message (libsvm or JSON)"},
    {"gen", gen_command, "generate labelled SIP traffic (pcap + labels CSV)"},
    {"replay", cmd_replay, "send the messages of captures to a running edge (HEPv3 or UDP)"},
    {"context", cmd_context, "train and evaluate the flood, dialog and binding detectors"},
    {"sig", cmd_sig, "build signatures from anomalies, export them (JSON, YARA), match them"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sipguard COMMAND [OPTIONS] ...\n\n"
                 "sipguard learns what normal SIP looks like at a border node and scores\n"
                 "every message against it. Commands:\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n'sipguard COMMAND --help' describes a command and its options.\n"
            "An INPUT is a pcap or pcapng file, a raw message file, a directory of *.sip files,\n"
            "or - for a capture on standard input (tcpdump -U -w - | sipguard score -a -m M -).\n"
            "exit status: 0 success, 1 failure, 2 usage error, 3 an input could not be read.\n"
            "environment: SIPGUARD_LOG=error|warning|info|debug sets how much is logged to\n"
            "standard error (default warning; debug includes libosip2's parse diagnostics).\n");
}

static int run(int argc, char **argv)
{
    log_set_program("sipguard");
    const char *level = getenv("SIPGUARD_LOG");
    if (level && log_parse_level(level) < 0) {
        fprintf(stderr,
                "sipguard: SIPGUARD_LOG: expected error, warning, info or debug, got '%s'\n",
                level);
        return 2;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sipguard %s\n", SIPGUARD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            optind = 1;
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "sipguard: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    return cliopt_finish_stdout("sipguard", run(argc, argv));
}
