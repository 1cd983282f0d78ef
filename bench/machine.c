/* The reproducibility record: see machine.h. */
#define _GNU_SOURCE
#include "machine.h"

#include <finevent/finevent.h>

#include <stdarg.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef FE_BENCH_COMMIT
#define FE_BENCH_COMMIT "unknown"
#endif


static FILE *open_at(const char *root, const char *path) {
  char p[512];
  snprintf(p, sizeof p, "%s%s", root ? root : "", path);
  return fopen(p, "r");
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = '\0';
}

/* Whether the whitespace-separated list holds word. */
static int has_word(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
    if ((p == list || p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':') &&
        (p[n] == ' ' || p[n] == '\n' || p[n] == '\0' || p[n] == '\t'))
      return 1;
  return 0;
}

void machine_probe(machine_t *m, const char *root) {
  memset(m, 0, sizeof *m);
  snprintf(m->cpu, sizeof m->cpu, "unknown");
  snprintf(m->clocksource, sizeof m->clocksource, "unknown");
  m->tsc_invariant = -1;
  FILE *f = open_at(root, "/proc/cpuinfo");
  char line[4096];
  int have_model = 0, have_flags = 0;
  while (f && (!have_model || !have_flags) && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (colon == NULL)
      continue;
    if (!have_model && strncmp(line, "model name", 10) == 0) {
      char *v = colon + 1;
      while (*v == ' ')
        v++;
      snprintf(m->cpu, sizeof m->cpu, "%.127s", v);
      trim(m->cpu);
      have_model = 1;
    } else if (!have_flags && strncmp(line, "flags", 5) == 0) {
      m->tsc_invariant = has_word(colon, "constant_tsc") && has_word(colon, "nonstop_tsc");
      have_flags = 1;
    }
  }
  if (f)
    fclose(f);
  f = open_at(root, "/sys/devices/system/clocksource/clocksource0/current_clocksource");
  if (f && fgets(line, sizeof line, f)) {
    trim(line);
    if (line[0])
      snprintf(m->clocksource, sizeof m->clocksource, "%.63s", line);
  }
  if (f)
    fclose(f);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  m->cores = n > 0 ? (int)n : 0;
  struct utsname u;
  if (uname(&u) == 0)
    snprintf(m->kernel, sizeof m->kernel, "%s %s %s %s", u.sysname, u.release,
             u.version, u.machine);
  else
    snprintf(m->kernel, sizeof m->kernel, "unknown");
  snprintf(m->version, sizeof m->version, "%d.%d.%d", FE_VERSION_MAJOR,
           FE_VERSION_MINOR, FE_VERSION_PATCH);
  snprintf(m->commit, sizeof m->commit, "%s", FE_BENCH_COMMIT[0] ? FE_BENCH_COMMIT : "unknown");
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *machine_tsc_str(const machine_t *m) {
  return m->tsc_invariant > 0 ? "yes" : m->tsc_invariant == 0 ? "no" : "unknown";
}

int machine_text(const machine_t *m, char *buf, size_t size) {
  return snprintf(buf, size,
                  "cpu: %s\ncores: %d\nkernel: %s\nclocksource: %s\n"
                  "tsc_invariant: %s\nversion: %s\ncommit: %s\ndate: %s\n",
                  m->cpu, m->cores, m->kernel, m->clocksource,
                  machine_tsc_str(m), m->version, m->commit, m->date);
}

void machine_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

void machine_json(const machine_t *m, FILE *f) {
  fputs("{\"cpu\":", f);
  machine_json_str(f, m->cpu);
  fprintf(f, ",\"cores\":%d,\"kernel\":", m->cores);
  machine_json_str(f, m->kernel);
  fputs(",\"clocksource\":", f);
  machine_json_str(f, m->clocksource);
  fprintf(f, ",\"tsc_invariant\":\"%s\",\"version\":", machine_tsc_str(m));
  machine_json_str(f, m->version);
  fputs(",\"commit\":", f);
  machine_json_str(f, m->commit);
  fputs(",\"date\":", f);
  machine_json_str(f, m->date);
  fputc('}', f);
}

int bench_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}
