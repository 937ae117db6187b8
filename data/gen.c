#include "gen.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <osipparser2/osip_md5.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cliopt.h"
#include "msg.h"
#include "pcapw.h"

/* ------------------------------------------------------------ settings */

enum {
    FLOW_HOLD,
    FLOW_CANCEL,
    FLOW_TCP,
    FLOW_MESSAGE,
    FLOW_PRESENCE,
    FLOW_REREG,
    FLOW_OPTIONS,
    FLOW_IPV6,
    FLOW_COUNT
};
static const char *flow_names[FLOW_COUNT] = {"hold",     "cancel", "tcp",     "message",
                                             "presence", "rereg",  "options", "ipv6"};

enum {
    ATK_SCAN,
    ATK_GUESS,
    ATK_FLOOD,
    ATK_SPIT,
    ATK_BYE,
    ATK_CANCEL,
    ATK_DEREG,
    ATK_MALFORMED,
    ATK_SPOOF,
    ATK_HIJACK,
    ATK_REFER,
    ATK_REPLAY,
    ATK_FRAUD,
    ATK_COUNT
};
static const char *attack_names[ATK_COUNT] = {"scan",   "guess",  "flood",     "spit",  "bye",
                                              "cancel", "dereg",  "malformed", "spoof", "hijack",
                                              "refer",  "replay", "fraud"};

typedef struct {
    uint64_t seed;
    uint64_t population_seed; /* who the users are; 0 = the same as seed */
    int users;
    double duration;  /* seconds of normal traffic */
    double call_rate; /* calls per user-hour */
    double p_social;
    int clique_min, clique_max;
    bool without[FLOW_COUNT];
    bool attacks[ATK_COUNT];
    bool normal;         /* emit normal traffic */
    bool attacker_only;  /* keep only what attackers send (content-model evaluations) */
    bool requests_only;  /* keep only requests: a proxy that mirrors no replies */
    double attack_scale; /* multiplies attack volume */
    char flood_window;   /* a end, b start, c throughout, d start and end, e none */
    bool pareto;         /* generalised Pareto holding times instead of exponential */
    const char *prefix;
} gen_opts_t;

/* ------------------------------------------------------------ random */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double uni(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static int irand(int lo, int hi)
{
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

static double expo(double mean)
{
    return -mean * log(1.0 - uni());
}

static void hexs(char *out, int n)
{
    static const char h[] = "0123456789abcdef";
    for (int i = 0; i < n; i++)
        out[i] = h[rnd() & 15];
    out[n] = '\0';
}

static void digits(char *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = (char)('0' + rnd() % 10);
    out[n] = '\0';
}

/* ------------------------------------------------------------ events */

typedef struct {
    double ts;
    uint64_t seq;
    endpoint_t src, dst;
    transport_t tr;
    char *data;
    size_t len;
    bool attack;
    const char *family, *scenario;
    char call_id[96];
} event_t;

static event_t *events;
static size_t n_events, cap_events;
static uint64_t event_seq;

static void emit(double ts, const endpoint_t *src, const endpoint_t *dst, transport_t tr,
                 const char *data, size_t len, bool attack, const char *family,
                 const char *scenario, const char *call_id)
{
    if (n_events == cap_events) {
        cap_events = cap_events ? cap_events * 2 : 65536;
        events = realloc(events, cap_events * sizeof *events);
        if (!events) {
            fprintf(stderr, "sipguard gen: out of memory\n");
            exit(1);
        }
    }
    event_t *e = &events[n_events++];
    e->ts = ts;
    e->seq = event_seq++;
    e->src = *src;
    e->dst = *dst;
    e->tr = tr;
    e->data = malloc(len);
    memcpy(e->data, data, len);
    e->len = len;
    e->attack = attack;
    e->family = family;
    e->scenario = scenario;
    snprintf(e->call_id, sizeof e->call_id, "%s", call_id ? call_id : "");
}

/* ------------------------------------------------------------ user agents */

typedef struct {
    const char *ua;         /* default User-Agent (attackers reuse a family with their own) */
    const char *ua_fmt;     /* per-user version: printf with three %d */
    bool compact;           /* compact header names */
    bool tcp;               /* uses TCP unless --without tcp */
    bool display;           /* puts a display name in From/To */
    const char *branch_fmt; /* "hex", "dig" or "alnum" (random letters and digits) */
    const char *codecs;     /* payload types */
    const char *order;      /* header order letters */
    const char *extra_name, *extra_value; /* a header this family adds to INVITE and REGISTER */
    bool rtcp_attr; /* names its RTCP port in SDP (a=rtcp:, RFC 3605), as PJSIP's phones do */
} family_t;

/* order letters: v Via, m Max-Forwards, f From, t To, i Call-ID, c CSeq, o Contact,
 * u User-Agent, a Allow, s Supported, e Expires, z Authorization, x extra, y Content-Type, l
 * Content-Length */
static const family_t families[] = {
    {"Linphone/3.12.0 (belle-sip/1.6.3)", "Linphone/%d.%d.%d (belle-sip/1.6.3)", false, false, true,
     "hex", "0 8 101", "vftiocmeaszuxyl", "Supported", "replaces, outbound, gruu", false},
    {"PJSUA v2.10 Linux-5.4/x86_64/glibc", "PJSUA v2.%d Linux-5.%d/x86_64/glibc-2.%d", true, false,
     false, "hex", "8 0 9 101", "vmotficzseauxyl", NULL, NULL, true},
    {"Yealink SIP-T46S 66.85.0.5", "Yealink SIP-T46S 66.%d.0.%d%d", false, false, true, "dig",
     "9 0 8 18 101", "vfticmoazsueyxl", "Allow-Events", "talk,hold,conference,refer,check-sync",
     false},
    {"Grandstream GXP2170 1.0.11.23", "Grandstream GXP2170 1.0.%d.%d%d", false, true, false, "dig",
     "0 8 4 18 101", "vmftiocaezsuxyl", "Supported", "replaces, path, timer, eventlist", false},
    {"Cisco/SPA504G-7.6.2c", "Cisco/SPA504G-7.%d.%dc%d", false, false, true, "alnum", "0 18 101",
     "vftimcoeuazsxyl", "Remote-Party-ID", "<sip:anonymous@localhost>;screen=no", false},
    {"PolycomVVX-VVX_411-UA/5.9.5.0614", "PolycomVVX-VVX_411-UA/5.%d.%d.%d", false, true, true,
     "alnum", "9 0 8 101", "vfticomxaseuyzl", "Accept-Language", "en", false},
    {"Z 5.5.9 v2.10.16.2", "Z 5.%d.%d v2.10.16.%d", false, false, false, "hex", "0 8 3 101",
     "vmotfiucxaesyzl", "Allow-Events", "presence, kpml, talk", false},
    {"MicroSIP/3.21.3", "MicroSIP/3.%d.%d%d", true, false, true, "hex", "8 0 9 101",
     "vmftiocuxaeszyl", NULL, NULL, true},
};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))

typedef struct {
    int id;
    char user[32], pass[24];
    char display[48];
    char ua[80];
    endpoint_t ep;
    endpoint_t wire; /* when set: the packet's real source, unlike what the headers claim */
    const family_t *fam;
    bool tcp;
    int clique;
    /* the user's answered calls, as [start, end) intervals: calls are generated caller by
     * caller, not in time order, so "busy" must be asked of a time, not of a last call */
    double call_start[16], call_end[16];
    int n_calls;
    bool registered;
} user_t;

static endpoint_t proxy_ep, proxy_ep6;
static const char *domain = "example.net";

static endpoint_t ep4(int a, int b, int c, int d, uint16_t port)
{
    endpoint_t e = {0};
    e.family = 4;
    e.addr[0] = (uint8_t)a;
    e.addr[1] = (uint8_t)b;
    e.addr[2] = (uint8_t)c;
    e.addr[3] = (uint8_t)d;
    e.port = port;
    return e;
}

/* 2001:db8:<net>::<host> */
static endpoint_t ep6(int net, int host, uint16_t port)
{
    endpoint_t e = {0};
    e.family = 6;
    e.addr[0] = 0x20, e.addr[1] = 0x01, e.addr[2] = 0x0d, e.addr[3] = 0xb8;
    e.addr[4] = (uint8_t)(net >> 8), e.addr[5] = (uint8_t)net;
    e.addr[14] = (uint8_t)(host >> 8), e.addr[15] = (uint8_t)host;
    e.port = port;
    return e;
}

/* The address as written in SDP: plain for both families. */
static void ep_addr(const endpoint_t *e, char *buf, size_t cap)
{
    char a[MSG_ENDPOINT_STRLEN];
    msg_address_format(e, a);
    snprintf(buf, cap, "%s", a);
}

/* The address as written in a SIP URI or Via: IPv6 in brackets. */
static void ep_host(const endpoint_t *e, char *buf, size_t cap)
{
    char a[MSG_ENDPOINT_STRLEN];
    msg_address_format(e, a);
    snprintf(buf, cap, e->family == 6 ? "[%s]" : "%s", a);
}

/* The proxy's address in the user's address family. */
static const endpoint_t *proxy_for(const user_t *u)
{
    return u->ep.family == 6 ? &proxy_ep6 : &proxy_ep;
}

static const char *ua_of(const user_t *u)
{
    return u->ua[0] ? u->ua : u->fam->ua;
}

/* ------------------------------------------------------------ message building */

typedef struct {
    char name[24];
    char value[512];
} hdr_t;

typedef struct {
    char start[1024];
    hdr_t h[24];
    int n;
    char body[1024];
} sipmsg_t;

static void hset(sipmsg_t *m, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void hset(sipmsg_t *m, const char *name, const char *fmt, ...)
{
    hdr_t *h = &m->h[m->n++];
    snprintf(h->name, sizeof h->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->value, sizeof h->value, fmt, ap);
    va_end(ap);
}

static char order_letter(const char *name)
{
    static const char *names[] = {"Via",          "Max-Forwards",  "From",    "To",
                                  "Call-ID",      "CSeq",          "Contact", "User-Agent",
                                  "Allow",        "Supported",     "Expires", "Authorization",
                                  "Content-Type", "Content-Length"};
    static const char letters[] = "vmftico"
                                  "uasezyl";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i], name))
            return letters[i];
    return 'x';
}

static const char *compact_name(const char *name)
{
    static const char *pairs[][2] = {{"Via", "v"},
                                     {"From", "f"},
                                     {"To", "t"},
                                     {"Call-ID", "i"},
                                     {"Contact", "m"},
                                     {"Content-Type", "c"},
                                     {"Content-Length", "l"},
                                     {"Supported", "k"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (!strcmp(pairs[i][0], name))
            return pairs[i][1];
    return name;
}

/* Renders headers in the family's order (Via lines keep their relative order). */
static size_t render(const sipmsg_t *m, const family_t *fam, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s\r\n", m->start);
    size_t blen = strlen(m->body);
    for (const char *ord = fam->order; *ord; ord++) {
        for (int i = 0; i < m->n; i++) {
            if (order_letter(m->h[i].name) != *ord)
                continue;
            const char *name = fam->compact ? compact_name(m->h[i].name) : m->h[i].name;
            o += (size_t)snprintf(out + o, cap - o, "%s: %s\r\n", name, m->h[i].value);
        }
        if (*ord == 'l')
            o += (size_t)snprintf(out + o, cap - o, "%s: %zu\r\n",
                                  fam->compact ? "l" : "Content-Length", blen);
    }
    o += (size_t)snprintf(out + o, cap - o, "\r\n%s", m->body);
    return o < cap ? o : cap - 1;
}

static void alnums(char *out, int n)
{
    static const char a[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < n; i++)
        out[i] = a[rnd() % 36];
    out[n] = '\0';
}

static void new_branch(const family_t *f, char *out)
{
    char r[24];
    if (!strcmp(f->branch_fmt, "hex"))
        hexs(r, 16);
    else if (!strcmp(f->branch_fmt, "alnum"))
        alnums(r, 12);
    else
        digits(r, 10);
    sprintf(out, "z9hG4bK%s", r);
}

static void new_tag(const family_t *f, char *out)
{
    if (!strcmp(f->branch_fmt, "hex"))
        hexs(out, 10);
    else if (!strcmp(f->branch_fmt, "alnum"))
        alnums(out, 8);
    else
        digits(out, 9);
}

static void sdp(char *out, size_t cap, const user_t *u, const char *mode)
{
    char host[64];
    ep_addr(&u->ep, host, sizeof host);
    const char *ipv = u->ep.family == 6 ? "IP6" : "IP4";
    char sess[16];
    digits(sess, 8);
    int port = 10000 + 2 * irand(0, 5000);
    size_t o =
        (size_t)snprintf(out, cap,
                         "v=0\r\no=%s %s %s IN %s %s\r\ns=%s\r\nc=IN %s %s\r\nt=0 0\r\n"
                         "m=audio %d RTP/AVP %s\r\n",
                         u->fam->compact ? "-" : u->user, sess, sess, ipv, host,
                         u->fam->display ? "SIP Call" : "-", ipv, host, port, u->fam->codecs);
    if (u->fam->rtcp_attr)
        o += (size_t)snprintf(out + o, cap - o, "a=rtcp:%d IN %s %s\r\n", port + 1, ipv, host);
    char codecs[64];
    snprintf(codecs, sizeof codecs, "%s", u->fam->codecs);
    for (char *tok = strtok(codecs, " "); tok; tok = strtok(NULL, " ")) {
        int pt = atoi(tok);
        const char *name = pt == 0    ? "PCMU/8000"
                           : pt == 8  ? "PCMA/8000"
                           : pt == 9  ? "G722/8000"
                           : pt == 18 ? "G729/8000"
                           : pt == 4  ? "G723/8000"
                                      : "telephone-event/8000";
        o += (size_t)snprintf(out + o, cap - o, "a=rtpmap:%d %s\r\n", pt, name);
    }
    if (u->fam->tcp || u->fam->display)
        o += (size_t)snprintf(out + o, cap - o, "a=ptime:20\r\n");
    snprintf(out + o, cap - o, "a=%s\r\n", mode);
}

/* ------------------------------------------------------------ sending */

typedef struct {
    char call_id[96];
    char ftag[24], ttag[24];
    uint32_t cseq;
    user_t *caller, *callee;
} dialog_t;

static const char *g_family = "normal", *g_scenario = "normal";
static bool g_attack;

static void send_msg(double ts, const endpoint_t *src, const endpoint_t *dst, bool tcp,
                     const sipmsg_t *m, const family_t *fam, const char *call_id)
{
    static char buf[8192];
    size_t n = render(m, fam, buf, sizeof buf);
    emit(ts, src, dst, tcp ? TRANSPORT_TCP : TRANSPORT_UDP, buf, n, g_attack, g_family, g_scenario,
         call_id);
}

static void via_of(const user_t *u, const char *branch, char *out, size_t cap)
{
    char host[64];
    ep_host(&u->ep, host, sizeof host);
    snprintf(out, cap, "SIP/2.0/%s %s:%u;branch=%s;rport", u->tcp ? "TCP" : "UDP", host, u->ep.port,
             branch);
}

/* A request from user u to the proxy, and its copy forwarded by the proxy to `to` (if any). */
/* The name-addr of a user as its user agent writes it: with the display name or without. */
static void name_addr(const user_t *u, const family_t *writer, char *buf, size_t cap)
{
    if (writer->display && u->display[0])
        snprintf(buf, cap, "\"%s\" <sip:%s@%s>", u->display, u->user, domain);
    else
        snprintf(buf, cap, "<sip:%s@%s>", u->user, domain);
}

/* The proxy's copy of a request for `to`: its own Via on top, Record-Route, Max-Forwards - 1,
 * and the Request-URI of the callee's registered contact. */
static void forward_request(double ts, const sipmsg_t *m, const char *method, user_t *u, user_t *to,
                            const dialog_t *d)
{
    sipmsg_t f = *m;
    char pbranch[40], host[64], phost[64];
    hexs(pbranch, 16);
    ep_host(&to->ep, host, sizeof host);
    ep_host(proxy_for(to), phost, sizeof phost);
    snprintf(f.start, sizeof f.start, "%s sip:%s@%s:%u SIP/2.0", method, to->user, host,
             to->ep.port);
    memmove(&f.h[1], &f.h[0], (size_t)f.n * sizeof f.h[0]);
    f.n++;
    snprintf(f.h[0].name, sizeof f.h[0].name, "Via");
    snprintf(f.h[0].value, sizeof f.h[0].value, "SIP/2.0/%s %s:5060;branch=z9hG4bK%s",
             to->tcp ? "TCP" : "UDP", phost, pbranch);
    for (int i = 0; i < f.n; i++)
        if (!strcmp(f.h[i].name, "Max-Forwards"))
            snprintf(f.h[i].value, sizeof f.h[i].value, "69");
    if (!strcmp(method, "INVITE") || !strcmp(method, "SUBSCRIBE"))
        hset(&f, "Record-Route", "<sip:%s;lr>", phost);
    send_msg(ts + 0.002, proxy_for(to), &to->ep, to->tcp, &f, u->fam, d->call_id);
}

/* A request from user u to the proxy, and its copy forwarded by the proxy to `to` (if any). */
static void request(double ts, user_t *u, user_t *to, const char *method, const char *ruri_user,
                    dialog_t *d, const char *extra_name, const char *extra, const char *body,
                    const char *ctype, const char *branch_in)
{
    sipmsg_t m = {0};
    char branch[40], via[200], host[64], na[160];
    if (branch_in)
        snprintf(branch, sizeof branch, "%s", branch_in);
    else
        new_branch(u->fam, branch);
    ep_host(&u->ep, host, sizeof host);
    snprintf(m.start, sizeof m.start, "%s sip:%s@%s SIP/2.0", method, ruri_user, domain);
    via_of(u, branch, via, sizeof via);
    hset(&m, "Via", "%s", via);
    hset(&m, "Max-Forwards", "70");
    bool callee_side = d->callee && d->caller != u; /* the callee sends BYE/re-INVITE too */
    name_addr(callee_side ? d->callee : u, u->fam, na, sizeof na);
    hset(&m, "From", "%s;tag=%s", na, callee_side ? d->ttag : d->ftag);
    if (callee_side) {
        name_addr(d->caller, u->fam, na, sizeof na);
        hset(&m, "To", "%s;tag=%s", na, d->ftag);
    } else if (d->callee) {
        name_addr(d->callee, u->fam, na, sizeof na);
        hset(&m, "To", "%s%s%s", na, d->ttag[0] ? ";tag=" : "", d->ttag);
    } else {
        hset(&m, "To", "<sip:%s@%s>%s%s", ruri_user, domain, d->ttag[0] ? ";tag=" : "", d->ttag);
    }
    hset(&m, "Call-ID", "%s", d->call_id);
    hset(&m, "CSeq", "%u %s", d->cseq, method);
    hset(&m, "Contact", "<sip:%s@%s:%u%s>", u->user, host, u->ep.port,
         u->tcp ? ";transport=tcp" : "");
    hset(&m, "User-Agent", "%s", ua_of(u));
    bool dialog_start = !strcmp(method, "INVITE") || !strcmp(method, "REGISTER");
    if (dialog_start)
        hset(&m, "Allow",
             "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO");
    if (dialog_start && u->fam->extra_name)
        hset(&m, u->fam->extra_name, "%s", u->fam->extra_value);
    if (extra_name)
        hset(&m, extra_name, "%s", extra);
    if (body) {
        hset(&m, "Content-Type", "%s", ctype);
        snprintf(m.body, sizeof m.body, "%s", body);
    }
    send_msg(ts, u->wire.family ? &u->wire : &u->ep, proxy_for(u), u->tcp, &m, u->fam, d->call_id);
    if (to)
        forward_request(ts, &m, method, u, to, d);
}

/* A response from the proxy or from user `from` back to user `to` (both legs when both). */
static void response(double ts, user_t *from, user_t *to, int code, const char *reason,
                     const char *method, dialog_t *d, bool with_to_tag, const char *extra_name,
                     const char *extra, const char *body)
{
    sipmsg_t m = {0};
    const family_t *fam = from ? from->fam : to->fam;
    if (with_to_tag && !d->ttag[0]) /* the responder's tag, made once per dialog */
        hexs(d->ttag, 8);
    snprintf(m.start, sizeof m.start, "SIP/2.0 %d %s", code, reason);
    char via[200], branch[40], addr[64];
    new_branch(to->fam, branch);
    via_of(to, branch, via, sizeof via);
    ep_addr(&to->ep, addr, sizeof addr);
    hset(&m, "Via", "%s;received=%s", via, addr);
    bool caller_side = to == d->caller;
    user_t *f_user = caller_side ? d->caller : (d->callee ? d->callee : to);
    char na[160];
    name_addr(f_user, fam, na, sizeof na);
    hset(&m, "From", "%s;tag=%s", na, caller_side ? d->ftag : d->ttag);
    name_addr(d->callee && caller_side ? d->callee : to, fam, na, sizeof na);
    hset(&m, "To", "%s%s%s", na, with_to_tag ? ";tag=" : "", with_to_tag ? d->ttag : "");
    hset(&m, "Call-ID", "%s", d->call_id);
    hset(&m, "CSeq", "%u %s", d->cseq, method);
    if (from)
        hset(&m, "User-Agent", "%s", ua_of(from));
    else
        hset(&m, "User-Agent", "Kamailio (5.6.3 (x86_64/linux))");
    if (extra_name)
        hset(&m, extra_name, "%s", extra);
    if (body) {
        hset(&m, "Content-Type", "application/sdp");
        snprintf(m.body, sizeof m.body, "%s", body);
    }
    if (from)
        send_msg(ts, &from->ep, proxy_for(from), from->tcp, &m, fam, d->call_id);
    send_msg(ts + (from ? 0.002 : 0), proxy_for(to), &to->ep, to->tcp, &m, fam, d->call_id);
}

/* ------------------------------------------------------------ normal flows */

/* Call holding time: exponential (mean 120 s), or generalised Pareto (scale 60 s, shape 0.4:
 * a heavy tail of long calls, as measured in telephony traffic). */
static double holding_time(const gen_opts_t *o)
{
    if (o->pareto) {
        const double xi = 0.4, sigma = 60.0;
        return sigma / xi * (pow(1.0 - uni(), -xi) - 1.0);
    }
    return expo(120);
}

static void md5_hex(const char *s, char out[33])
{
    osip_MD5_CTX c;
    unsigned char d[16];
    osip_MD5Init(&c);
    osip_MD5Update(&c, (unsigned char *)s, (unsigned int)strlen(s));
    osip_MD5Final(d, &c);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void digest_response(const char *user, const char *pass, const char *nonce,
                            const char *method, const char *uri, char out[33])
{
    char buf[512], ha1[33], ha2[33];
    snprintf(buf, sizeof buf, "%s:%s:%s", user, domain, pass);
    md5_hex(buf, ha1);
    snprintf(buf, sizeof buf, "%s:%s", method, uri);
    md5_hex(buf, ha2);
    snprintf(buf, sizeof buf, "%s:%s:%s", ha1, nonce, ha2);
    md5_hex(buf, out);
}

static void new_dialog(dialog_t *d, user_t *caller, user_t *callee)
{
    memset(d, 0, sizeof *d);
    char r[40];
    if (!strcmp(caller->fam->branch_fmt, "hex")) {
        hexs(r, 32);
        snprintf(d->call_id, sizeof d->call_id, "%s", r);
    } else {
        digits(r, 12);
        snprintf(d->call_id, sizeof d->call_id, "%s@%u.%u.%u.%u", r, caller->ep.addr[0],
                 caller->ep.addr[1], caller->ep.addr[2], caller->ep.addr[3]);
    }
    new_tag(caller->fam, d->ftag);
    d->cseq = (uint32_t)irand(1, 30000);
    d->caller = caller;
    d->callee = callee;
}

static void do_register(double t, user_t *u, int expires, const char *password)
{
    dialog_t d;
    new_dialog(&d, u, NULL);
    char exp[16];
    snprintf(exp, sizeof exp, "%d", expires);
    request(t, u, NULL, "REGISTER", u->user, &d, "Expires", exp, NULL, NULL, NULL);
    char nonce[40], chal[200];
    hexs(nonce, 32);
    snprintf(chal, sizeof chal, "Digest realm=\"%s\", nonce=\"%s\", algorithm=MD5", domain, nonce);
    response(t + 0.01, NULL, u, 401, "Unauthorized", "REGISTER", &d, true, "WWW-Authenticate", chal,
             NULL);
    d.cseq++;
    char uri[64], resp[33], auth[400];
    snprintf(uri, sizeof uri, "sip:%s", domain);
    digest_response(u->user, password, nonce, "REGISTER", uri, resp);
    snprintf(auth, sizeof auth,
             "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\", "
             "algorithm=MD5",
             u->user, domain, nonce, uri, resp);
    d.ttag[0] = '\0';
    request(t + 0.05, u, NULL, "REGISTER", u->user, &d, "Authorization", auth, NULL, NULL, NULL);
    bool ok = !strcmp(password, u->pass);
    response(t + 0.06, NULL, u, ok ? 200 : 403, ok ? "OK" : "Forbidden", "REGISTER", &d, true,
             ok ? "Expires" : NULL, exp, NULL);
}

static void do_options(double t, user_t *u)
{
    dialog_t d;
    new_dialog(&d, u, NULL);
    request(t, u, NULL, "OPTIONS", "keepalive", &d, NULL, NULL, NULL, NULL, NULL);
    response(t + 0.004, NULL, u, 200, "OK", "OPTIONS", &d, true, NULL, NULL, NULL);
}

static void do_message(double t, user_t *a, user_t *b)
{
    dialog_t d;
    new_dialog(&d, a, b);
    static const char *texts[] = {"are you there?", "call me back please", "ok, see you at 3",
                                  "meeting moved to room 4"};
    request(t, a, b, "MESSAGE", b->user, &d, NULL, NULL, texts[rnd() % 4], "text/plain", NULL);
    new_tag(b->fam, d.ttag);
    response(t + 0.05, b, a, 200, "OK", "MESSAGE", &d, true, NULL, NULL, NULL);
}

static void do_presence(double t, user_t *a, user_t *b)
{
    dialog_t d;
    new_dialog(&d, a, b);
    request(t, a, b, "SUBSCRIBE", b->user, &d, "Event", "presence", NULL, NULL, NULL);
    new_tag(b->fam, d.ttag);
    response(t + 0.05, b, a, 200, "OK", "SUBSCRIBE", &d, true, "Expires", "3600", NULL);
    dialog_t n = d;
    n.caller = b;
    n.callee = a;
    snprintf(n.ftag, sizeof n.ftag, "%s", d.ttag);
    snprintf(n.ttag, sizeof n.ttag, "%s", d.ftag);
    n.cseq = (uint32_t)irand(1, 1000);
    char pidf[400];
    snprintf(pidf, sizeof pidf,
             "<?xml version=\"1.0\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
             "entity=\"sip:%s@%s\"><tuple id=\"t1\"><status><basic>open</basic></status>"
             "</tuple></presence>\r\n",
             b->user, domain);
    request(t + 0.1, b, a, "NOTIFY", a->user, &n, "Subscription-State", "active;expires=3600", pidf,
            "application/pidf+xml", NULL);
    response(t + 0.15, a, b, 200, "OK", "NOTIFY", &n, true, NULL, NULL, NULL);
}

static bool in_call(const user_t *u, double t)
{
    int n = u->n_calls < 16 ? u->n_calls : 16;
    for (int i = 0; i < n; i++)
        if (t >= u->call_start[i] && t < u->call_end[i])
            return true;
    return false;
}

static void add_call(user_t *u, double start, double end)
{
    int slot = u->n_calls++ % 16; /* the oldest is forgotten: a user has few calls at once */
    u->call_start[slot] = start;
    u->call_end[slot] = end;
}

/* Names the dialog type of the normal messages emitted since `first` (one call). */
static void label_call(size_t first, const char *type)
{
    for (size_t i = first; i < n_events; i++)
        if (!events[i].attack)
            events[i].scenario = type;
}

static void do_call(double t, user_t *a, user_t *b, const gen_opts_t *o, FILE *cdr)
{
    size_t first = n_events;
    bool held = false;
    dialog_t d;
    new_dialog(&d, a, b);
    char body[1024];
    sdp(body, sizeof body, a, "sendrecv");
    char branch[40];
    new_branch(a->fam, branch);
    request(t, a, b, "INVITE", b->user, &d, "Session-Expires", "1800;refresher=uac", body,
            "application/sdp", branch);
    response(t + 0.003, NULL, a, 100, "Trying", "INVITE", &d, false, NULL, NULL, NULL);
    new_tag(b->fam, d.ttag);
    const char *cause;
    double end = t;
    double ring = 2 + uni() * 13;
    if (in_call(b, t)) {
        response(t + 0.08, b, a, 486, "Busy Here", "INVITE", &d, true, NULL, NULL, NULL);
        cause = "busy";
    } else {
        response(t + 0.05, b, a, 180, "Ringing", "INVITE", &d, true, NULL, NULL, NULL);
        double u = uni();
        if (!o->without[FLOW_CANCEL] && u < 0.10) {
            double tc = t + ring * 0.7;
            request(tc, a, b, "CANCEL", b->user, &d, NULL, NULL, NULL, NULL, branch);
            response(tc + 0.01, b, a, 200, "OK", "CANCEL", &d, true, NULL, NULL, NULL);
            response(tc + 0.02, b, a, 487, "Request Terminated", "INVITE", &d, true, NULL, NULL,
                     NULL);
            cause = "cancelled";
            end = tc;
        } else if (u < 0.28) { /* with busy callees, about 70 % of calls are answered */
            response(t + ring, b, a, u < 0.22 ? 480 : 603,
                     u < 0.22 ? "Temporarily Unavailable" : "Decline", "INVITE", &d, true, NULL,
                     NULL, NULL);
            cause = u < 0.22 ? "unavailable" : "declined";
            end = t + ring;
        } else {
            char ans[1024];
            sdp(ans, sizeof ans, b, "sendrecv");
            double ta = t + ring;
            response(ta, b, a, 200, "OK", "INVITE", &d, true, NULL, NULL, ans);
            request(ta + 0.05, a, b, "ACK", b->user, &d, NULL, NULL, NULL, NULL, NULL);
            double hold = holding_time(o);
            add_call(a, ta, ta + hold);
            add_call(b, ta, ta + hold);
            if (!o->without[FLOW_HOLD] && uni() < 0.25 && hold > 10) {
                held = true;
                for (int k = 0; k < 2; k++) { /* hold, then resume */
                    d.cseq++;
                    double th = ta + hold * (k ? 0.6 : 0.3);
                    char re[1024];
                    sdp(re, sizeof re, a, k ? "sendrecv" : "sendonly");
                    request(th, a, b, "INVITE", b->user, &d, NULL, NULL, re, "application/sdp",
                            NULL);
                    sdp(ans, sizeof ans, b, k ? "sendrecv" : "recvonly");
                    response(th + 0.05, b, a, 200, "OK", "INVITE", &d, true, NULL, NULL, ans);
                    request(th + 0.1, a, b, "ACK", b->user, &d, NULL, NULL, NULL, NULL, NULL);
                }
            }
            d.cseq++;
            request(ta + hold, a, b, "BYE", b->user, &d, NULL, NULL, NULL, NULL, NULL);
            response(ta + hold + 0.04, b, a, 200, "OK", "BYE", &d, true, NULL, NULL, NULL);
            cause = "answered";
            end = ta + hold;
            label_call(first, held ? "call-hold" : (a->tcp || b->tcp) ? "call-tcp" : "call");
            if (cdr)
                fprintf(cdr, "%s,%s,%.6f,%.6f,%.6f,%s\n", a->user, b->user, t, ta, end, cause);
            return;
        }
    }
    label_call(first, !strcmp(cause, "busy")        ? "call-busy"
                      : !strcmp(cause, "cancelled") ? "call-cancel"
                                                    : "call-rejected");
    if (cdr)
        fprintf(cdr, "%s,%s,%.6f,,%.6f,%s\n", a->user, b->user, t, end, cause);
}

/* ------------------------------------------------------------ population */

static const char *first_names[] = {
    "Alice",   "Bob",  "Carol",  "David", "Eve",    "Frank", "Grace", "Heidi",  "Ivan",   "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yasmin"};
static const char *last_names[] = {"Smith", "Jones",    "Müller",   "García",  "Rossi",    "Dubois",
                                   "Novak", "Kowalski", "Andersen", "O'Brien", "Nakamura", "Silva"};

/* "alice.garcia7": lower-case ASCII letters of the names, and a number that keeps it unique. */
static void ascii_login(char *out, size_t cap, const char *first, const char *last, int i)
{
    size_t o = 0;
    for (const char *p = first; *p && o + 1 < cap; p++)
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            out[o++] = (char)(*p | 0x20);
    if (o + 1 < cap)
        out[o++] = '.';
    for (const char *p = last; *p && o + 1 < cap; p++)
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            out[o++] = (char)(*p | 0x20);
    snprintf(out + o, cap - o, "%d", i);
}

/* Users are named as in real deployments: extensions, first.last, or E.164 numbers. */
static void name_user(user_t *u, int i)
{
    const char *f = first_names[rnd() % (sizeof first_names / sizeof *first_names)];
    const char *l = last_names[rnd() % (sizeof last_names / sizeof *last_names)];
    double style = uni();
    if (style < 0.5)
        snprintf(u->user, sizeof u->user, "%d", 1000 + i);
    else if (style < 0.8)
        ascii_login(u->user, sizeof u->user, f, l, i);
    else
        snprintf(u->user, sizeof u->user, "+4930%07d", 1000000 + i * 7);
    if (uni() < 0.8)
        snprintf(u->display, sizeof u->display, "%s %s", f, l);
}

static user_t *make_users(const gen_opts_t *o)
{
    user_t *u = calloc((size_t)o->users, sizeof *u);
    int clique = 0, left = irand(o->clique_min, o->clique_max);
    for (int i = 0; i < o->users; i++) {
        u[i].id = i;
        name_user(&u[i], i);
        snprintf(u[i].pass, sizeof u[i].pass, "pw%05d%04d", (int)(rnd() % 100000), i);
        u[i].fam = &families[rnd() % (uint64_t)N_FAMILIES];
        snprintf(u[i].ua, sizeof u[i].ua, u[i].fam->ua_fmt, irand(1, 12), irand(0, 9),
                 irand(0, 40));
        u[i].tcp = u[i].fam->tcp && !o->without[FLOW_TCP];
        uint16_t port = (uint16_t)(u[i].fam->compact ? irand(40000, 60000) : 5060);
        if (!o->without[FLOW_IPV6] && uni() < 0.15)
            u[i].ep = ep6(1, 2 + i, port);
        else
            u[i].ep = ep4(10, 1, 2 + i / 250, 2 + i % 250, port);
        if (left-- == 0) {
            clique++;
            left = irand(o->clique_min, o->clique_max) - 1;
        }
        u[i].clique = clique;
    }
    return u;
}

static user_t *pick_callee(user_t *users, int n, user_t *a, double p_social)
{
    if (uni() < p_social) {
        int same[64], k = 0;
        for (int i = a->id - 8; i <= a->id + 8; i++)
            if (i >= 0 && i < n && i != a->id && users[i].clique == a->clique && k < 64)
                same[k++] = i;
        if (k)
            return &users[same[rnd() % (uint64_t)k]];
    }
    user_t *b;
    do
        b = &users[rnd() % (uint64_t)n];
    while (b == a && n > 1);
    return b;
}

static void gen_normal(const gen_opts_t *o, user_t *users, FILE *cdr)
{
    g_attack = false;
    g_family = "normal";
    g_scenario = "normal";
    for (int i = 0; i < o->users; i++) {
        user_t *u = &users[i];
        double t = uni() * 30;
        g_scenario = "register";
        do_register(t, u, 3600, u->pass);
        g_scenario = "rereg";
        if (!o->without[FLOW_REREG])
            for (double r = t + 1800 + uni() * 60; r < o->duration; r += 1800)
                do_register(r, u, 3600, u->pass);
        g_scenario = "presence";
        if (!o->without[FLOW_PRESENCE] && uni() < 0.3 && o->users > 1)
            do_presence(t + 1 + uni() * 5, u, pick_callee(users, o->users, u, 1.0));
        g_scenario = "options";
        if (!o->without[FLOW_OPTIONS])
            for (double k = t + 30 + uni() * 30; k < o->duration; k += 60 + uni() * 30)
                if (u->fam->compact || u->tcp)
                    do_options(k, u);
        double rate = o->call_rate / 3600.0;
        for (double c = t + 5 + expo(1 / rate); c < o->duration; c += expo(1 / rate)) {
            user_t *b = pick_callee(users, o->users, u, o->p_social);
            if (b == u)
                continue;
            g_scenario = "message";
            if (!o->without[FLOW_MESSAGE] && uni() < 0.15)
                do_message(c, u, b);
            else
                do_call(c, u, b, o, cdr);
        }
    }
    g_scenario = "normal";
}

/* ------------------------------------------------------------ attacks */

static user_t attacker(int a, int b, const char *ua, uint16_t port)
{
    static family_t fam;
    user_t u = {0};
    fam = families[0];
    fam.ua = ua;
    u.fam = &fam;
    u.ep = ep4(203, 0, a, b, port);
    snprintf(u.user, sizeof u.user, "%d", 100 + b);
    return u;
}

/* Label strings made at run time live here until the output is written. */
static char *label_pool[128];
static int label_pool_n;

static const char *intern(const char *s)
{
    for (int i = 0; i < label_pool_n; i++)
        if (!strcmp(label_pool[i], s))
            return label_pool[i];
    if (label_pool_n == (int)(sizeof label_pool / sizeof *label_pool))
        return "other";
    label_pool[label_pool_n] = strdup(s);
    return label_pool[label_pool_n] ? label_pool[label_pool_n++] : "other";
}

static void free_labels(void)
{
    for (int i = 0; i < label_pool_n; i++)
        free(label_pool[i]);
    label_pool_n = 0;
}

static void label(const char *family, const char *scenario)
{
    g_attack = true;
    g_family = family;
    g_scenario = scenario;
}

/* ------------------------------------------------------------ attack tools
 *
 * Attack tools do not write SIP like phones do; each has a format of its own, and that is
 * what makes "a client tool training never saw" visible. These follow what SIPVicious
 * (svmap, svwar, svcrack) and SIPp's built-in uac scenario put on the wire.
 */

typedef struct {
    char via[256], from[256], to[256], call_id[128], cseq[48];
} tool_dialog_t;

/* The registrar's short answer to a tool's request, echoing its dialog headers. */
static void tool_reply(double t, const endpoint_t *tool, const tool_dialog_t *d, int code,
                       const char *reason, const char *extra)
{
    char buf[2048], paddr[64];
    ep_addr(tool, paddr, sizeof paddr);
    int n = snprintf(buf, sizeof buf,
                     "SIP/2.0 %d %s\r\nVia: %s;received=%s\r\nFrom: %s\r\nTo: %s;tag=%08llx\r\n"
                     "Call-ID: %s\r\nCSeq: %s\r\n%sServer: Kamailio (5.6.3 (x86_64/linux))\r\n"
                     "Content-Length: 0\r\n\r\n",
                     code, reason, d->via, paddr, d->from, d->to,
                     (unsigned long long)(rnd() & 0xffffffffULL), d->call_id, d->cseq,
                     extra ? extra : "");
    emit(t, &proxy_ep, tool, TRANSPORT_UDP, buf, (size_t)n, true, g_family, g_scenario, d->call_id);
}

/* A SIPVicious request: its header order, quoting and spacing, its long hex tags. */
static void tool_sipvicious(double t, const endpoint_t *src, const char *method, const char *ext,
                            const char *ua, const char *auth, tool_dialog_t *d)
{
    char dst[64], host[64], tag[64], num[16];
    ep_host(&proxy_ep, dst, sizeof dst);
    ep_host(src, host, sizeof host);
    hexs(tag, 32 + irand(0, 16));
    digits(num, 10);
    snprintf(d->via, sizeof d->via, "SIP/2.0/UDP %s:%u;branch=z9hG4bK-%s;rport", host, src->port,
             num);
    snprintf(d->from, sizeof d->from, "\"%s\"<sip:%s@%s>; tag=%s", ext, ext, dst, tag);
    snprintf(d->to, sizeof d->to, "\"%s\"<sip:%s@%s>", ext, ext, dst);
    digits(d->call_id, 20 + irand(0, 6));
    snprintf(d->cseq, sizeof d->cseq, "1 %s", method);
    char buf[2048];
    int n =
        snprintf(buf, sizeof buf,
                 "%s sip:%s@%s SIP/2.0\r\nVia: %s\r\nContent-Length: 0\r\nFrom: %s\r\n"
                 "Accept: application/sdp\r\nUser-Agent: %s\r\nTo: %s\r\n"
                 "Contact: sip:%s@%s:%u\r\nCSeq: %s\r\nCall-ID: %s\r\nMax-Forwards: 70\r\n"
                 "%s%s%s\r\n",
                 method, ext, dst, d->via, d->from, ua, d->to, ext, host, src->port, d->cseq,
                 d->call_id, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    emit(t, src, &proxy_ep, TRANSPORT_UDP, buf, (size_t)n, true, g_family, g_scenario, d->call_id);
}

/* SIPp's built-in uac scenario: INVITE with its fixed Subject, tags and SDP. */
static void tool_sipp(double t, const endpoint_t *src, const char *method, const char *service,
                      int call_no, tool_dialog_t *d)
{
    char dst[64], host[64], addr[64];
    ep_host(&proxy_ep, dst, sizeof dst);
    ep_host(src, host, sizeof host);
    ep_addr(src, addr, sizeof addr);
    int pid = 1000 + (int)(rnd() % 30000);
    snprintf(d->via, sizeof d->via, "SIP/2.0/UDP %s:%u;branch=z9hG4bK-%d-%d-0", host, src->port,
             pid, call_no);
    snprintf(d->from, sizeof d->from, "sipp <sip:sipp@%s:%u>;tag=%dSIPpTag00%d", host, src->port,
             pid, call_no);
    snprintf(d->to, sizeof d->to, "%s <sip:%s@%s:5060>", service, service, dst);
    snprintf(d->call_id, sizeof d->call_id, "%d-%d@%s", call_no, pid, addr);
    snprintf(d->cseq, sizeof d->cseq, "1 %s", method);
    char sdpb[256], buf[2048];
    int sl = snprintf(sdpb, sizeof sdpb,
                      "v=0\r\no=user1 53655765 2353687637 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\n"
                      "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                      addr, addr);
    bool invite = !strcmp(method, "INVITE");
    int n = snprintf(buf, sizeof buf,
                     "%s sip:%s@%s:5060 SIP/2.0\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\n"
                     "Call-ID: %s\r\nCSeq: %s\r\nContact: sip:sipp@%s:%u\r\nMax-Forwards: 70\r\n"
                     "Subject: Performance Test\r\n%sContent-Length: %d\r\n\r\n%s",
                     method, service, dst, d->via, d->from, d->to, d->call_id, d->cseq, host,
                     src->port, invite ? "Content-Type: application/sdp\r\n" : "", invite ? sl : 0,
                     invite ? sdpb : "");
    emit(t, src, &proxy_ep, TRANSPORT_UDP, buf, (size_t)n, true, g_family, g_scenario, d->call_id);
}

static void atk_scan(const gen_opts_t *o, double t0)
{
    static const char *disguises[] = {"sipcli/v1.8", "VaxSIPUserAgent/3.1", "Cisco v11.0.0",
                                      "Zoiper rv2.8.20"};
    int n = (int)(200 * o->attack_scale);
    for (int s = 0; s < 3; s++) {
        endpoint_t src = ep4(203, 0, 113, 10 + s, (uint16_t)irand(5060, 5070));
        const char *method = s == 0 ? "OPTIONS" : s == 1 ? "REGISTER" : "INVITE";
        /* svmap and svwar say who they are; the third scanner hides its tool name */
        const char *ua = s < 2 ? "friendly-scanner" : disguises[rnd() % 4];
        label(s == 0   ? "scan-options"
              : s == 1 ? "scan-register"
                       : "scan-invite",
              s == 2 ? "extension-scan-disguised" : "extension-scan");
        for (int i = 0; i < n; i++) {
            double t = t0 + s * 20 + i * 0.02;
            char ext[16];
            snprintf(ext, sizeof ext, "%d", 100 + i);
            tool_dialog_t d;
            tool_sipvicious(t, &src, method, ext, ua, NULL, &d);
            tool_reply(
                t + 0.003, &src, &d, s == 1 ? 401 : 404, s == 1 ? "Unauthorized" : "Not Found",
                s == 1 ? "WWW-Authenticate: Digest realm=\"example.net\", nonce=\"1\"\r\n" : NULL);
        }
    }
}

/* svcrack: REGISTER after REGISTER with a new password guess in the digest. */
static void atk_guess(const gen_opts_t *o, user_t *users, double t0)
{
    int n = (int)(150 * o->attack_scale);
    for (int k = 0; k < 2; k++) {
        endpoint_t src = ep4(203, 0, 113, 20 + k, 5061);
        const char *ua = k == 0 ? "friendly-scanner" : "Zoiper rv2.8.20"; /* disguised */
        label("guess-register", k == 0 ? "password-guessing" : "password-guessing-disguised");
        const user_t *victim = &users[k % (o->users ? o->users : 1)];
        for (int i = 0; i < n / 2; i++) {
            char nonce[40], uri[128], resp[33], auth[512], guess[16], dst[64];
            hexs(nonce, 32);
            ep_host(&proxy_ep, dst, sizeof dst);
            snprintf(guess, sizeof guess, "%d", 1000 + i);
            snprintf(uri, sizeof uri, "sip:%s@%s", victim->user, dst);
            digest_response(victim->user, guess, nonce, "REGISTER", uri, resp);
            snprintf(auth, sizeof auth,
                     "Digest username=\"%s\",realm=\"%s\",nonce=\"%s\",uri=\"%s\","
                     "response=\"%s\",algorithm=MD5",
                     victim->user, domain, nonce, uri, resp);
            tool_dialog_t d;
            double t = t0 + k * 30 + i * 0.1;
            tool_sipvicious(t, &src, "REGISTER", victim->user, ua, auth, &d);
            tool_reply(t + 0.003, &src, &d, 403, "Forbidden", NULL);
        }
    }
}

/*
 * The five window scenarios of the INVITE-flood evaluation: the flood at the end of the
 * capture (a), at the start (b), throughout (c), at the start and at the end with
 * legitimate traffic alone in the middle (d), or not at all (e). Each of the six rate
 * classes (10 to 1000 messages/s) is a burst placed evenly inside the windows; bursts
 * alternate one source and many spoofed sources, and every third one ramps its rate up
 * from a tenth to the full rate instead of holding it.
 */
static void atk_flood(const gen_opts_t *o, user_t *users, double duration)
{
    static const int rates[] = {10, 25, 50, 100, 500, 1000};
    char w = o->flood_window;
    if (w == 'e')
        return;
    double burst = 2.0 * o->attack_scale;
    double lo = 0, hi = duration;
    if (w == 'a')
        lo = 0.8 * duration;
    else if (w == 'b' || w == 'd')
        hi = 0.2 * duration;
    for (int r = 0; r < 6; r++) {
        double wlo = lo, whi = hi;
        if (w == 'd' && r % 2) { /* the other half of the bursts go to the closing window */
            wlo = 0.8 * duration;
            whi = duration;
        }
        double start = wlo + (whi - wlo - burst) * (r / 6.0);
        if (start < wlo)
            start = wlo;
        bool ddos = r % 2 == 1, ramp = r % 3 == 2;
        char scen[64];
        snprintf(scen, sizeof scen, "window-%c/rate-%d/%s/%s", w, rates[r],
                 ddos ? "distributed" : "single", ramp ? "increasing" : "constant");
        label(ddos ? "flood-invite-ddos" : (r == 4 ? "flood-register" : "flood-invite"),
              intern(scen));
        int n = (int)(rates[r] * burst);
        if (n < 20)
            n = 20;
        double t = start;
        for (int i = 0; i < n; i++) {
            /* ramp: instantaneous rate grows linearly from rate/10 to rate */
            double rate = ramp ? rates[r] * (0.1 + 0.9 * i / (double)n) : rates[r];
            t += 1.0 / rate;
            endpoint_t src = ep4(203, 0, 114, ddos ? 1 + (int)(rnd() % 250) : 5, 5061);
            user_t *v = &users[rnd() % (uint64_t)o->users];
            tool_dialog_t d;
            if (r == 4) {
                tool_sipp(t, &src, "REGISTER", v->user, i + 1, &d);
                tool_reply(t + 0.002, &src, &d, 401, "Unauthorized",
                           "WWW-Authenticate: Digest realm=\"example.net\", nonce=\"1\"\r\n");
                continue;
            }
            tool_sipp(t, &src, "INVITE", v->user, i + 1, &d);
            tool_reply(t + 0.002, &src, &d, 100, "Trying", NULL);
            if (uni() < 0.3) /* answered, never acknowledged: a half-open session */
                tool_reply(t + 0.5, &src, &d, 200, "OK", NULL);
        }
    }
}

/* A re-INVITE into another user's dialog from a foreign address, redirecting the media. */
static void atk_hijack(const gen_opts_t *o, user_t *users, double t0)
{
    label("hijack-reinvite", "dialog-hijack");
    int n = (int)(30 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t *a = &users[rnd() % (uint64_t)o->users], *b = &users[rnd() % (uint64_t)o->users];
        user_t fake = *a;
        fake.ep = ep4(198, 51, 100, (uint8_t)(100 + i % 100), a->ep.port);
        dialog_t d;
        new_dialog(&d, a, b);
        new_tag(b->fam, d.ttag);
        d.cseq += 2;
        char body[1024];
        sdp(body, sizeof body, &fake, "sendrecv");
        request(t0 + i * 0.9, &fake, b, "INVITE", b->user, &d, NULL, NULL, body, "application/sdp",
                NULL);
    }
}

/* REFER that transfers a call to a premium-rate number (toll fraud). */
static void atk_refer(const gen_opts_t *o, user_t *users, double t0)
{
    label("refer-abuse", "transfer-to-premium");
    user_t a = attacker(117, 3, "Asterisk PBX 13.1.0", 5060);
    int n = (int)(30 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t *b = &users[rnd() % (uint64_t)o->users];
        dialog_t d;
        new_dialog(&d, &a, b);
        char target[96];
        snprintf(target, sizeof target, "<sip:+88213%06d@premium.example>", irand(0, 999999));
        request(t0 + i * 1.1, &a, b, "REFER", b->user, &d, "Refer-To", target, NULL, NULL, NULL);
    }
}

/* A REGISTER with a user's valid Authorization, replayed from another address. */
static void atk_replay(const gen_opts_t *o, user_t *users, double t0)
{
    label("replay-register", "replayed-authorization");
    int n = (int)(20 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t v = users[rnd() % (uint64_t)o->users];
        v.ep = ep4(198, 51, 100, 200, 5060);
        dialog_t d;
        new_dialog(&d, &v, NULL);
        char nonce[40], uri[64], resp[33], auth[400];
        hexs(nonce, 32);
        snprintf(uri, sizeof uri, "sip:%s", domain);
        digest_response(v.user, v.pass, nonce, "REGISTER", uri, resp);
        snprintf(auth, sizeof auth,
                 "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                 "response=\"%s\", algorithm=MD5",
                 v.user, domain, nonce, uri, resp);
        request(t0 + i * 2.0, &v, NULL, "REGISTER", v.user, &d, "Authorization", auth, NULL, NULL,
                NULL);
        response(t0 + i * 2.0 + 0.003, NULL, &v, 401, "Unauthorized", "REGISTER", &d, true,
                 "WWW-Authenticate", "Digest realm=\"example.net\", nonce=\"0\", stale=true", NULL);
    }
}

/*
 * Toll fraud from a stolen account: the attacker registers as a user, with the user's own
 * password, from an address of its own (the registrar answers 200 OK, so to the flood detector
 * the address is a registered source, judged by the thresholds of the site's own users), then
 * dials premium-rate numbers abroad in bursts of 2, 5, 10 and 25 calls a second, 30 s apart.
 * Each call is answered at once (premium lines pick up) and hung up 20-60 s on.
 */
static void atk_fraud(const gen_opts_t *o, user_t *users, double t0)
{
    static const int rates[] = {2, 5, 10, 25};
    user_t v = users[rnd() % (uint64_t)o->users], gw = v;
    v.ep = ep4(198, 51, 100, 77, 5060);
    v.tcp = false;
    memset(&v.wire, 0, sizeof v.wire);
    gw.ep = ep4(192, 0, 2, 200, 5060); /* the carrier's gateway, in the answers' SDP */
    label("fraud", "register-stolen-credentials");
    do_register(t0, &v, 3600, v.pass);
    double t = t0 + 5;
    for (int r = 0; r < 4; r++) {
        char scen[64];
        /* not "rate-N": the flood evaluation's rate classes are the floods' */
        snprintf(scen, sizeof scen, "calls-%d-a-second/registered-account", rates[r]);
        label("fraud", intern(scen));
        int n = (int)(rates[r] * 4 * o->attack_scale);
        if (n < 20)
            n = 20;
        for (int i = 0; i < n; i++, t += 1.0 / rates[r]) {
            dialog_t d;
            new_dialog(&d, &v, NULL);
            char number[24], body[1024], ans[1024];
            snprintf(number, sizeof number, "00881%08u", (unsigned)(rnd() % 100000000u));
            sdp(body, sizeof body, &v, "sendrecv");
            sdp(ans, sizeof ans, &gw, "sendrecv");
            request(t, &v, NULL, "INVITE", number, &d, NULL, NULL, body, "application/sdp", NULL);
            response(t + 0.003, NULL, &v, 100, "Trying", "INVITE", &d, false, NULL, NULL, NULL);
            response(t + 0.6, NULL, &v, 200, "OK", "INVITE", &d, true, NULL, NULL, ans);
            request(t + 0.65, &v, NULL, "ACK", number, &d, NULL, NULL, NULL, NULL, NULL);
            double hold = 20 + uni() * 40;
            d.cseq++;
            request(t + 0.6 + hold, &v, NULL, "BYE", number, &d, NULL, NULL, NULL, NULL, NULL);
            response(t + 0.64 + hold, NULL, &v, 200, "OK", "BYE", &d, true, NULL, NULL, NULL);
        }
        t += 30;
    }
}

static void atk_spit(const gen_opts_t *o, user_t *users, double t0)
{
    user_t a = attacker(115, 7, "Asterisk PBX 1.6.0.10", 5060);
    a.fam = &families[3];
    label("spit", "many-short-calls");
    int n = (int)(60 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t *b = &users[i % o->users];
        dialog_t d;
        new_dialog(&d, &a, b);
        double t = t0 + i * 0.5;
        char body[1024];
        sdp(body, sizeof body, &a, "sendrecv");
        request(t, &a, b, "INVITE", b->user, &d, NULL, NULL, body, "application/sdp", NULL);
        new_tag(b->fam, d.ttag);
        char ans[1024];
        sdp(ans, sizeof ans, b, "sendrecv");
        response(t + 1, b, &a, 200, "OK", "INVITE", &d, true, NULL, NULL, ans);
        request(t + 1.05, &a, b, "ACK", b->user, &d, NULL, NULL, NULL, NULL, NULL);
        d.cseq++;
        request(t + 4, &a, b, "BYE", b->user, &d, NULL, NULL, NULL, NULL, NULL);
    }
}

/* Spoofed teardown: a BYE or CANCEL for another user's dialog from a foreign address. */
static void atk_teardown(const gen_opts_t *o, user_t *users, double t0, bool bye)
{
    label(bye ? "spoof-bye" : "spoof-cancel", "dialog-teardown");
    int n = (int)(40 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t *a = &users[rnd() % (uint64_t)o->users], *b = &users[rnd() % (uint64_t)o->users];
        user_t fake = *a;
        fake.ep = ep4(198, 51, 100, (uint8_t)(10 + i % 200), 5060);
        dialog_t d;
        new_dialog(&d, a, b);
        new_tag(b->fam, d.ttag);
        request(t0 + i * 0.7, &fake, b, bye ? "BYE" : "CANCEL", b->user, &d, NULL, NULL, NULL, NULL,
                NULL);
    }
}

static void atk_dereg(const gen_opts_t *o, user_t *users, double t0)
{
    label("dereg", "forced-deregistration");
    int n = (int)(30 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t v = users[rnd() % (uint64_t)o->users];
        v.ep = ep4(198, 51, 100, 77, 5070);
        dialog_t d;
        new_dialog(&d, &v, NULL);
        request(t0 + i * 1.3, &v, NULL, "REGISTER", v.user, &d, "Expires", "0", NULL, NULL, NULL);
    }
}

/* A known user's identity and Via/Contact addresses, sent from a different host. */
static void atk_spoof(const gen_opts_t *o, user_t *users, double t0)
{
    label("spoof-via", "via-contact-mismatch");
    int n = (int)(40 * o->attack_scale);
    for (int i = 0; i < n; i++) {
        user_t *a = &users[rnd() % (uint64_t)o->users], *b = &users[rnd() % (uint64_t)o->users];
        if (a->ep.family != 4)
            continue;
        user_t fake = *a;
        fake.wire = ep4(192, 0, 2, 1 + i % 250, a->ep.port);
        fake.tcp = false;
        dialog_t d;
        new_dialog(&d, &fake, b);
        char body[1024];
        sdp(body, sizeof body, &fake, "sendrecv");
        request(t0 + i, &fake, b, "INVITE", b->user, &d, NULL, NULL, body, "application/sdp", NULL);
    }
}

/* Fuzzer-style malformed messages, each from a valid INVITE with one anomaly category. */
static void atk_malformed(const gen_opts_t *o, user_t *users, double t0)
{
    static const char *cats[] = {"overflow",       "format-string", "sqli",
                                 "shell",          "bad-utf8",      "nul-byte",
                                 "missing-header", "dup-header",    "bad-request-line",
                                 "content-length", "huge-number",   "bad-separator",
                                 "deep-nesting"};
    int n = (int)(25 * o->attack_scale);
    user_t a = attacker(116, 9, "sipsak 0.9.6", 5060);
    for (int c = 0; c < (int)(sizeof cats / sizeof cats[0]); c++) {
        char fam[40];
        snprintf(fam, sizeof fam, "malformed-%s", cats[c]);
        label(intern(fam), "fuzz");
        for (int i = 0; i < n; i++) {
            user_t *b = &users[rnd() % (uint64_t)o->users];
            dialog_t d;
            new_dialog(&d, &a, b);
            sipmsg_t m = {0};
            char via[160], branch[40], big[480];
            new_branch(a.fam, branch);
            via_of(&a, branch, via, sizeof via);
            const char *user = b->user;
            int len = irand(100, 470);
            memset(big, 'A' + (int)(rnd() % 26), (size_t)len);
            big[len] = '\0';
            static const char *fmts[] = {"%s%s%s%n", "%x%x%x%x", "%99999999s", "%n%n%n"};
            static const char *sqli[] = {"1' OR '1'='1", "'; DROP TABLE subscriber;--",
                                         "1 UNION SELECT password FROM users", "admin'--"};
            static const char *shell[] = {"$(reboot)", "`id`", "; cat /etc/passwd",
                                          "| nc -e /bin/sh"};
            char display[512] = "\"Alice\"";
            if (c == 12) { /* a display name nested in quotes and angle brackets */
                int depth = irand(40, 120);
                size_t at = 0;
                for (int k = 0; k < depth && at + 2 < sizeof display / 2; k++)
                    display[at++] = k % 2 ? '<' : '"';
                display[at] = '\0';
            }
            if (c == 0)
                user = big;
            else if (c == 1)
                snprintf(display, sizeof display, "\"%s\"", fmts[rnd() % 4]);
            else if (c == 2)
                snprintf(display, sizeof display, "\"%s\"", sqli[rnd() % 4]);
            else if (c == 3)
                snprintf(display, sizeof display, "\"%s\"", shell[rnd() % 4]);
            else if (c == 4)
                snprintf(display, sizeof display, "\"\xc3\x28\xa0\xa1\xff\xfe%d\"", i);
            if (c == 8)
                snprintf(m.start, sizeof m.start, "%s sip:%s@%s SIP/%d.%d",
                         i % 2 ? "INV ITE" : "INVITE", user, domain, irand(0, 9), irand(0, 9));
            else
                snprintf(m.start, sizeof m.start, "INVITE sip:%s@%s SIP/2.0", user, domain);
            if (c != 6 || i % 3 != 0)
                hset(&m, "Via", "%s", via);
            if (c == 11)
                hset(&m, "Max-Forwards", "70;;;,,,%d", i);
            else
                hset(&m, "Max-Forwards", c == 10 ? "4294967296999" : "70");
            hset(&m, "From", "%s <sip:%s@%s>;tag=%s", display, a.user, domain, d.ftag);
            hset(&m, "To", "<sip:%s@%s>", user, domain);
            if (c != 6 || i % 3 != 1)
                hset(&m, "Call-ID", "%s", d.call_id);
            if (c == 7)
                hset(&m, "Call-ID", "%s-dup", d.call_id);
            hset(&m, "CSeq", "%s INVITE", c == 10 ? "99999999999999999999" : "1");
            hset(&m, "Contact", "<sip:%s@203.0.116.9:5060>", a.user);
            hset(&m, "User-Agent", "%s", a.fam->ua);
            static char buf[8192];
            /* as the seed paper did: no two fuzz messages share a template, so the header
             * order is permuted per message (values are already random) */
            family_t shuffled = *a.fam;
            char order[32];
            snprintf(order, sizeof order, "%s", a.fam->order);
            for (int k = (int)strlen(order) - 1; k > 0; k--) {
                int j = irand(0, k);
                char tmp = order[k];
                order[k] = order[j];
                order[j] = tmp;
            }
            shuffled.order = order;
            size_t nb = render(&m, &shuffled, buf, sizeof buf);
            if (c == 5 && nb > 40)
                buf[irand(20, (int)nb - 10)] = '\0';
            if (c == 9) { /* negative or lying Content-Length */
                char *cl = strstr(buf, "Content-Length: 0");
                if (cl)
                    snprintf(buf + (cl - buf), sizeof buf - (size_t)(cl - buf),
                             "Content-Length: %s\r\n\r\n", i % 2 ? "-1" : "99999");
                nb = strlen(buf);
            }
            emit(t0 + c * 3 + i * 0.1, &a.ep, &proxy_ep, TRANSPORT_UDP, buf, nb, true, g_family,
                 g_scenario, d.call_id);
        }
    }
}

/* ------------------------------------------------------------ output */

static int by_time(const void *x, const void *y)
{
    const event_t *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * Who put a message on the wire: the registrar/proxy, a user agent of the population, or
 * an attacker. Users live in 10.0.0.0/8 and 2001:db8::/32 and the proxy at 10.0.0.1 and
 * 2001:db8::1; attackers always send from the documentation ranges 192.0.2.0/24,
 * 198.51.100.0/24 and 203.0.113.0/22, so the address tells.
 */
static const char *sender_of(const endpoint_t *src)
{
    if ((src->family == 4 && !memcmp(src->addr, proxy_ep.addr, 4)) ||
        (src->family == 6 && !memcmp(src->addr, proxy_ep6.addr, 16)))
        return "proxy";
    if ((src->family == 4 && src->addr[0] == 10) ||
        (src->family == 6 && src->addr[0] == 0x20 && src->addr[1] == 0x01 && src->addr[2] == 0x0d &&
         src->addr[3] == 0xb8))
        return "user";
    return "attacker";
}

/* Says that a file could not be written whole (a full disk, a size limit); returns -1. */
static int write_failed(const char *path)
{
    fprintf(stderr, "sipguard gen: %s: write failed: %s\n", path, strerror(errno ? errno : EIO));
    return -1;
}

static int write_output(const gen_opts_t *o, size_t *n_attack, size_t *n_written)
{
    char path[4096];
    qsort(events, n_events, sizeof *events, by_time);
    char lab_path[4096];
    snprintf(path, sizeof path, "%s.pcap", o->prefix);
    snprintf(lab_path, sizeof lab_path, "%s.labels.csv", o->prefix);
    pcapw_t *w = pcapw_open(path);
    if (!w) {
        fprintf(stderr, "sipguard gen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    FILE *lab = fopen(lab_path, "w");
    if (!lab) {
        fprintf(stderr, "sipguard gen: %s: %s\n", lab_path, strerror(errno));
        pcapw_close(&w);
        return -1;
    }
    fprintf(lab, "index,ts,label,family,scenario,call_id,sender\n");
    const double epoch = 1767225600.0; /* 2026-01-01T00:00:00Z */
    *n_attack = 0;
    size_t written = 0;
    for (size_t i = 0; i < n_events; i++) {
        event_t *e = &events[i];
        const char *sender = sender_of(&e->src);
        bool response = e->len >= 8 && !memcmp(e->data, "SIP/2.0 ", 8);
        if ((o->attacker_only && strcmp(sender, "attacker") != 0) ||
            (o->requests_only && response)) {
            free(e->data);
            continue;
        }
        msg_t m = {0};
        double ts = epoch + e->ts;
        m.ts_sec = (int64_t)ts;
        m.ts_usec = (int32_t)((ts - (double)m.ts_sec) * 1e6);
        m.src = e->src;
        m.dst = e->dst;
        m.transport = e->tr;
        m.data = (const uint8_t *)e->data;
        m.len = e->len;
        pcapw_write(w, &m);
        *n_attack += e->attack;
        fprintf(lab, "%zu,%lld.%06d,%s,%s,%s,\"%s\",%s\n", written++, (long long)m.ts_sec,
                m.ts_usec, e->attack ? "attack" : "normal", e->family, e->scenario, e->call_id,
                sender);
        free(e->data);
    }
    *n_written = written;
    int rc = 0;
    if (pcapw_close(&w) != 0)
        rc = write_failed(path);
    if (ferror(lab) | fclose(lab)) /* both: fclose must run */
        rc = write_failed(lab_path);
    return rc;
}

/* ------------------------------------------------------------ command */

static const cliopt_t gen_opts[] = {
    {"output", 'o', "PREFIX", "write PREFIX.pcap, PREFIX.labels.csv and PREFIX.cdr.csv (required)",
     NULL},
    {"preset", 'p', "NAME", "small (tests), demo, or eval (>= 200,000 messages)", "small"},
    {"seed", 's', "N", "random seed; the same seed and options give identical output", "1"},
    {"population-seed", 0, "N",
     "seed of the user population alone (names, addresses, phones): "
     "give train and test captures the same one and different --seed",
     "the --seed"},
    {"users", 'u', "N", "number of user agents", "preset"},
    {"duration", 'd', "SECONDS", "length of normal traffic", "preset"},
    {"call-rate", 0, "X", "calls per user-hour (Poisson)", "preset"},
    {"p-social", 0, "X", "probability a call stays inside the caller's clique", "0.8"},
    {"clique", 0, "MIN-MAX", "clique sizes", "3-7"},
    {"without", 'w', "FLOW,...",
     "leave out legitimate flows: hold, cancel, tcp, message, presence, "
     "rereg, options",
     NULL},
    {"attacks", 'a', "LIST",
     "attack families: all, none, or a list of scan, guess, flood, spit, "
     "bye, cancel, dereg, malformed, spoof, hijack, refer, replay, fraud",
     "all"},
    {"attack-scale", 0, "X", "multiply the number of attack messages", "1"},
    {"holding", 0, "DIST",
     "call holding times: exp (mean 120 s) or pareto (generalised Pareto, "
     "scale 60 s, shape 0.4)",
     "exp"},
    {"flood-window", 0, "S",
     "where floods go: a end, b start, c throughout, d start and end, "
     "e none (the INVITE-flood paper's scenarios)",
     "c"},
    {"no-normal", 0, NULL, "emit attack traffic only", NULL},
    {"attacker-only", 0, NULL,
     "keep only messages sent by attackers (no proxy or victim "
     "answers): what a content model can be asked to flag",
     NULL},
    {"requests-only", 0, NULL,
     "keep only requests: what a proxy that mirrors the requests it receives and not its "
     "replies sends (Kamailio's sip_trace() without its \"t\" mode)",
     NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t gen_cmd = {
    "sipguard gen -o PREFIX [OPTIONS]",
    "Generates labelled SIP traffic: a population of user agents behind a registrar/proxy\n"
    "(digest registration, calls, cancels, busy and rejected calls, hold/resume, OPTIONS,\n"
    "presence, MESSAGE over UDP and TCP) with attacks mixed in, labelled per message. The\n"
    "capture is PREFIX.pcap; PREFIX.labels.csv holds index,ts,label,family,scenario,call_id\n"
    "for each SIP message in capture order; PREFIX.cdr.csv lists the normal calls.",
    gen_opts,
    "examples:\n"
    "  sipguard gen -o train --attacks none --without hold,cancel,tcp\n"
    "  sipguard gen -o test --seed 2 --preset demo\n"
    "exit status: 0 success, 1 cannot write the output, 2 usage error.",
};

static int parse_list(const char *arg, const char *const *names, int n, bool *set)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", arg);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k;
        for (k = 0; k < n && strcmp(tok, names[k]); k++)
            ;
        if (k == n) {
            fprintf(stderr, "sipguard gen: unknown name '%s'\n", tok);
            return -1;
        }
        set[k] = true;
    }
    return 0;
}

static void apply_preset(gen_opts_t *o, const char *p)
{
    if (!strcmp(p, "demo")) {
        o->users = 100;
        o->duration = 1800;
        o->call_rate = 4;
    } else if (!strcmp(p, "eval")) {
        o->users = 1000;
        o->duration = 7200;
        o->call_rate = 5;
        o->attack_scale = 5;
    } else {
        o->users = 40;
        o->duration = 600;
        o->call_rate = 6;
        o->attack_scale = 0.5;
    }
}

int gen_command(int argc, char **argv)
{
    gen_opts_t o = {0};
    o.seed = 1;
    o.p_social = 0.8;
    o.clique_min = 3;
    o.clique_max = 7;
    o.normal = true;
    o.attack_scale = 1;
    o.flood_window = 'c';
    apply_preset(&o, "small");
    for (int k = 0; k < ATK_COUNT; k++)
        o.attacks[k] = true;
    long users = -1;
    double duration = -1, rate = -1, scale = -1;
    const char *arg;
    int i;
    while ((i = cliopt_next(&gen_cmd, argc, argv, &arg)) != -1) {
        if (i == -2)
            return 2;
        const char *name = gen_opts[i].name;
        long l;
        if (!strcmp(name, "help")) {
            cliopt_help(&gen_cmd, stdout);
            return 0;
        } else if (!strcmp(name, "output")) {
            o.prefix = arg;
        } else if (!strcmp(name, "preset")) {
            if (strcmp(arg, "small") && strcmp(arg, "demo") && strcmp(arg, "eval")) {
                fprintf(stderr, "sipguard gen: --preset: expected small, demo or eval\n");
                return 2;
            }
            apply_preset(&o, arg);
        } else if (!strcmp(name, "seed")) {
            if (cliopt_int(name, arg, 0, 1L << 62, &l))
                return 2;
            o.seed = (uint64_t)l;
        } else if (!strcmp(name, "population-seed")) {
            if (cliopt_int(name, arg, 1, 1L << 62, &l))
                return 2;
            o.population_seed = (uint64_t)l;
        } else if (!strcmp(name, "users")) {
            if (cliopt_int(name, arg, 2, 60000, &users))
                return 2;
        } else if (!strcmp(name, "duration")) {
            if (cliopt_double(name, arg, 1, 30 * 86400, &duration))
                return 2;
        } else if (!strcmp(name, "call-rate")) {
            if (cliopt_double(name, arg, 0.01, 1000, &rate))
                return 2;
        } else if (!strcmp(name, "p-social")) {
            if (cliopt_double(name, arg, 0, 1, &o.p_social))
                return 2;
        } else if (!strcmp(name, "clique")) {
            if (sscanf(arg, "%d-%d", &o.clique_min, &o.clique_max) != 2 || o.clique_min < 2 ||
                o.clique_max < o.clique_min || o.clique_max > 60) {
                fprintf(stderr, "sipguard gen: --clique: expected MIN-MAX, e.g. 3-7\n");
                return 2;
            }
        } else if (!strcmp(name, "without")) {
            if (parse_list(arg, flow_names, FLOW_COUNT, o.without))
                return 2;
        } else if (!strcmp(name, "attacks")) {
            memset(o.attacks, 0, sizeof o.attacks);
            if (!strcmp(arg, "all"))
                for (int k = 0; k < ATK_COUNT; k++)
                    o.attacks[k] = true;
            else if (strcmp(arg, "none") && parse_list(arg, attack_names, ATK_COUNT, o.attacks))
                return 2;
        } else if (!strcmp(name, "attack-scale")) {
            if (cliopt_double(name, arg, 0.01, 1000, &scale))
                return 2;
        } else if (!strcmp(name, "holding")) {
            if (strcmp(arg, "exp") && strcmp(arg, "pareto")) {
                fprintf(stderr, "sipguard gen: --holding: expected exp or pareto\n");
                return 2;
            }
            o.pareto = !strcmp(arg, "pareto");
        } else if (!strcmp(name, "flood-window")) {
            if (strlen(arg) != 1 || arg[0] < 'a' || arg[0] > 'e') {
                fprintf(stderr, "sipguard gen: --flood-window: expected one of a, b, c, d, e\n");
                return 2;
            }
            o.flood_window = arg[0];
        } else if (!strcmp(name, "requests-only")) {
            o.requests_only = true;
        } else if (!strcmp(name, "attacker-only")) {
            o.attacker_only = true;
            o.normal = false;
        } else if (!strcmp(name, "no-normal")) {
            o.normal = false;
        }
    }
    if (!o.prefix) {
        fprintf(stderr, "sipguard gen: -o PREFIX is required\nusage: %s\n", gen_cmd.usage);
        return 2;
    }
    if (users > 0)
        o.users = (int)users;
    if (duration > 0)
        o.duration = duration;
    if (rate > 0)
        o.call_rate = rate;
    if (scale > 0)
        o.attack_scale = scale;
    rng_state = o.seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
    proxy_ep = ep4(10, 0, 0, 1, 5060);
    proxy_ep6 = ep6(0, 1, 5060);
    n_events = 0;
    /* The population (names, addresses, phones) can come from its own seed, so that training
     * and test captures are the same users on different days. */
    rng_state = (o.population_seed ? o.population_seed : o.seed) * 0x9E3779B97F4A7C15ULL + 0x51;
    user_t *users_v = make_users(&o);
    rng_state = o.seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
    char path[4096];
    snprintf(path, sizeof path, "%s.cdr.csv", o.prefix);
    FILE *cdr = fopen(path, "w");
    if (!cdr) {
        fprintf(stderr, "sipguard gen: %s: %s\n", path, strerror(errno));
        free(users_v);
        return 1;
    }
    fprintf(cdr, "caller,callee,start,answer,end,cause\n");
    if (o.normal)
        gen_normal(&o, users_v, cdr);
    double t = o.normal ? 60 + uni() * (o.duration / 2) : 0;
    if (o.attacks[ATK_SCAN])
        atk_scan(&o, t);
    if (o.attacks[ATK_GUESS])
        atk_guess(&o, users_v, t + 100);
    if (o.attacks[ATK_FLOOD])
        atk_flood(&o, users_v, o.normal ? o.duration : 60);
    if (o.attacks[ATK_SPIT])
        atk_spit(&o, users_v, t + 200);
    if (o.attacks[ATK_BYE])
        atk_teardown(&o, users_v, t + 240, true);
    if (o.attacks[ATK_CANCEL])
        atk_teardown(&o, users_v, t + 280, false);
    if (o.attacks[ATK_DEREG])
        atk_dereg(&o, users_v, t + 320);
    if (o.attacks[ATK_MALFORMED])
        atk_malformed(&o, users_v, t + 360);
    if (o.attacks[ATK_SPOOF])
        atk_spoof(&o, users_v, t + 420);
    if (o.attacks[ATK_HIJACK])
        atk_hijack(&o, users_v, t + 470);
    if (o.attacks[ATK_REFER])
        atk_refer(&o, users_v, t + 510);
    if (o.attacks[ATK_REPLAY])
        atk_replay(&o, users_v, t + 550);
    if (o.attacks[ATK_FRAUD])
        atk_fraud(&o, users_v, t + 590);
    int rc = ferror(cdr) | fclose(cdr) ? write_failed(path) : 0;
    size_t n_attack = 0, n_written = 0;
    if (write_output(&o, &n_attack, &n_written) != 0)
        rc = -1;
    else if (rc == 0)
        fprintf(stderr, "generated %zu messages (%zu normal, %zu attack) into %s.pcap\n", n_written,
                n_written - n_attack, n_attack, o.prefix);
    free(events);
    events = NULL;
    cap_events = 0;
    free(users_v);
    free_labels();
    return rc == 0 ? 0 : 1;
}
