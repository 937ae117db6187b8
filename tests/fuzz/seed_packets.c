/*
 * seed_packets: writes captures as fuzz_packets inputs (a link-type byte, then each frame as
 * a time step byte, 0 for one second, a 2-byte big-endian length and its bytes), so that the
 * fuzzer starts from real traffic.
 *   usage: seed_packets OUTDIR CAPTURE...
 * Frames past 64 KiB, and captures of link types fuzz_packets does not pick, are left out.
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"

#define MAX_FRAMES 200

static int link_index(int dlt)
{
    for (size_t i = 0; i < FUZZ_LINKTYPES; i++)
        if (fuzz_linktypes[i] == dlt)
            return (int)i;
    return -1;
}

static int convert(const char *outdir, const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, err);
    if (!p)
        return 0; /* not a capture libpcap reads: nothing to seed */
    int li = link_index(pcap_datalink(p));
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char out[4096];
    snprintf(out, sizeof out, "%s/%s.pkt", outdir, base);
    FILE *f = li < 0 ? NULL : fopen(out, "wb");
    if (!f) {
        pcap_close(p);
        return li < 0 ? 0 : -1;
    }
    fputc(li, f);
    struct pcap_pkthdr *h;
    const u_char *data;
    for (int n = 0; n < MAX_FRAMES && pcap_next_ex(p, &h, &data) == 1;) {
        if (h->caplen > 0xffff)
            continue;
        fputc(0, f);
        fputc((int)(h->caplen >> 8), f);
        fputc((int)(h->caplen & 0xff), f);
        fwrite(data, 1, h->caplen, f);
        n++;
    }
    pcap_close(p);
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: seed_packets OUTDIR CAPTURE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 2; i < argc; i++)
        if (convert(argv[1], argv[i]) != 0) {
            fprintf(stderr, "seed_packets: %s: cannot write its seed\n", argv[i]);
            rc = 1;
        }
    return rc;
}
