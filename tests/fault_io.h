/*
 * fault_io.h: a test I/O seam for the store (cs_io) that fails chosen calls
 * and simulates power loss.
 *
 * It forwards every call to the real file system while counting calls by
 * kind. It can fail the Nth call of a kind once or from then on, and it
 * remembers, per file, how many bytes were written and how many were synced.
 * A "crash" makes every later call fail, so the store can be closed without
 * anything more reaching the disk; fault_io_power_loss then cuts every file
 * back to what was synced (keeping, in the variants, a random part of the
 * unsynced tail, or garbage in it), as a machine losing power would.
 */
#ifndef FAULT_IO_H
#define FAULT_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "cs.h"

enum fault_kind {
  FAULT_WRITE,
  FAULT_SYNC, /* fdatasync and fsync of files */
  FAULT_RENAME,
  FAULT_OPEN,
  FAULT_DIRSYNC,
  FAULT_TRUNCATE,
  FAULT_KINDS
};

enum power_loss_mode {
  POWER_DROP_UNSYNCED, /* every unsynced byte is lost */
  POWER_KEEP_SOME,     /* a random prefix of the unsynced bytes survives */
  POWER_GARBAGE_TAIL,  /* part survives, and part of that is garbage */
};

#define FAULT_FILES_MAX 256

typedef struct fault_file {
  char path[512];
  int fd; /* -1 when closed */
  uint64_t size;
  uint64_t synced;
} fault_file;

typedef struct fault_io {
  cs_io io;        /* give &f->io to cs_options.io */
  int fail_kind;   /* a fault_kind, or -1 for none */
  long fail_at;    /* fail the Nth call of fail_kind (1-based) */
  bool persistent; /* and every later one of that kind */
  int fail_errno;  /* EIO unless set */
  long calls[FAULT_KINDS];
  long failures; /* calls failed on purpose */
  bool crashed;
  fault_file files[FAULT_FILES_MAX];
  int file_count;
} fault_io;

void fault_io_init(fault_io *f);
/* Fail the nth call of kind (errno e, EIO when 0), once or persistently. */
void fault_io_arm(fault_io *f, int kind, long nth, bool persistent, int e);
/* From now on every call fails: the moment power is lost. */
void fault_io_crash(fault_io *f);
/* After the store is closed: cut files back as a power loss would. */
void fault_io_power_loss(fault_io *f, int mode, unsigned seed);

#endif
