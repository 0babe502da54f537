// Power-cut recorder, loaded with LD_PRELOAD into a gateway or collector under test.
// It records, in order, every write, truncate, sync, rename and unlink of the files under
// VGW_POWERCUT_DIR (with the bytes written), every socket write that carries an MQTT
// acknowledgement ("acks"), and the process's log lines (writes to fd 1 and 2), to the file
// VGW_POWERCUT_LOG. Several processes may share one log (each record is one O_APPEND write),
// which then orders the gateway's and the collector's steps on one timeline.
// test/harness/powercut.ts builds from that record the states a disk could hold after a power
// cut at any moment: what was synced, plus any subset of what was written since. A SIGKILL
// keeps the page cache; this does not.
//
// Record: u8 kind, u32 file, u64 offset, u32 length, then `length` bytes. A file id carries
// the process's VGW_POWERCUT_TAG (0-255) in its top byte, so processes never share an id.
//   'O' file opened (the bytes are its path), 'W' write, 'T' truncate (offset = new size),
//   'S' fsync/fdatasync, 'U' unlink (bytes: path), 'R' rename (bytes: from NUL to),
//   'A' socket write with an ack (bytes), 'L' log output (bytes); for 'A' and 'L' the file
//   field is the tag alone.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 4096
static uint32_t file_of_fd[MAX_FD]; // 0: not recorded, else file id
static uint32_t next_file = 1;
static uint32_t tag;
static int log_fd = -1;
static char dir[PATH_MAX];
static size_t dir_len;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_renameat)(int, const char *, int, const char *);

// Resolved on first use too: another preloaded library's constructor (libfaketime's) may
// open or write files before this one's has run.
static void load(void) {
  if (real_openat) return;
  real_write = dlsym(RTLD_NEXT, "write");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev = dlsym(RTLD_NEXT, "pwritev");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_close = dlsym(RTLD_NEXT, "close");
  real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_unlink = dlsym(RTLD_NEXT, "unlink");
  real_renameat = dlsym(RTLD_NEXT, "renameat");
}

__attribute__((constructor)) static void init(void) {
  load();
  const char *d = getenv("VGW_POWERCUT_DIR");
  const char *l = getenv("VGW_POWERCUT_LOG");
  if (!d || !l) return;
  strncpy(dir, d, sizeof dir - 1);
  dir_len = strlen(dir);
  const char *t = getenv("VGW_POWERCUT_TAG");
  tag = (uint32_t)(t ? atoi(t) & 0xff : 0) << 24;
  log_fd = real_openat(AT_FDCWD, l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/** One write per record: with O_APPEND, records of several processes and threads never mix. */
static void put(const void *p, size_t n) {
  ssize_t w;
  do w = real_write(log_fd, p, n);
  while (w < 0 && errno == EINTR);
  if (w != (ssize_t)n) abort(); // a record with a hole would build states that never existed
}

/** Records `kind` with the bytes of `iov`, up to `bytes` of them. */
static void record_iov(char kind, uint32_t file, uint64_t offset, const struct iovec *iov, int n, size_t bytes) {
  char *buf = malloc(17 + bytes);
  if (!buf) abort();
  uint32_t len = (uint32_t)bytes;
  buf[0] = kind;
  memcpy(buf + 1, &file, 4);
  memcpy(buf + 5, &offset, 8);
  memcpy(buf + 13, &len, 4);
  size_t at = 17;
  for (int i = 0; i < n && bytes > 0; i++) {
    size_t part = iov[i].iov_len < bytes ? iov[i].iov_len : bytes;
    memcpy(buf + at, iov[i].iov_base, part);
    at += part;
    bytes -= part;
  }
  pthread_mutex_lock(&lock);
  put(buf, at);
  pthread_mutex_unlock(&lock);
  free(buf);
}

static void record(char kind, uint32_t file, uint64_t offset, const void *data, uint32_t len) {
  struct iovec v = {(void *)data, len};
  record_iov(kind, file, offset, &v, 1, len);
}

static int watched_path(const char *path, char *abs) {
  if (log_fd < 0 || !path) return 0;
  if (path[0] == '/') {
    strncpy(abs, path, PATH_MAX - 1);
    abs[PATH_MAX - 1] = 0;
  } else {
    if (!getcwd(abs, PATH_MAX)) return 0;
    strncat(abs, "/", PATH_MAX - strlen(abs) - 1);
    strncat(abs, path, PATH_MAX - strlen(abs) - 1);
  }
  return strncmp(abs, dir, dir_len) == 0 && (abs[dir_len] == '/' || abs[dir_len] == 0);
}

static void opened(int fd, const char *path) {
  char abs[PATH_MAX];
  if (fd < 0 || fd >= MAX_FD || !watched_path(path, abs)) return;
  pthread_mutex_lock(&lock);
  uint32_t file = tag | next_file++;
  file_of_fd[fd] = file;
  pthread_mutex_unlock(&lock);
  record('O', file, 0, abs, (uint32_t)strlen(abs));
}

static int watched(int fd) { return log_fd >= 0 && fd >= 0 && fd < MAX_FD && file_of_fd[fd] != 0; }

static int is_socket(int fd) {
  struct stat st;
  return log_fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void maybe_ack(const struct iovec *iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  if (total == 0 || total > (1 << 20)) return;
  char *buf = malloc(total);
  if (!buf) return;
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  if (memmem(buf, total, "\"acks\"", 6)) record('A', tag, 0, buf, (uint32_t)total);
  free(buf);
}

/** Records the first `bytes` bytes of `iov`: what a (possibly short) write put in the file. */
static void wrote(int fd, const struct iovec *iov, int n, off_t offset, size_t bytes) {
  record_iov('W', file_of_fd[fd], (uint64_t)offset, iov, n, bytes);
}

// The mode argument is there only when a file may be created.
#define MODE_ARG(flags)                       \
  ({                                          \
    mode_t mode_ = 0;                         \
    if ((flags) & (O_CREAT | O_TMPFILE)) {    \
      va_list ap;                             \
      va_start(ap, flags);                    \
      mode_ = va_arg(ap, mode_t);             \
      va_end(ap);                             \
    }                                         \
    mode_;                                    \
  })

int openat(int dirfd, const char *path, int flags, ...) {
  load();
  int fd = real_openat(dirfd, path, flags, MODE_ARG(flags));
  if (dirfd == AT_FDCWD || path[0] == '/') opened(fd, path);
  return fd;
}
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));
int open(const char *path, int flags, ...) { return openat(AT_FDCWD, path, flags, MODE_ARG(flags)); }
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int close(int fd) {
  load();
  if (fd >= 0 && fd < MAX_FD) file_of_fd[fd] = 0;
  return real_close(fd);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  load();
  if (watched(fd)) {
    off_t at = lseek(fd, 0, SEEK_CUR);
    ssize_t w = real_writev(fd, iov, n);
    if (w > 0) wrote(fd, iov, n, at, (size_t)w);
    return w;
  }
  if (is_socket(fd)) maybe_ack(iov, n);
  ssize_t w = real_writev(fd, iov, n);
  if (w > 0 && log_fd >= 0 && (fd == 1 || fd == 2)) record_iov('L', tag, 0, iov, n, (size_t)w);
  return w;
}

ssize_t write(int fd, const void *buf, size_t n) {
  struct iovec v = {(void *)buf, n};
  return writev(fd, &v, 1);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t offset) {
  load();
  ssize_t w = real_pwritev(fd, iov, n, offset);
  if (w > 0 && watched(fd)) wrote(fd, iov, n, offset, (size_t)w);
  return w;
}
ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t offset) __attribute__((alias("pwritev")));

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) {
  struct iovec v = {(void *)buf, n};
  return pwritev(fd, &v, 1, offset);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) __attribute__((alias("pwrite64")));

int ftruncate(int fd, off_t size) {
  load();
  int r = real_ftruncate(fd, size);
  if (r == 0 && watched(fd)) record('T', file_of_fd[fd], (uint64_t)size, NULL, 0);
  return r;
}
int ftruncate64(int fd, off_t size) __attribute__((alias("ftruncate")));

static int synced(int fd, int r) {
  if (r == 0 && watched(fd)) record('S', file_of_fd[fd], 0, NULL, 0);
  return r;
}
int fsync(int fd) { load(); return synced(fd, real_fsync(fd)); }
int fdatasync(int fd) { load(); return synced(fd, real_fdatasync(fd)); }

int unlink(const char *path) {
  load();
  char abs[PATH_MAX];
  int r = real_unlink(path);
  if (r == 0 && watched_path(path, abs)) record('U', tag, 0, abs, (uint32_t)strlen(abs));
  return r;
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
  load();
  char a[PATH_MAX], b[PATH_MAX];
  int r = real_renameat(fromfd, from, tofd, to);
  int absolute = (fromfd == AT_FDCWD || from[0] == '/') && (tofd == AT_FDCWD || to[0] == '/');
  if (r == 0 && absolute && watched_path(from, a) && watched_path(to, b)) {
    size_t la = strlen(a), lb = strlen(b);
    char both[2 * PATH_MAX];
    memcpy(both, a, la);
    both[la] = 0;
    memcpy(both + la + 1, b, lb);
    record('R', tag, 0, both, (uint32_t)(la + 1 + lb));
  }
  return r;
}
int rename(const char *from, const char *to) { return renameat(AT_FDCWD, from, AT_FDCWD, to); }
