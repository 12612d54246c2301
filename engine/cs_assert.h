/*
 * cs_assert.h: always-on assertions for the engine's own invariants.
 *
 * CS_ASSERT guards a programmer's promise whose breach would corrupt data if
 * the process went on: an overlay entry missing from its chain, a slot out of
 * order, a dictionary entry past its array, a commit applied twice. It is on
 * in every build (NDEBUG does not remove it), prints the file, line and the
 * failed condition to stderr and aborts, so the damage stops at the process
 * and never reaches the log.
 *
 * Never assert on bytes read from disk or the network: those are validated
 * and turned into errors (CS_ECORRUPT, CS_EINVAL).
 *
 * Whole-structure checkers (ix_check and the like) are too slow for the
 * write path: production never calls them; the tests call them after every
 * step, and CS_DEBUG_CHECKS (1 in builds without NDEBUG, such as Debug) lets
 * the engine run them at points of its own as well.
 */
#ifndef CS_ASSERT_H
#define CS_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define CS_ASSERT(cond)                                                        \
  do {                                                                         \
    if (__builtin_expect(!(cond), 0)) {                                        \
      fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", __FILE__, __LINE__, \
              __func__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#ifdef NDEBUG
#define CS_DEBUG_CHECKS 0
#else
#define CS_DEBUG_CHECKS 1
#endif

#endif
