/*
 * pcfs: a FUSE file system that loses what was not synced when the power is
 * cut. For tests only.
 *
 * Why: the engine's own fault seam (tests/fault_io.c) drops unsynced writes
 * inside the process, but the real server's system calls (write, fdatasync,
 * rename, fsync of a directory, mmap) and the admin tool's have to meet a
 * file system that forgets exactly what a machine that loses power forgets.
 * pcfs is that file system: every call passes through to a backing
 * directory, so the programs on top see an ordinary file system, and beside
 * it pcfs keeps what is durable.
 *
 * Usage: pcfs BACKING MOUNTPOINT --state DIR [--seed N] [--keep none|random]
 * Runs in the foreground, single-threaded. SIGUSR1 cuts the power: from that
 * moment every call fails with EIO. At unmount (fusermount3 -u MOUNTPOINT)
 * after a cut, BACKING is rewritten to hold only what was durable, and pcfs
 * prints one line saying what it kept. An unmount without a cut leaves
 * BACKING as it is (a clean shutdown: everything reached the disk).
 *
 * What is durable (the rules the tests of pcfs check):
 *   1. File data and size: as of the last fsync or fdatasync of that file
 *      (any descriptor of it). Writes and truncations after it are pending.
 *   2. A directory's entries (create, unlink, rename, mkdir, rmdir): as of
 *      the last fsync of that directory. A file whose data was synced but
 *      whose name was never synced in its directory is gone after a cut; a
 *      name that was synced whose file was never synced is an empty file.
 *   3. Everything in BACKING at mount is durable.
 * With --keep random (seeded by --seed), a cut keeps a random part of the
 * pending changes too, as a disk with a volatile cache may: each pending
 * write, split at 4 KiB file offsets, and each pending truncation, is kept
 * or lost on its own (so a file's pending writes are reordered and torn at
 * 4 KiB boundaries), and each directory keeps a random prefix of its pending
 * entry changes (a journal keeps them in order).
 *
 * Not supported (EPERM): hard links, symbolic links, renaming directories.
 *
 * Invariants:
 *   - Files are named by pcfs's own ids, never by the backing inode number,
 *     which the backing file system may reuse after an unlink; an open
 *     handle keeps its file's id, so a write through a descriptor of an
 *     unlinked file still lands on the right durable copy.
 *   - STATE/<id> is the durable content of file id; a file's pending list
 *     holds exactly the changes since that copy was last brought up to date.
 *   - A directory's durable entries plus its pending list, applied in order,
 *     give its entries in BACKING.
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <fuse.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define PC_PAGE_BYTES 4096 /* the unit a disk tears a write at */
#define PC_PATH_MAX 4096
#define PC_ROOT_MAX 1024 /* BACKING and STATE: room left for names below */

typedef enum { OP_WRITE, OP_TRUNCATE } pc_op_kind;

typedef struct pc_op {
  pc_op_kind kind;
  uint64_t off; /* OP_TRUNCATE: the new size */
  uint64_t len;
  uint8_t *data;
} pc_op;

typedef struct pc_file {
  uint64_t id;
  ino_t ino;  /* backing inode while it has a name there, else 0 */
  pc_op *ops; /* pending, in order */
  size_t nops, capops;
} pc_file;

typedef struct pc_dir pc_dir;

typedef struct pc_entry {
  char *name;
  pc_file *file; /* one of file and dir is set */
  pc_dir *dir;
} pc_entry;

typedef enum { DOP_ADD, DOP_REMOVE, DOP_RENAME } pc_dop_kind;

typedef struct pc_dop {
  pc_dop_kind kind;
  char *name;  /* ADD, REMOVE: the name; RENAME: the old name */
  char *name2; /* RENAME: the new name */
  pc_file *file;
  pc_dir *dir;
} pc_dop;

struct pc_dir {
  char *path; /* relative to the root, "" for the root; NULL once removed */
  pc_entry *dur;
  size_t ndur, capdur;
  pc_dop *ops;
  size_t nops, capops;
};

typedef struct pc_handle {
  int fd;
  pc_file *file;
  struct pc_handle *prev, *next; /* every open handle, for the unmount */
} pc_handle;

static struct {
  char backing[PC_ROOT_MAX];
  char state[PC_ROOT_MAX];
  bool keep_random;
  uint64_t rng;
  uint64_t next_id;
  pc_file **files;
  size_t nfiles, capfiles;
  pc_dir **dirs;
  size_t ndirs, capdirs;
  uint64_t kept, pending, dkept, dpending;
  pc_handle *handles; /* open ones; a cut unmount may never release them */
} pc;

static volatile sig_atomic_t pc_cut;
static int pc_restore_rc = -1; /* the rebuild after a cut: 0, or not done */

/* ------------------------------------------------------------ helpers */

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "pcfs: out of memory\n");
    abort();
  }
  return q;
}

#define PUSH(arr, n, cap)                                                      \
  do {                                                                         \
    if ((n) == (cap)) {                                                        \
      (cap) = (cap) ? 2 * (cap) : 8;                                           \
      (arr) = xrealloc((arr), (cap) * sizeof *(arr));                          \
    }                                                                          \
  } while (0)

static uint64_t rng_next(void) {
  /* splitmix64: small, seeded, the same sequence on every machine */
  uint64_t z = (pc.rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void bpath(char *out, const char *path) {
  snprintf(out, PC_PATH_MAX, "%s%s", pc.backing, path);
}

static void spath(char *out, uint64_t id) {
  snprintf(out, PC_PATH_MAX, "%s/%llu", pc.state, (unsigned long long)id);
}

/* Splits "/a/b/c" into the parent's relative path "a/b" and "c". */
static void split(const char *path, char *parent, const char **name) {
  const char *slash = strrchr(path, '/');
  size_t n = (size_t)(slash - path);
  memcpy(parent, path + 1, n ? n - 1 : 0);
  parent[n ? n - 1 : 0] = 0;
  *name = slash + 1;
}

static pc_dir *dir_find(const char *rel) {
  for (size_t i = 0; i < pc.ndirs; i++)
    if (pc.dirs[i]->path && strcmp(pc.dirs[i]->path, rel) == 0)
      return pc.dirs[i];
  return NULL;
}

static pc_dir *dir_new(const char *rel) {
  pc_dir *d = calloc(1, sizeof *d);
  if (!d) abort();
  d->path = strdup(rel);
  PUSH(pc.dirs, pc.ndirs, pc.capdirs);
  pc.dirs[pc.ndirs++] = d;
  return d;
}

static pc_file *file_by_ino(ino_t ino) {
  for (size_t i = 0; i < pc.nfiles; i++)
    if (pc.files[i]->ino == ino) return pc.files[i];
  return NULL;
}

/* A new file whose durable content is empty. */
static pc_file *file_new(ino_t ino) {
  pc_file *f = calloc(1, sizeof *f);
  if (!f) abort();
  f->id = ++pc.next_id;
  f->ino = ino;
  char p[PC_PATH_MAX];
  spath(p, f->id);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror("pcfs: state file");
    abort();
  }
  close(fd);
  PUSH(pc.files, pc.nfiles, pc.capfiles);
  pc.files[pc.nfiles++] = f;
  return f;
}

static void file_add_op(pc_file *f, pc_op_kind kind, uint64_t off,
                        const void *data, uint64_t len) {
  PUSH(f->ops, f->nops, f->capops);
  pc_op *op = &f->ops[f->nops++];
  op->kind = kind;
  op->off = off;
  op->len = len;
  op->data = NULL;
  if (kind == OP_WRITE) {
    op->data = xrealloc(NULL, len);
    memcpy(op->data, data, len);
  }
}

static int op_apply(int fd, const pc_op *op, uint64_t off, uint64_t len) {
  if (op->kind == OP_TRUNCATE)
    return ftruncate(fd, (off_t)op->off) < 0 ? -errno : 0;
  ssize_t n = pwrite(fd, op->data + (off - op->off), len, (off_t)off);
  return n == (ssize_t)len ? 0 : -EIO;
}

/* What becomes of pending changes: all made durable (an fsync), a random
 * part of them (a cut with --keep random), or none (a cut). */
typedef enum { SETTLE_ALL, SETTLE_RANDOM, SETTLE_NONE } pc_settle;

static bool keep_one(pc_settle how) {
  if (how == SETTLE_ALL) return true;
  bool keep = how == SETTLE_RANDOM && (rng_next() & 1);
  pc.pending++;
  pc.kept += keep;
  return keep;
}

/* Brings the durable copy of f up to date with its pending changes, as how
 * says; a write is kept or lost page by page (4 KiB of file offset). */
static int file_settle(pc_file *f, pc_settle how) {
  char p[PC_PATH_MAX];
  spath(p, f->id);
  int fd = open(p, O_WRONLY);
  if (fd < 0) return -errno;
  int rc = 0;
  for (size_t i = 0; i < f->nops && rc == 0; i++) {
    const pc_op *op = &f->ops[i];
    if (op->kind == OP_TRUNCATE) {
      if (keep_one(how)) rc = op_apply(fd, op, op->off, 0);
      continue;
    }
    for (uint64_t off = op->off; off < op->off + op->len && rc == 0;) {
      uint64_t end = (off / PC_PAGE_BYTES + 1) * PC_PAGE_BYTES;
      if (end > op->off + op->len) end = op->off + op->len;
      if (keep_one(how)) rc = op_apply(fd, op, off, end - off);
      off = end;
    }
  }
  close(fd);
  for (size_t i = 0; i < f->nops; i++)
    free(f->ops[i].data);
  f->nops = 0;
  return rc;
}

static void dir_add_op(pc_dir *d, pc_dop_kind kind, const char *name,
                       const char *name2, pc_file *file, pc_dir *child) {
  PUSH(d->ops, d->nops, d->capops);
  pc_dop *op = &d->ops[d->nops++];
  op->kind = kind;
  op->name = strdup(name);
  op->name2 = name2 ? strdup(name2) : NULL;
  op->file = file;
  op->dir = child;
}

static ssize_t dur_find(const pc_dir *d, const char *name) {
  for (size_t i = 0; i < d->ndur; i++)
    if (strcmp(d->dur[i].name, name) == 0) return (ssize_t)i;
  return -1;
}

static void dur_remove(pc_dir *d, const char *name) {
  ssize_t i = dur_find(d, name);
  if (i < 0) return;
  free(d->dur[i].name);
  d->dur[i] = d->dur[--d->ndur];
}

static void dur_put(pc_dir *d, const char *name, pc_file *f, pc_dir *child) {
  dur_remove(d, name);
  PUSH(d->dur, d->ndur, d->capdur);
  d->dur[d->ndur++] = (pc_entry){strdup(name), f, child};
}

/* Makes d's pending entry changes durable as how says: all, a random
 * prefix, or none. */
static void dir_settle(pc_dir *d, pc_settle how) {
  size_t keep = how == SETTLE_ALL ? d->nops : 0;
  if (how == SETTLE_RANDOM && d->nops)
    keep = (size_t)(rng_next() % (d->nops + 1));
  if (how != SETTLE_ALL) {
    pc.dpending += d->nops;
    pc.dkept += keep;
  }
  for (size_t i = 0; i < d->nops; i++) {
    pc_dop *op = &d->ops[i];
    if (i < keep) {
      if (op->kind == DOP_ADD) {
        dur_put(d, op->name, op->file, op->dir);
      } else if (op->kind == DOP_REMOVE) {
        dur_remove(d, op->name);
      } else {
        ssize_t j = dur_find(d, op->name);
        if (j >= 0) {
          pc_entry e = d->dur[j];
          dur_put(d, op->name2, e.file, e.dir);
          dur_remove(d, op->name);
        }
      }
    }
    free(op->name);
    free(op->name2);
  }
  d->nops = 0;
}

/* ------------------------------------------------------------- mount */

/* Records BACKING as it is: every file's content is durable. */
static int scan(const char *rel, pc_dir *d) {
  char p[PC_PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", pc.backing, rel);
  DIR *dh = opendir(p);
  if (!dh) return -errno;
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(dh))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char child[PC_PATH_MAX], full[PC_ROOT_MAX + PC_PATH_MAX];
    snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
    snprintf(full, sizeof full, "%s/%s", pc.backing, child);
    struct stat st;
    if (lstat(full, &st) < 0) {
      rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
      pc_dir *c = dir_new(child);
      dur_put(d, de->d_name, NULL, c);
      rc = scan(child, c);
    } else if (S_ISREG(st.st_mode)) {
      pc_file *f = file_new(st.st_ino);
      char sp[PC_PATH_MAX];
      spath(sp, f->id);
      char cmd[4 * PC_PATH_MAX];
      snprintf(cmd, sizeof cmd, "cp -- '%s' '%s'", full, sp);
      rc = system(cmd) == 0 ? 0 : -EIO;
      dur_put(d, de->d_name, f, NULL);
    } else {
      fprintf(stderr, "pcfs: %s: only files and directories\n", full);
      rc = -EPERM;
    }
  }
  closedir(dh);
  return rc;
}

/* ------------------------------------------------------ after the cut */

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  if (ftw->level == 0) return 0;
  return remove(p) < 0 ? -1 : 0;
}

static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY), out = -1, rc = 0;
  if (in >= 0) out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0) rc = -errno;
  char buf[65536];
  ssize_t n;
  while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) rc = -EIO;
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return rc;
}

static int rebuild(const pc_dir *d, const char *dest) {
  for (size_t i = 0; i < d->ndur; i++) {
    char p[PC_PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", dest, d->dur[i].name);
    int rc;
    if (d->dur[i].dir) {
      rc = mkdir(p, 0755) < 0 ? -errno : rebuild(d->dur[i].dir, p);
    } else {
      char sp[PC_PATH_MAX];
      spath(sp, d->dur[i].file->id);
      rc = copy_file(sp, p);
    }
    if (rc) return rc;
  }
  return 0;
}

/* BACKING becomes what a machine would find after the power came back. */
static int power_restore(void) {
  pc_settle how = pc.keep_random ? SETTLE_RANDOM : SETTLE_NONE;
  for (size_t i = 0; i < pc.nfiles; i++) {
    int rc = file_settle(pc.files[i], how);
    if (rc) return rc;
  }
  for (size_t i = 0; i < pc.ndirs; i++)
    dir_settle(pc.dirs[i], how);
  if (nftw(pc.backing, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0) return -errno;
  pc_dir *root = NULL;
  for (size_t i = 0; i < pc.ndirs; i++)
    if (pc.dirs[i]->path && !*pc.dirs[i]->path) root = pc.dirs[i];
  int rc = rebuild(root, pc.backing);
  fprintf(stderr,
          "pcfs: power cut: kept %llu of %llu pending file changes, %llu of "
          "%llu pending directory changes\n",
          (unsigned long long)pc.kept, (unsigned long long)pc.pending,
          (unsigned long long)pc.dkept, (unsigned long long)pc.dpending);
  return rc;
}

/* ------------------------------------------------------ the operations */

#define CUT_CHECK()                                                            \
  do {                                                                         \
    if (pc_cut) return -EIO;                                                   \
  } while (0)

static pc_handle *handle(struct fuse_file_info *fi) {
  return (pc_handle *)(uintptr_t)fi->fh;
}

static int pc_getattr(const char *path, struct stat *st,
                      struct fuse_file_info *fi) {
  CUT_CHECK();
  char p[PC_PATH_MAX];
  bpath(p, path);
  int r = fi ? fstat(handle(fi)->fd, st) : lstat(p, st);
  return r < 0 ? -errno : 0;
}

static int pc_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
                      off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
  (void)off;
  (void)fi;
  (void)flags;
  CUT_CHECK();
  char p[PC_PATH_MAX];
  bpath(p, path);
  DIR *dh = opendir(p);
  if (!dh) return -errno;
  struct dirent *de;
  while ((de = readdir(dh)))
    fill(buf, de->d_name, NULL, 0, 0);
  closedir(dh);
  return 0;
}

/* Opens the backing file and finds (or, for a new name, makes) its pc_file;
 * a new name is a pending change of its directory. */
static int open_common(const char *path, struct fuse_file_info *fi, bool create,
                       mode_t mode) {
  char p[PC_PATH_MAX];
  bpath(p, path);
  struct stat before;
  bool existed = lstat(p, &before) == 0;
  /* Offsets come from the kernel: O_APPEND would make pwrite ignore them. */
  int flags = fi->flags & ~O_APPEND;
  int fd = create ? open(p, flags | O_CREAT, mode) : open(p, flags);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  pc_file *f = file_by_ino(st.st_ino);
  if (!f) {
    f = file_new(st.st_ino);
    char parent[PC_PATH_MAX];
    const char *name;
    split(path, parent, &name);
    pc_dir *d = dir_find(parent);
    if (!d || existed) {
      fprintf(stderr, "pcfs: %s: not made through pcfs\n", path);
      close(fd);
      return -EIO;
    }
    dir_add_op(d, DOP_ADD, name, NULL, f, NULL);
  }
  if (fi->flags & O_TRUNC) file_add_op(f, OP_TRUNCATE, 0, NULL, 0);
  pc_handle *h = malloc(sizeof *h);
  if (!h) abort();
  h->fd = fd;
  h->file = f;
  h->prev = NULL;
  h->next = pc.handles;
  if (pc.handles) pc.handles->prev = h;
  pc.handles = h;
  fi->fh = (uint64_t)(uintptr_t)h;
  return 0;
}

static int pc_open(const char *path, struct fuse_file_info *fi) {
  CUT_CHECK();
  return open_common(path, fi, false, 0);
}

static int pc_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  CUT_CHECK();
  return open_common(path, fi, true, mode);
}

static int pc_read(const char *path, char *buf, size_t len, off_t off,
                   struct fuse_file_info *fi) {
  (void)path;
  CUT_CHECK();
  ssize_t n = pread(handle(fi)->fd, buf, len, off);
  return n < 0 ? -errno : (int)n;
}

static int pc_write(const char *path, const char *buf, size_t len, off_t off,
                    struct fuse_file_info *fi) {
  (void)path;
  CUT_CHECK();
  pc_handle *h = handle(fi);
  ssize_t n = pwrite(h->fd, buf, len, off);
  if (n < 0) return -errno;
  file_add_op(h->file, OP_WRITE, (uint64_t)off, buf, (uint64_t)n);
  return (int)n;
}

static int pc_truncate(const char *path, off_t size,
                       struct fuse_file_info *fi) {
  CUT_CHECK();
  pc_file *f = NULL;
  int r;
  if (fi) {
    f = handle(fi)->file;
    r = ftruncate(handle(fi)->fd, size);
  } else {
    char p[PC_PATH_MAX];
    bpath(p, path);
    struct stat st;
    if (lstat(p, &st) < 0) return -errno;
    f = file_by_ino(st.st_ino);
    r = truncate(p, size);
  }
  if (r < 0) return -errno;
  if (f) file_add_op(f, OP_TRUNCATE, (uint64_t)size, NULL, 0);
  return 0;
}

static int pc_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path;
  (void)datasync;
  CUT_CHECK();
  return file_settle(handle(fi)->file, SETTLE_ALL);
}

static int pc_fsyncdir(const char *path, int datasync,
                       struct fuse_file_info *fi) {
  (void)datasync;
  (void)fi;
  CUT_CHECK();
  pc_dir *d = dir_find(path + 1);
  if (!d) return -ENOENT;
  dir_settle(d, SETTLE_ALL);
  return 0;
}

static int pc_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  pc_handle *h = handle(fi);
  if (h->prev)
    h->prev->next = h->next;
  else
    pc.handles = h->next;
  if (h->next) h->next->prev = h->prev;
  close(h->fd);
  free(h);
  return 0;
}

/* The backing inode of path lost a name; once it has none, a new file may
 * get its number, so it no longer names this pc_file. */
static void name_gone(ino_t ino, nlink_t links_before) {
  pc_file *f = file_by_ino(ino);
  if (f && links_before <= 1) f->ino = 0;
}

static int pc_unlink(const char *path) {
  CUT_CHECK();
  char p[PC_PATH_MAX], parent[PC_PATH_MAX];
  const char *name;
  bpath(p, path);
  split(path, parent, &name);
  struct stat st;
  if (lstat(p, &st) < 0) return -errno;
  if (unlink(p) < 0) return -errno;
  name_gone(st.st_ino, st.st_nlink);
  pc_dir *d = dir_find(parent);
  if (d) dir_add_op(d, DOP_REMOVE, name, NULL, NULL, NULL);
  return 0;
}

static int pc_rename(const char *from, const char *to, unsigned int flags) {
  CUT_CHECK();
  if (flags) return -EINVAL;
  char pf[PC_PATH_MAX], pt[PC_PATH_MAX];
  bpath(pf, from);
  bpath(pt, to);
  struct stat sf, stt;
  if (lstat(pf, &sf) < 0) return -errno;
  if (S_ISDIR(sf.st_mode)) return -EPERM;
  bool replaced = lstat(pt, &stt) == 0;
  if (rename(pf, pt) < 0) return -errno;
  if (replaced && stt.st_ino != sf.st_ino) name_gone(stt.st_ino, stt.st_nlink);
  char parf[PC_PATH_MAX], part[PC_PATH_MAX];
  const char *nf, *nt;
  split(from, parf, &nf);
  split(to, part, &nt);
  pc_dir *df = dir_find(parf), *dt = dir_find(part);
  if (!df || !dt) return -EIO;
  if (df == dt) {
    dir_add_op(df, DOP_RENAME, nf, nt, NULL, NULL);
  } else {
    dir_add_op(dt, DOP_ADD, nt, NULL, file_by_ino(sf.st_ino), NULL);
    dir_add_op(df, DOP_REMOVE, nf, NULL, NULL, NULL);
  }
  return 0;
}

static int pc_mkdir(const char *path, mode_t mode) {
  CUT_CHECK();
  char p[PC_PATH_MAX], parent[PC_PATH_MAX];
  const char *name;
  bpath(p, path);
  split(path, parent, &name);
  pc_dir *d = dir_find(parent);
  if (!d) return -ENOENT;
  if (mkdir(p, mode) < 0) return -errno;
  dir_add_op(d, DOP_ADD, name, NULL, NULL, dir_new(path + 1));
  return 0;
}

static int pc_rmdir(const char *path) {
  CUT_CHECK();
  char p[PC_PATH_MAX], parent[PC_PATH_MAX];
  const char *name;
  bpath(p, path);
  split(path, parent, &name);
  if (rmdir(p) < 0) return -errno;
  pc_dir *gone = dir_find(path + 1);
  if (gone) {
    free(gone->path);
    gone->path = NULL;
  }
  pc_dir *d = dir_find(parent);
  if (d) dir_add_op(d, DOP_REMOVE, name, NULL, NULL, NULL);
  return 0;
}

static int pc_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
  CUT_CHECK();
  char p[PC_PATH_MAX];
  bpath(p, path);
  int r = fi ? fchmod(handle(fi)->fd, mode) : chmod(p, mode);
  return r < 0 ? -errno : 0;
}

static int pc_utimens(const char *path, const struct timespec tv[2],
                      struct fuse_file_info *fi) {
  CUT_CHECK();
  char p[PC_PATH_MAX];
  bpath(p, path);
  int r = fi ? futimens(handle(fi)->fd, tv) : utimensat(AT_FDCWD, p, tv, 0);
  return r < 0 ? -errno : 0;
}

static int pc_statfs(const char *path, struct statvfs *st) {
  (void)path;
  CUT_CHECK();
  return statvfs(pc.backing, st) < 0 ? -errno : 0;
}

static int pc_unsupported_link(const char *from, const char *to) {
  (void)from;
  (void)to;
  return -EPERM;
}

static void pc_destroy(void *data) {
  (void)data;
  while (pc.handles) {
    pc_handle *h = pc.handles;
    pc.handles = h->next;
    close(h->fd);
    free(h);
  }
  if (pc_cut && (pc_restore_rc = power_restore()) != 0)
    fprintf(stderr, "pcfs: could not rebuild %s after the cut\n", pc.backing);
}

static const struct fuse_operations pc_ops = {
    .getattr = pc_getattr,
    .readdir = pc_readdir,
    .open = pc_open,
    .create = pc_create,
    .read = pc_read,
    .write = pc_write,
    .truncate = pc_truncate,
    .fsync = pc_fsync,
    .fsyncdir = pc_fsyncdir,
    .release = pc_release,
    .unlink = pc_unlink,
    .rename = pc_rename,
    .mkdir = pc_mkdir,
    .rmdir = pc_rmdir,
    .chmod = pc_chmod,
    .utimens = pc_utimens,
    .statfs = pc_statfs,
    .link = pc_unsupported_link,
    .symlink = pc_unsupported_link,
    .destroy = pc_destroy,
};

/* ------------------------------------------------------------------ main */

static void on_usr1(int sig) {
  (void)sig;
  pc_cut = 1;
}

static int usage(void) {
  fprintf(stderr, "usage: pcfs BACKING MOUNTPOINT --state DIR [--seed N] "
                  "[--keep none|random]\n"
                  "  SIGUSR1 cuts the power; unmount with fusermount3 -u.\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *backing = NULL, *mnt = NULL, *state = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--state") && i + 1 < argc) {
      state = argv[++i];
    } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
      pc.rng = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--keep") && i + 1 < argc) {
      const char *k = argv[++i];
      if (strcmp(k, "none") && strcmp(k, "random")) return usage();
      pc.keep_random = !strcmp(k, "random");
    } else if (argv[i][0] == '-') {
      return usage();
    } else if (!backing) {
      backing = argv[i];
    } else if (!mnt) {
      mnt = argv[i];
    } else {
      return usage();
    }
  }
  if (!backing || !mnt || !state) return usage();
  char rb[PATH_MAX], rs[PATH_MAX];
  if (!realpath(backing, rb) || !realpath(state, rs) ||
      strlen(rb) >= PC_ROOT_MAX || strlen(rs) >= PC_ROOT_MAX) {
    fprintf(stderr,
            "pcfs: BACKING and --state must exist, with paths under "
            "%d bytes\n",
            PC_ROOT_MAX);
    return 2;
  }
  memcpy(pc.backing, rb, strlen(rb) + 1);
  memcpy(pc.state, rs, strlen(rs) + 1);
  pc_dir *root = dir_new("");
  if (scan("", root) != 0) {
    fprintf(stderr, "pcfs: cannot read %s\n", pc.backing);
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_usr1};
  sigaction(SIGUSR1, &sa, NULL);
  /* Foreground, one thread: calls are serialised, so a cut falls between
   * two calls, and an fsync answered before it is durable. No kernel
   * caching of attributes, so a size is always the backing file's. */
  char *fargv[] = {
      argv[0],     "-f", "-s", "-o", "attr_timeout=0,entry_timeout=0",
      (char *)mnt, NULL};
  int rc = fuse_main(6, fargv, &pc_ops, NULL);
  /* After a cut the kernel may abort the connection while unmounting (a
   * lazy unmount of a mount still in use): that is the cut's doing; what
   * counts is whether the backing directory was rebuilt. */
  return pc_cut ? (pc_restore_rc != 0) : rc;
}
