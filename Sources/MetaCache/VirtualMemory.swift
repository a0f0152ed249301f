// Memory taken from and given back to the OS, and the process's resident set size.
//
// Every slab cache reserves one contiguous range of address space up front (mmap with
// MAP_NORESERVE: no physical memory and no commit charge until a page is touched). A slab is a
// fixed slot of that range, so a handle turns into an address with a shift and a multiply and no
// table that could move under a concurrent reader. A slab that empties is handed back with
// MADV_DONTNEED: the kernel drops its pages at once (RSS falls) and the range stays mapped, so a
// stale read of a freed record sees zeros instead of faulting. Transparent huge pages are turned
// off for the range so that one 4 KiB slab really is one 4 KiB page of RSS.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A reserved range of anonymous virtual memory (see the comment at the top of this file).

struct VirtualRegion: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int

    /// Reserves `size` bytes (rounded up to the OS page size) of zero-filled, not yet resident memory.
    static func reserve(_ size: Int) -> VirtualRegion {
        let length = ProcessMemory.roundUpToPage(max(size, 1))
        #if os(Linux)
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        #else
        let flags = MAP_PRIVATE | MAP_ANON
        #endif
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, flags, -1, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else {
            fatalError("MetaCache: cannot reserve \(length) bytes of address space (errno \(errno))")
        }
        #if os(Linux)
        _ = madvise(p, length, MADV_NOHUGEPAGE)
        #endif
        return VirtualRegion(base: p, size: length)
    }

    /// Gives the pages of `[offset, offset+length)` back to the OS; they read as zeros afterwards.
    func discard(offset: Int, length: Int) {
        #if os(Linux)
        let rc = madvise(base + offset, length, MADV_DONTNEED)
        #else
        let rc = madvise(base + offset, length, MADV_FREE)
        #endif
        precondition(rc == 0, "MetaCache: madvise failed (errno \(errno))")
    }

    func unmap() {
        _ = munmap(base, size)
    }
}

/// Figures about this process's memory, for tests, benchmarks and the control directory.
public enum ProcessMemory {
    /// The OS page size.
    public static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))

    static func roundUpToPage(_ n: Int) -> Int {
        (n + pageSize - 1) / pageSize * pageSize
    }

    /// Resident set size in bytes, from /proc/self/statm (0 where it is missing).
    public static func residentBytes() -> Int {
        resident().total
    }

    /// Resident memory split into the part backed by files and shared memory (for metafs: the
    /// mapped store, which on real persistent memory would not be page cache at all) and the
    /// anonymous rest (slabs, tables, heaps, stacks), from statm's resident and shared fields.
    public static func resident() -> (total: Int, anonymous: Int, file: Int) {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return (0, 0, 0) }
        defer { close(fd) }
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        let fields = withUnsafeMutableBytes(of: &buffer) { raw -> (Int, Int) in
            let n = read(fd, raw.baseAddress, raw.count)
            guard n > 0 else { return (0, 0) }
            var values = [0, 0, 0]   // size, resident, shared (pages)
            var field = 0
            for i in 0..<n {
                let c = raw[i]
                if c == UInt8(ascii: " ") {
                    field += 1
                    if field == values.count { break }
                } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                    values[field] = values[field] * 10 + Int(c - UInt8(ascii: "0"))
                }
            }
            return (values[1], values[2])
        }
        let total = fields.0 * pageSize, file = min(fields.1 * pageSize, total)
        return (total, total - file, file)
    }
}
