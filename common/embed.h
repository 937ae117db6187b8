/*
 * embed: a SIP message as a sparse vector of feature-string counts.
 *
 * Following Rieck and Laskov's string embeddings (as in sally), a message x
 * maps to the counts f(x, s) of its feature strings s:
 *   - byte n-grams (n = 1..8): every substring of length n. The n bytes
 *     themselves, packed little-endian into 64 bits, are the key: no hash,
 *     no collision, and a key always turns back into its string.
 *   - tokens: maximal runs of bytes outside a delimiter set; the key is
 *     XXH3-64 of the token (top bit cleared), with an optional dictionary
 *     back to the string for explanations and signatures.
 * Options: counts or binary; no, l1 or l2 normalisation; header-name
 * normalisation (sipnorm) and value shaping (shape) applied first.
 *
 * Extraction is linear in the message length: features are counted in an
 * open-addressing table that is emptied again after each message; sorted
 * output then orders the distinct keys by an LSD radix sort that skips byte
 * positions on which all keys agree (4-grams need 4 passes). Nothing is
 * allocated per message once the buffers have grown.
 */
#ifndef SIPGUARD_EMBED_H
#define SIPGUARD_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparse.h"

typedef enum { EMBED_NGRAM = 0, EMBED_TOKEN = 1 } embed_kind_t;
typedef enum { EMBED_NORM_NONE = 0, EMBED_NORM_L1 = 1, EMBED_NORM_L2 = 2 } embed_norm_t;
/* Value shaping: none; every digit/hex run and address (shape_apply); or only the values
 * SIP makes random per message (shape_fields). */
enum { EMBED_SHAPE_NONE = 0, EMBED_SHAPE_ALL = 1, EMBED_SHAPE_FIELDS = 2 };

typedef struct {
    embed_kind_t kind;
    int n;       /* n-gram length, 1..8 */
    bool binary; /* 1 for present features instead of counts */
    embed_norm_t norm;
    int shape;         /* value shaping: EMBED_SHAPE_NONE, _FIELDS or _ALL (shape.h) */
    bool header_norm;  /* header-name normalisation (sipnorm.h) */
    uint8_t delim[32]; /* token delimiters, a bit per byte value */
} embed_opts_t;

/* Defaults: byte 4-grams, counts, no normalisation, shaping and header normalisation on,
 * token delimiters " \t\r\n,;:=@/<>\"'()[]?&". */
void embed_opts_default(embed_opts_t *o);
/* Parses "ngram:N" or "token". Returns 0, or -1 when the spec is invalid. */
int embed_opts_parse_feature(embed_opts_t *o, const char *spec);
/* Parses "none", "l1", "l2". Returns 0 or -1. */
int embed_opts_parse_norm(embed_opts_t *o, const char *spec);
/* Parses "none", "fields", "all". Returns 0 or -1. */
int embed_opts_parse_shape(embed_opts_t *o, const char *spec);
/* "none", "fields" or "all". */
const char *embed_shape_name(int shape);
/* Sets the delimiter set from a string; \t \r \n \\ and \xHH escapes are understood. */
void embed_opts_set_delimiters(embed_opts_t *o, const char *delims);
/* Writes "ngram:4" or "token" into buf. */
void embed_opts_feature_name(const embed_opts_t *o, char *buf, size_t cap);

typedef struct embed embed_t;

embed_t *embed_new(const embed_opts_t *opts);
void embed_destroy(embed_t **self);
const embed_opts_t *embed_opts(const embed_t *self);

/*
 * Sorted output (the default) orders entries by key, as sparse_dot() and the
 * file formats need. Unsorted output counts keys in a hash table instead and
 * lists them in order of first appearance: cheaper, for scorers that only
 * look entries up. Never pass an unsorted vector to sparse_dot().
 */
void embed_set_sorted(embed_t *self, bool sorted);

/*
 * How many n-gram keys a sorted embedder has learned ranks for (n <= 4): it sorts a message's
 * keys by reading ranks it learned from earlier messages, which changes its speed, never its
 * output. For tests and benchmarks.
 */
size_t embed_learned_keys(const embed_t *self);
#define EMBED_LEARNED_KEYS_MAX 32767

/* Keeps a dictionary from token keys to strings (tokens only), for feature names. */
void embed_keep_dictionary(embed_t *self, bool on);

/* Embeds one message into out (sorted by key, norm2 set). Returns 0, or -1 when out of memory. */
int embed_message(embed_t *self, const uint8_t *data, size_t len, sparse_t *out);

/*
 * Weights over feature keys (a model's centre): embed_message_dot() then also
 * gives the dot product of the vector with them. For n-grams of up to 4
 * bytes in unsorted mode the weights live in the counting table itself, so
 * the one probe that counts an n-gram also finds its weight; otherwise each
 * distinct key is looked up. Zero weights are dropped; a key given twice keeps
 * its first weight. Replaces any weights set before. Returns 0, or -1 when out of memory (the
 * weights are then none).
 */
int embed_set_weights(embed_t *self, const uint64_t *keys, const double *w, size_t n);
/* embed_message() and the dot product of out with the weights (0 without weights). */
int embed_message_dot(embed_t *self, const uint8_t *data, size_t len, sparse_t *out, double *dot);
/*
 * What a global score needs of a message and no more: the squared norm of its vector and the
 * dot product with the weights, equal to embed_message_dot()'s. For n-grams of up to 4 bytes
 * with plain counts the vector is not written at all. embed_last_vector() writes it on demand
 * (the same vector embed_message() would give in this mode), until the next message.
 */
int embed_message_stats(embed_t *self, const uint8_t *data, size_t len, double *norm2, double *dot);
/* The vector of the last message embedded, counted again from its preprocessed bytes. */
int embed_last_vector(embed_t *self, sparse_t *out);
/* The dot product of any vector from this embedder with the weights. */
double embed_weighted_dot(const embed_t *self, const sparse_t *v);

/*
 * The preprocessed bytes (header names normalised, values shaped) that the
 * features of the last embed_message() call were taken from.
 */
const uint8_t *embed_last_bytes(const embed_t *self, size_t *len);

/*
 * Writes a readable name of a feature key: the n-gram with non-printable
 * bytes as \xHH and shaping tokens as <dig1-3> etc.; a token from the
 * dictionary; or "token:HEX" when unknown.
 */
void embed_feature_name(const embed_t *self, uint64_t key, char *buf, size_t cap);

/* The key of a feature given as its bytes: an n-gram of exactly n bytes, or a token.
 * Returns 0, or -1 when the bytes cannot be a feature of this embedding. */
int embed_feature_key(const embed_opts_t *o, const uint8_t *s, size_t len, uint64_t *key);

/* The raw bytes of an n-gram key (n bytes written to out). */
void embed_ngram_bytes(uint64_t key, int n, uint8_t *out);

#endif
