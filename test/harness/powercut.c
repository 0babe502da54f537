// Power-cut recorder, loaded with LD_PRELOAD into a gateway or collector under test.
// It records, in order, every write, truncate and sync of the files under VGW_POWERCUT_DIR
// (with the bytes written), and every socket write that carries an MQTT acknowledgement
// ("acks"), to the file VGW_POWERCUT_LOG. test/harness/powercut.ts builds from that record
// the states a disk could hold after a power cut at any moment: what was synced, plus any
// subset of what was written since. A SIGKILL keeps the page cache; this does not.
//
// Record: u8 kind, u32 file, u64 offset, u32 length, then `length` bytes.
//   'O' file opened (the bytes are its path), 'W' write, 'T' truncate (offset = new size),
//   'S' fsync/fdatasync, 'U' unlink (bytes: path), 'A' socket write with an ack (bytes).
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
static int file_of_fd[MAX_FD]; // 0: not recorded, else file id
static int next_file = 1;
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

__attribute__((constructor)) static void init(void) {
  real_write = dlsym(RTLD_NEXT, "write");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev = dlsym(RTLD_NEXT, "pwritev");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_close = dlsym(RTLD_NEXT, "close");
  real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_unlink = dlsym(RTLD_NEXT, "unlink");
  const char *d = getenv("VGW_POWERCUT_DIR");
  const char *l = getenv("VGW_POWERCUT_LOG");
  if (!d || !l) return;
  strncpy(dir, d, sizeof dir - 1);
  dir_len = strlen(dir);
  log_fd = real_openat(AT_FDCWD, l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void put(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = real_write(log_fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      abort(); // a record with a hole would build states that never existed
    }
    c += w;
    n -= (size_t)w;
  }
}

static void record_head(char kind, uint32_t file, uint64_t offset, uint32_t len) {
  put(&kind, 1);
  put(&file, 4);
  put(&offset, 8);
  put(&len, 4);
}

static void record(char kind, uint32_t file, uint64_t offset, const void *data, uint32_t len) {
  record_head(kind, file, offset, len);
  if (len) put(data, len);
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
  file_of_fd[fd] = next_file++;
  record('O', (uint32_t)file_of_fd[fd], 0, abs, (uint32_t)strlen(abs));
  pthread_mutex_unlock(&lock);
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
  if (memmem(buf, total, "\"acks\"", 6)) {
    pthread_mutex_lock(&lock);
    record('A', 0, 0, buf, (uint32_t)total);
    pthread_mutex_unlock(&lock);
  }
  free(buf);
}

/** Records the first `bytes` bytes of `iov`: what a (possibly short) write put in the file. */
static void wrote(int fd, const struct iovec *iov, int n, off_t offset, size_t bytes) {
  pthread_mutex_lock(&lock);
  record_head('W', (uint32_t)file_of_fd[fd], (uint64_t)offset, (uint32_t)bytes);
  for (int i = 0; i < n && bytes > 0; i++) {
    size_t part = iov[i].iov_len < bytes ? iov[i].iov_len : bytes;
    put(iov[i].iov_base, part);
    bytes -= part;
  }
  pthread_mutex_unlock(&lock);
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
  int fd = real_openat(dirfd, path, flags, MODE_ARG(flags));
  if (dirfd == AT_FDCWD || path[0] == '/') opened(fd, path);
  return fd;
}
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));
int open(const char *path, int flags, ...) { return openat(AT_FDCWD, path, flags, MODE_ARG(flags)); }
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int close(int fd) {
  if (fd >= 0 && fd < MAX_FD) file_of_fd[fd] = 0;
  return real_close(fd);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  if (watched(fd)) {
    off_t at = lseek(fd, 0, SEEK_CUR);
    ssize_t w = real_writev(fd, iov, n);
    if (w > 0) wrote(fd, iov, n, at, (size_t)w);
    return w;
  }
  if (is_socket(fd)) maybe_ack(iov, n);
  return real_writev(fd, iov, n);
}

ssize_t write(int fd, const void *buf, size_t n) {
  struct iovec v = {(void *)buf, n};
  return writev(fd, &v, 1);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t offset) {
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
  int r = real_ftruncate(fd, size);
  if (r == 0 && watched(fd)) {
    pthread_mutex_lock(&lock);
    record('T', (uint32_t)file_of_fd[fd], (uint64_t)size, NULL, 0);
    pthread_mutex_unlock(&lock);
  }
  return r;
}
int ftruncate64(int fd, off_t size) __attribute__((alias("ftruncate")));

static int synced(int fd, int r) {
  if (r == 0 && watched(fd)) {
    pthread_mutex_lock(&lock);
    record('S', (uint32_t)file_of_fd[fd], 0, NULL, 0);
    pthread_mutex_unlock(&lock);
  }
  return r;
}
int fsync(int fd) { return synced(fd, real_fsync(fd)); }
int fdatasync(int fd) { return synced(fd, real_fdatasync(fd)); }

int unlink(const char *path) {
  char abs[PATH_MAX];
  int r = real_unlink(path);
  if (r == 0 && watched_path(path, abs)) {
    pthread_mutex_lock(&lock);
    record('U', 0, 0, abs, (uint32_t)strlen(abs));
    pthread_mutex_unlock(&lock);
  }
  return r;
}
