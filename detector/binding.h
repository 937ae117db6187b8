/*
 * binding: who registered from where, and requests that do not fit.
 *
 * A successful registration (a 401/407 challenge, then a 200 OK on the same
 * Call-ID) binds the identity (the AOR user) to the registering packet's
 * source address, the Via and Contact hosts it wrote, and its MAC address when
 * the capture has Ethernet. The binding lasts for the registration's Expires;
 * Expires 0 removes it. Every later request whose From user is bound (and that
 * does not come from infrastructure: sources that speak for many identities,
 * learned in training) is checked, and a mismatch is classified as in the
 * cross-layer IDPS this follows:
 *   - new-location:    the identity comes from an address not bound to it, and
 *                      its SIP-level hosts do not claim the bound device either
 *                      (a roaming user, or someone using the identity);
 *   - spoofed-source:  the SIP level claims the bound device (Via/Contact host)
 *                      but the packet comes from elsewhere, or the bound
 *                      address arrives with another MAC;
 *   - sip-spoof:       the packet comes from the bound address but its
 *                      Via/Contact hosts name another device;
 *   - identity-theft:  the packet comes from an address bound to another
 *                      registered identity;
 *   - auth-replay:     a digest (nonce, response) seen before comes back from
 *                      another address or in another dialog.
 * A counting Bloom filter sized from the expected user count sits in front of
 * the table, so identities never registered cost one filter probe; table and
 * filter are bounded, and expired bindings are removed from both.
 */
#ifndef SIPGUARD_BINDING_H
#define SIPGUARD_BINDING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "sipcheck.h"

typedef enum {
    BIND_OK = 0,
    BIND_NEW_LOCATION,
    BIND_SPOOFED_SOURCE,
    BIND_SIP_SPOOF,
    BIND_IDENTITY_THEFT,
    BIND_AUTH_REPLAY,
    BIND_CLASSES
} bind_class_t;

const char *binding_class_name(bind_class_t c);

#define BINDING_MAX_INFRA 256

typedef struct {
    size_t expected_users;  /* sizes the filter and the table (default 100,000) */
    bool require_challenge; /* bind only after a 401/407 then 200 (default yes) */
    int infra_identities;   /* a source speaking for this many identities is infrastructure
                               (default 5) */
} binding_opts_t;

typedef struct {
    binding_opts_t o;
    endpoint_t infra[BINDING_MAX_INFRA]; /* addresses (port ignored) */
    size_t n_infra;
} binding_model_t;

void binding_opts_default(binding_opts_t *o);

typedef struct {
    bool judged; /* a request the detector checked (not a response, not infrastructure) */
    bool anomaly;
    bind_class_t cls;
    char identity[64];
    char bound[64]; /* the address the identity is bound to, or the other identity (theft) */
} binding_verdict_t;

/* Training finds the infrastructure: sources that send requests for many identities. */
typedef struct binding_trainer binding_trainer_t;
binding_trainer_t *binding_trainer_new(const binding_opts_t *o);
void binding_trainer_add(binding_trainer_t *t, const msg_t *m, const sipinfo_t *info);
void binding_trainer_finish(binding_trainer_t *t, binding_model_t *out);
void binding_trainer_destroy(binding_trainer_t **self);

json_t *binding_model_to_json(const binding_model_t *m);
int binding_model_from_json(json_t *j, binding_model_t *m, char *err, size_t errlen);

typedef struct binding binding_t;
binding_t *binding_new(const binding_model_t *m);
void binding_destroy(binding_t **self);
/* Learns from registrations and checks requests, one message at a time in time order. */
void binding_observe(binding_t *b, const msg_t *m, const sipinfo_t *info, binding_verdict_t *out);
/* Bindings held now, registrations refused because the table was full, and the most the table
 * holds (from expected_users). */
size_t binding_count(const binding_t *b);
uint64_t binding_refused(const binding_t *b);
size_t binding_capacity(const binding_t *b);
/* Slots of removed bindings not yet reclaimed: the table is laid out again past a quarter. */
size_t binding_tombstones(const binding_t *b);

#endif
