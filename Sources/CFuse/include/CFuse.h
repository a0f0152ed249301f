// CFuse: the C shim between libfuse3's low-level API and Swift: the version define (which must be
// in the header to reach Swift's importer), the includes, static inline wrappers for the few
// function-like macros Swift cannot import, and two pieces that need C: the request loop
// (SessionLoop.c) and the SSE4.2 CRC32C (CFuse.c).
#ifndef CFUSE_H
#define CFUSE_H

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/statvfs.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <fcntl.h>
#include <errno.h>
#include <stdint.h>

/// FUSE_ARGS_INIT(0, NULL) as a function.
static inline struct fuse_args cfuse_args_init(void) {
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    return args;
}

static inline int cfuse_s_isdir(mode_t m) { return S_ISDIR(m); }
static inline int cfuse_s_isreg(mode_t m) { return S_ISREG(m); }
static inline int cfuse_s_islnk(mode_t m) { return S_ISLNK(m); }

/// CRC32C (Castagnoli) with the SSE4.2 crc32 instruction, raw: no initial or final inversion
/// (the caller passes ~crc and inverts the result). Only call when cfuse_crc32c_hw_available().
int cfuse_crc32c_hw_available(void);
uint32_t cfuse_crc32c_hw(uint32_t crc, const void *p, size_t n);

/// Serves requests on `threads` workers until unmount or fuse_session_exit; a worker polls for
/// the next request for up to `spin_ns` before it sleeps (SessionLoop.c). Returns 0 or -errno.
int cfuse_session_loop(struct fuse_session *se, unsigned threads, long spin_ns);

#endif
