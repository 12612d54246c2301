/*
 * include/cs_query.h: the engine's public query header cs_query.h,
 * forwarded (see include/cs.h).
 */
#include "../cs_query.h"
