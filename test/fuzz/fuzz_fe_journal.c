/*
 * fuzz_fe_journal: the fe-journal tool's commands (tools/fe-journal.c,
 * compiled in with its main renamed) on a fuzzed journal directory (input
 * format: fuzz_util.h): verify, stats, dump, dump --json, truncate
 * --dry-run, truncate --yes, then verify again.  Output goes to
 * /dev/null.
 *
 * Checked beyond "no crash": every exit status is one the tool documents
 * for that command, the read-only commands agree with each other, and
 * after a truncate --yes that succeeded, verify finds no corruption.
 */
#define main fe_journal_tool_main
#include "fe-journal.c"
#undef main

#include "fuzz_util.h"

static int run(int argc, const char *a1, const char *a2) {
  char *argv[5] = {"fe-journal", (char *)a1, (char *)a2, NULL, NULL};
  if (argc == 4) {
    argv[3] = fz_dir;
  } else {
    argv[2] = fz_dir;
  }
  fflush(stdout);
  fflush(stderr);
  int saved = dup(2);
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  dup2(devnull, 2);
  int rc = fe_journal_tool_main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(devnull);
  return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (freopen("/dev/null", "w", stdout) == NULL)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_journal_from(data, size);
  int v = run(3, "verify", NULL);
  if (v != 0 && v != EXIT_CORRUPT && v != EXIT_TORN)
    abort();
  if (run(3, "stats", NULL) != v || run(3, "dump", NULL) != v ||
      run(4, "dump", "--json") != v)
    abort();
  int t = run(4, "truncate", "--dry-run");
  if (t != 0 && t != EXIT_CORRUPT && t != EXIT_HOLE)
    abort();
  if (t == EXIT_HOLE && v == 0)
    abort(); /* a hole in a journal verify calls clean */
  int y = run(4, "truncate", "--yes");
  if (y != 0 && y != EXIT_CORRUPT)
    abort();
  if (y == 0 && t == EXIT_HOLE) {
    int after = run(3, "verify", NULL);
    if (after != 0 && after != EXIT_TORN)
      abort();
  }
  return 0;
}
