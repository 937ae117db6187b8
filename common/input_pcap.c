/* input_pcap: pcap and pcapng files, standard input and in-memory images through libpcap. */
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"

typedef struct {
    pcap_t *pcap;
    FILE *memfile;
    int linktype;
    decode_t *dec;
    input_t *in;
} pcap_state_t;

static void on_message(void *ctx, const msg_t *m)
{
    pcap_state_t *s = ctx;
    input_enqueue(s->in, m);
}

/* pcap_close() closes standard input with the capture, so a second "-" would read a closed
 * stream. */
static bool stdin_taken;

static int pcap_in_open(input_t *in, const char *path, const void *mem, size_t mem_len)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    bool from_stdin = !mem && strcmp(path, INPUT_STDIN) == 0;
    if (from_stdin && stdin_taken) {
        input_set_error(in, "-: standard input can be read once");
        return -1;
    }
    pcap_state_t *s = calloc(1, sizeof *s);
    if (!s) {
        input_set_error(in, "%s: out of memory", path);
        return -1;
    }
    s->in = in;
    if (mem) {
        s->memfile = fmemopen((void *)mem, mem_len, "rb");
        if (s->memfile)
            s->pcap = pcap_fopen_offline(s->memfile, errbuf);
    } else if (from_stdin) {
        stdin_taken = true;
        s->pcap = pcap_fopen_offline(stdin, errbuf);
    } else {
        s->pcap = pcap_open_offline(path, errbuf);
    }
    if (!s->pcap) {
        input_set_error(in, "%s: cannot read capture: %s", path, errbuf[0] ? errbuf : "unknown");
        if (s->memfile)
            fclose(s->memfile);
        free(s);
        return -1;
    }
    s->linktype = pcap_datalink(s->pcap);
    if (!decode_linktype_supported(s->linktype)) {
        input_set_error(in, "%s: unsupported link type %d (%s)", path, s->linktype,
                        pcap_datalink_val_to_name(s->linktype)
                            ? pcap_datalink_val_to_name(s->linktype)
                            : "unknown");
        pcap_close(s->pcap); /* closes memfile too */
        free(s);
        return -1;
    }
    s->dec = decode_new(input_opts(in), input_skips_mut(in), on_message, s);
    if (!s->dec) {
        input_set_error(in, "%s: out of memory", path);
        pcap_close(s->pcap);
        free(s);
        return -1;
    }
    input_set_state(in, s);
    return 0;
}

static int pcap_in_fill(input_t *in)
{
    pcap_state_t *s = input_state(in);
    for (int i = 0; i < 64; i++) { /* bounded, so callers see messages as they come */
        struct pcap_pkthdr *h;
        const u_char *data;
        int rc = pcap_next_ex(s->pcap, &h, &data);
        if (rc == 1) {
            /* the packet stays valid until the next pcap_next_ex: its UDP messages are handed
             * out where they lie, and so the fill stops at the first packet that gave any */
            input_lend(in, data, h->caplen);
            decode_packet(s->dec, s->linktype, h->ts.tv_sec, (int32_t)h->ts.tv_usec, data,
                          h->caplen, h->len);
            input_lend(in, NULL, 0);
            if (input_queued(in))
                return 1;
            continue;
        }
        if (rc == PCAP_ERROR_BREAK) {
            decode_flush(s->dec);
            return 0;
        }
        /* A truncated capture ends in a read error: keep what was read, name the problem. */
        const char *why = pcap_geterr(s->pcap);
        if (strstr(why, "different from the type of the first interface")) {
            /* libpcap reads one link type a file and stops at the block that brings another,
             * often before the first packet (every interface is described first): the rest of
             * the file cannot be read, which is a failed input, not a skip */
            input_set_error(in,
                            "pcapng mixes interfaces of different link types, which libpcap "
                            "cannot read (%s): capture each interface to a file of its own",
                            why);
            return -1;
        }
        skips_add(input_skips_mut(in), "capture truncated or corrupt: %s", why);
        decode_flush(s->dec);
        return 0;
    }
    return 1;
}

static void pcap_in_close(input_t *in)
{
    pcap_state_t *s = input_state(in);
    if (!s)
        return;
    decode_destroy(&s->dec);
    pcap_close(s->pcap);
    free(s);
}

const input_format_t input_pcap_format = {"pcap", pcap_in_open, pcap_in_fill, pcap_in_close};
