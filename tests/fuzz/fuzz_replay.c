/*
 * fuzz_replay.c: runs a fuzz target once over every file of its corpus, for
 * builds without libFuzzer (gcc, the plain and sanitizer CI builds).
 *
 * Usage: fuzz_<target>_replay FILE|DIR...  Each directory's files are run in
 * name order. Exits 0 when every input ran (a broken invariant aborts), 1
 * when it was given no input at all, so an emptied corpus cannot pass.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
  return 0;
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0, n;
  unsigned char *buf = malloc(cap);
  while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  /* An exact-size copy, so ASan sees a read one past the input. */
  unsigned char *exact = malloc(len ? len : 1);
  memcpy(exact, buf, len);
  free(buf);
  if (getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "input %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  long inputs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) == 0) inputs++;
      continue;
    }
    struct dirent **names;
    int n = scandir(argv[i], &names, NULL, by_name);
    for (int j = 0; j < n; j++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
      if (names[j]->d_name[0] != '.' && stat(path, &st) == 0 &&
          S_ISREG(st.st_mode) && run_file(path) == 0)
        inputs++;
      free(names[j]);
    }
    free(names);
  }
  printf("%ld inputs ran\n", inputs);
  return inputs > 0 ? 0 : 1;
}
