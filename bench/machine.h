/*
 * bench/machine.h: the reproducibility record of a benchmark run.
 *
 * Every output of fe_bench's sweeps and every .hgrm it writes carries this
 * record so that two runs can be compared later: CPU model, online cores,
 * kernel, the kernel's clock source, whether the TSC is invariant
 * (constant_tsc and nonstop_tsc both in the CPU flags), the library
 * version, the git commit the bench was built from (FE_BENCH_COMMIT, set
 * by the Makefile from `git rev-parse --short HEAD`, "unknown" outside
 * git) and the UTC time of the probe.
 *
 * Reentrant; blocking (reads files under /proc and /sys).
 */
#ifndef FE_BENCH_MACHINE_H
#define FE_BENCH_MACHINE_H

#include <stddef.h>
#include <stdio.h>

typedef struct machine {
  char cpu[128];        /* "model name" of the first CPU, or "unknown" */
  int cores;            /* online CPUs */
  char kernel[272];     /* uname: sysname release version machine */
  char clocksource[64]; /* current_clocksource, or "unknown" */
  int tsc_invariant;    /* 1 yes, 0 no, -1 unknown (no cpuinfo flags) */
  char version[32];     /* libfinevent MAJOR.MINOR.PATCH */
  char commit[48];      /* git short hash the bench was built from */
  char date[32];        /* UTC, ISO 8601 */
} machine_t;

/* Probes this machine.  root: prefix for /proc/cpuinfo and
 * /sys/devices/system/clocksource/... ("" or NULL for the real ones; tests
 * point it at a fixture tree).  Missing files give "unknown" / -1; cannot
 * fail. */
void machine_probe(machine_t *m, const char *root);

/* "yes", "no" or "unknown". */
const char *machine_tsc_str(const machine_t *m);

/* The record as "key: value" lines (cpu, cores, kernel, clocksource,
 * tsc_invariant, version, commit, date), each ending in '\n', into buf.
 * Returns the length it needed (as snprintf). */
int machine_text(const machine_t *m, char *buf, size_t size);

/* The record as one JSON object (no trailing newline) on f. */
void machine_json(const machine_t *m, FILE *f);

/* Helpers the bench modules share. */

/* Formats a message into err (errlen bytes; err may be NULL) and returns
 * -1, for "return bench_errf(err, errlen, ...);". */
int bench_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s as a JSON string literal (quotes and escapes included). */
void machine_json_str(FILE *f, const char *s);

#endif
