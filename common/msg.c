#include "msg.h"

#include <string.h>

#include <arpa/inet.h>
#include <stdio.h>

void msg_address_format(const endpoint_t *ep, char buf[46])
{
    buf[0] = '\0';
    if (ep->family == 4)
        inet_ntop(AF_INET, ep->addr, buf, INET6_ADDRSTRLEN);
    else if (ep->family == 6)
        inet_ntop(AF_INET6, ep->addr, buf, INET6_ADDRSTRLEN);
}

void msg_endpoint_format(const endpoint_t *ep, char buf[MSG_ENDPOINT_STRLEN])
{
    char a[INET6_ADDRSTRLEN];
    msg_address_format(ep, a);
    if (ep->family == 4)
        snprintf(buf, MSG_ENDPOINT_STRLEN, "%s:%u", a, ep->port);
    else if (ep->family == 6)
        snprintf(buf, MSG_ENDPOINT_STRLEN, "[%s]:%u", a, ep->port);
    else
        buf[0] = '\0';
}

const char *msg_transport_name(transport_t t)
{
    switch (t) {
    case TRANSPORT_UDP:
        return "udp";
    case TRANSPORT_TCP:
        return "tcp";
    case TRANSPORT_SCTP:
        return "sctp";
    case TRANSPORT_WS:
        return "ws";
    default:
        return "none";
    }
}

const uint8_t msg_v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool msg_is_v4_mapped(const uint8_t addr[16])
{
    return !memcmp(addr, msg_v4_mapped_prefix, sizeof msg_v4_mapped_prefix);
}

bool msg_endpoint_equal(const endpoint_t *a, const endpoint_t *b, bool with_port)
{
    return a->family == b->family && (!with_port || a->port == b->port) &&
           !memcmp(a->addr, b->addr, a->family == 6 ? 16 : 4);
}
