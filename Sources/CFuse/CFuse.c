// The hardware CRC32C the store uses for its checksums (the rest of the shim is include/CFuse.h
// and the request loop, SessionLoop.c). Swift has no access to the SSE4.2 crc32 instruction, and
// the table-driven CRC cost about 2 us per 4 KiB metadata block verified on a cache miss
// (docs/PERFORMANCE.md).
#include "CFuse.h"
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n > 0) {
        c32 = _mm_crc32_u8(c32, *p++);
        n--;
    }
    return c32;
}

int cfuse_crc32c_hw_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

uint32_t cfuse_crc32c_hw(uint32_t crc, const void *p, size_t n) {
    return crc32c_sse42(crc, (const unsigned char *)p, n);
}
#else
int cfuse_crc32c_hw_available(void) { return 0; }
uint32_t cfuse_crc32c_hw(uint32_t crc, const void *p, size_t n) { (void)p; (void)n; return crc; }
#endif
