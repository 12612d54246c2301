/*
 * test_fe_process.c: the process's figures for /metrics.
 *
 * Goal: /proc/PID/stat's text parses into the metrics' units (a command
 * name with spaces and parentheses included, fields counted after the last
 * ')'), a short or garbled line is refused and leaves nothing behind,
 * btime is found among /proc/stat's lines, and reading this very process
 * gives sane values (memory, a start time near now, open descriptors).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fe_process.h"

static void test_fe_process_parse_stat(void **state) {
  /* proc(5): pid (comm) state ppid ... utime(14) stime(15) ...
   * starttime(22) vsize(23) rss(24) ...; the name holds ") (" and spaces. */
  const char text[] =
      "4242 (a) b (c d) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
      "250 150 0 0 20 0 3 0 5000 123456789 300 18446744073709551615 1 1 0 "
      "0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
  fe_process_stats p = {0};
  assert_int_equal(fe_process_parse_stat(text, 100, 4096, 1700000000, &p), 0);
  assert_true(p.have_stat);
  assert_true(p.cpu_seconds > 3.999 && p.cpu_seconds < 4.001);
  assert_true(p.start_time_seconds > 1700000049.999 &&
              p.start_time_seconds < 1700000050.001);
  assert_int_equal(p.virtual_bytes, 123456789);
  assert_int_equal(p.resident_bytes, 300 * 4096);

  fe_process_stats q = {0};
  assert_int_equal(fe_process_parse_stat("no parenthesis", 100, 4096, 0, &q),
                   -1);
  assert_int_equal(fe_process_parse_stat("1 (x) S 1 2 3\n", 100, 4096, 0, &q),
                   -1);
  assert_int_equal(
      fe_process_parse_stat("1 (x) S 1 2 3 x 5 6 7 8 9 10 11 12 13 14 15 16 "
                            "17 18 19 20 21\n",
                            100, 4096, 0, &q),
      -1);
  assert_false(q.have_stat);

  uint64_t bt = 0;
  assert_int_equal(fe_process_parse_btime("cpu  1 2 3\nintr 5 6\nbtime "
                                          "1700000000\nprocesses 9\n",
                                          &bt),
                   0);
  assert_int_equal(bt, 1700000000);
  assert_int_equal(fe_process_parse_btime("cpu 1\nctxt 2\n", &bt), -1);
}

static void test_fe_process_read_this_process(void **state) {
  fe_process_stats before;
  fe_process_read(&before);
  fe_process_stats p;
  fe_process_read(&p);
  assert_true(p.have_stat && p.have_fds && p.have_max_fds);
  assert_true(p.resident_bytes > 0);
  assert_true(p.virtual_bytes >= p.resident_bytes);
  double now = (double)time(NULL);
  assert_true(p.start_time_seconds > now - 600 &&
              p.start_time_seconds < now + 2);
  assert_true(p.open_fds >= 3 && p.open_fds <= p.max_fds);
  assert_true(p.cpu_seconds >= 0);
  /* Read each time: a descriptor opened since is counted. */
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  fe_process_stats after;
  fe_process_read(&after);
  close(fd);
  assert_int_equal(after.open_fds, before.open_fds + 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fe_process_parse_stat),
      cmocka_unit_test(test_fe_process_read_this_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
