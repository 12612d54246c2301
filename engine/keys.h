/*
 * keys.h: the key ring's one private call (its public interface is in
 * cs.h): which I/O seam its file is written through, so fault tests can
 * fail any step of a key file's replace.
 */
#ifndef CS_KEYS_H
#define CS_KEYS_H

#include "cs.h"

/* From now on k's file is written through io (NULL: cs_io_posix()). io
 * must outlive k. */
void keys_set_io(cs_keyring *k, const cs_io *io);

#endif
