/*
 * include/cs.h: the engine's public header cs.h, forwarded. This folder is
 * the engine's only public include directory, so a user of the library
 * sees cs.h, admin.h and cs_limits.h and none of the private headers
 * beside them (which stay where their code is).
 */
#include "../cs.h"
