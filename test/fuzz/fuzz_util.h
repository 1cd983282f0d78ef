/*
 * test/fuzz/fuzz_util.h: what the journal harnesses share, header-only.
 *
 * The journal harnesses turn the fuzzer's bytes into a journal directory
 * and hand it to the code under test.  The input format (also what
 * test/fuzz/gen_seeds.c writes for the seed corpora):
 *
 *   byte 0   flags: FZ_FIX_SUMS, FZ_STRICT, ...
 *   then     up to FZ_MAX_SEGS segments, each a little-endian u32 length
 *            and that many bytes: the file 0000...000<i>.fej, i from 1
 *            (a length past the input's end takes what is left)
 *
 * With FZ_FIX_SUMS the harness recomputes the segment header checksums
 * and, walking each segment's frames as the scanner would, each frame's
 * checksum: without it the fuzzer would have to guess XXH3 values and
 * never get past the framing.  Without the flag, the bytes go to disk as
 * they are, and checksum failures are tested too.
 *
 * Each process works in one scratch directory of its own (under $TMPDIR,
 * else /tmp), emptied before every input and removed at exit.
 */
#ifndef FE_FUZZ_UTIL_H
#define FE_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <finevent/finevent.h>

#include "journal_impl.h" /* the frame format: fe__jframe_sum, ... */

#define FZ_FIX_SUMS 1u
#define FZ_STRICT 2u
#define FZ_MAX_SEGS 8

static char fz_dir[256];

static inline void fz_clear(void) {
  DIR *d = opendir(fz_dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
    unlink(p);
  }
  closedir(d);
}

static inline void fz_cleanup(void) {
  fz_clear();
  rmdir(fz_dir);
}

/* Makes the process's scratch directory (once). */
static inline void fz_setup(void) {
  if (fz_dir[0] != '\0')
    return;
  const char *t = getenv("TMPDIR");
  snprintf(fz_dir, sizeof fz_dir, "%s/fe-fuzz-XXXXXX",
           t != NULL && t[0] != '\0' ? t : "/tmp");
  if (mkdtemp(fz_dir) == NULL) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(fz_cleanup);
}

static inline void fz_write(const char *name, const uint8_t *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", fz_dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    perror("fuzz: open");
    abort();
  }
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) {
      perror("fuzz: write");
      abort();
    }
    p += w;
    n -= (size_t)w;
  }
  close(fd);
}

/* Recomputes the header checksum of segment m[0..size) and the checksum
 * of each frame that fits, stopping at the first frame that does not. */
static inline void fz_fix_sums(uint8_t *m, size_t size) {
  if (size < JHDR)
    return;
  fe__put64(m + 56, XXH3_64bits(m, 56));
  uint64_t off = JHDR;
  while (size - off >= JFRAME) {
    uint8_t *f = m + off;
    uint64_t total = fe__jframe_size(fe__le32(f));
    if (total > size - off)
      break;
    fe__put64(f + 24, fe__jframe_sum(f, f + JFRAME, fe__le32(f)));
    off += total;
  }
}

/* Writes the input's segments into the (emptied) scratch directory and
 * returns the flags byte. */
static inline unsigned fz_journal_from(const uint8_t *data, size_t size) {
  fz_setup();
  fz_clear();
  if (size == 0)
    return 0;
  unsigned flags = data[0];
  size_t off = 1;
  for (uint64_t i = 1; i <= FZ_MAX_SEGS && off < size; i++) {
    uint32_t len = 0;
    if (size - off >= 4) {
      memcpy(&len, data + off, 4);
      off += 4;
    } else {
      off = size;
    }
    size_t n = len < size - off ? len : size - off;
    uint8_t *seg = malloc(n ? n : 1);
    if (seg == NULL)
      abort();
    memcpy(seg, data + off, n);
    if (flags & FZ_FIX_SUMS)
      fz_fix_sums(seg, n);
    char name[JNAME_MAX];
    fe__jseg_name(name, i, 0);
    fz_write(name, seg, n);
    free(seg);
    off += n;
  }
  return flags;
}

#endif /* FE_FUZZ_UTIL_H */
