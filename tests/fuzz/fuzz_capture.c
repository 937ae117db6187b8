/*
 * fuzz_capture: a pcap or pcapng image (any bytes) through the capture reader: libpcap, the
 * link, IP and tunnel layers, IPv4 reassembly, TCP streams, SIP framing and HEPv3, then each
 * message into the default embedding and the libosip2 check. A libFuzzer target
 * (SIPGUARD_FUZZ=ON with clang), and replayed over the shared corpus by fuzz_replay.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "input.h"
#include "sipcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sipcheck_init();
    char err[256];
    input_t *in = input_open_memory("fuzz", data, size, NULL, err, sizeof err);
    if (!in)
        return 0;
    msg_t m;
    size_t n = 0;
    while (input_next(in, &m) == 1) {
        if (m.len > 0 && !m.data)
            abort();
        sipinfo_t info;
        sipcheck_message(m.data, m.len, &info);
        fuzz_embed_default(m.data, m.len);
        n++;
    }
    if (input_count(in) != n)
        abort();
    input_close(&in);
    return 0;
}
