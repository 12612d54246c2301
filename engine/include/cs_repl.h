/*
 * include/cs_repl.h: the engine's public header cs_repl.h, forwarded (see
 * include/cs.h).
 */
#include "../cs_repl.h"
