/*
 * fuzz_util.h: what the fuzz targets share.
 *
 * Every target is a function LLVMFuzzerTestOneInput(data, size) that must
 * never crash, leak or read out of bounds on any input, and that calls
 * fz_fail (which aborts, so libFuzzer and the replay driver both report it)
 * when an invariant of the code under test breaks. The same source is built
 * two ways: linked with libFuzzer (CS_FUZZ builds, clang) and linked with
 * fuzz_replay.c, which runs the function once over every file of a corpus
 * (every build, so each seed and each crash ever found is a regression test).
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Prints the broken invariant and aborts. */
void fz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
#define FZ_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) fz_fail(__VA_ARGS__);                                         \
  } while (0)

/* A fresh directory on a memory file system when there is one (/dev/shm),
 * else under $TMPDIR or /tmp; malloc'd path, removed by fz_rmrf. */
char *fz_tmpdir(void);
/* Removes dir and everything in it (no shell: fuzzers call it per input). */
void fz_rmrf(const char *dir);
/* Writes len bytes to dir/name (mode 0600), aborting on a system error. */
void fz_write(const char *dir, const char *name, const void *p, size_t len);
/* Reads dir/name whole; malloc'd, NULL when absent. */
uint8_t *fz_read(const char *dir, const char *name, size_t *len_out);

/* Writes dir/MANIFEST naming segments first..last and the snapshot file
 * snapshot (NULL: none), in the format store.c reads. */
void fz_manifest(const char *dir, uint32_t first, uint32_t last,
                 const char *snapshot);

/* Copies dir/name to dir2/name (aborts when absent). */
void fz_copy(const char *from_dir, const char *to_dir, const char *name);

/* The real file system without its syncs: inputs are thrown away, and an
 * fsync per input would make fuzzing a hundred times slower. */
const cs_io *fz_io_nosync(void);

/* Store options for fuzzing: no syncs, no snapshot on close, notices
 * swallowed. */
cs_options fz_options(void);

#endif
