#include "bearer.h"

#include <string.h>

bool bearer_accepted(const char *authorization, const char *token)
{
    if (!token[0])
        return true;
    if (!authorization || strncmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    size_t n = strlen(token), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    /* every byte of the token is compared, against the given one's or, past its end, against
     * itself: no early exit */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < m ? given[i] : (char)~token[i]));
    return diff == 0;
}
