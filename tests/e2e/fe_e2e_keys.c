/*
 * fe_e2e_keys.c: key changes for the end-to-end tests, while the server is
 * stopped (the server reads its keyring at start).
 *
 *   fe_e2e_keys DATA add ACCOUNT rw|ro|admin   prints the new key
 *   fe_e2e_keys DATA revoke KEY_OR_ID
 *
 * It holds the store open while it changes the keys, as the engine asks of
 * every writer of the key file. Exit 0 on success, 1 on failure, 2 on
 * usage.
 */
#include <stdio.h>
#include <string.h>

#include "cs.h"

static int usage(void) {
  fprintf(stderr, "usage: fe_e2e_keys DATA add ACCOUNT rw|ro|admin\n"
                  "       fe_e2e_keys DATA revoke KEY_OR_ID\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 4) return usage();
  const char *dir = argv[1], *cmd = argv[2];
  bool add = strcmp(cmd, "add") == 0;
  if (!(add && argc == 5) && !(strcmp(cmd, "revoke") == 0 && argc == 4))
    return usage();
  if (add && strcmp(argv[4], "rw") != 0 && strcmp(argv[4], "ro") != 0 &&
      strcmp(argv[4], "admin") != 0)
    return usage();

  cs_store *store = NULL;
  cs_keyring *keys = NULL;
  cs_error err = {0};
  int status = 1;
  int rc = cs_open(dir, NULL, &store, &err);
  if (rc != 0) {
    fprintf(stderr, "fe_e2e_keys: %s: %s\n", dir, err.msg);
    return 1;
  }
  rc = cs_keys_open(dir, &keys, &err);
  if (rc != 0) {
    fprintf(stderr, "fe_e2e_keys: keys: %s\n", err.msg);
    goto out;
  }
  if (add) {
    char key[CS_KEY_BYTES + 1];
    cs_key_info info;
    cs_role role = strcmp(argv[4], "ro") == 0      ? CS_ROLE_READ_ONLY
                   : strcmp(argv[4], "admin") == 0 ? CS_ROLE_ADMIN
                                                   : CS_ROLE_READ_WRITE;
    rc = cs_keys_add(keys, argv[3], role, key, &info, &err);
    if (rc != 0) {
      fprintf(stderr, "fe_e2e_keys: add: %s\n", err.msg);
      goto out;
    }
    printf("%s\n", key);
  } else {
    rc = cs_keys_revoke(keys, argv[3], &err);
    if (rc != 0) {
      fprintf(stderr, "fe_e2e_keys: revoke: %s\n", err.msg);
      goto out;
    }
  }
  status = 0;
out:
  if (keys != NULL) cs_keys_close(keys);
  cs_close(store, NULL);
  return status;
}
