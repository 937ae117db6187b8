/*
 * fsutil: small file-system helpers the daemons share.
 */
#ifndef SIPGUARD_FSUTIL_H
#define SIPGUARD_FSUTIL_H

#include <sys/types.h>

/* Creates a directory and its missing parents (mode for the ones it makes). Returns 0, or -1
 * with errno set. */
int mkdir_p(const char *dir, mode_t mode);

#endif
