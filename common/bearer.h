/*
 * bearer: the check of an HTTP Authorization header against a configured API token, shared
 * by the edge's and the overlay's HTTP endpoints. The comparison takes the same time wherever
 * the header and the token differ, so that the time of a refusal does not tell a guesser how
 * much of the token was right.
 */
#ifndef SIPGUARD_BEARER_H
#define SIPGUARD_BEARER_H

#include <stdbool.h>

/* Whether authorization ("Bearer TOKEN", or NULL when the request had none) carries token;
 * every request passes when token is empty. */
bool bearer_accepted(const char *authorization, const char *token);

#endif
