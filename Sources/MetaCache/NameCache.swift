// Names too long for a dentry's inline space live here, in slab caches of size classes
// (metafs_name-64, -128, -256), as Linux keeps external names out of struct dentry.
// A name record is just the bytes; its length (and so its class) is kept by the dentry.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class NameCache: @unchecked Sendable {
    static let classSizes = [64, 128, 256]
    let caches: [SlabCache]
    private let c64: SlabCache
    private let c128: SlabCache
    private let c256: SlabCache

    init(pageSize: Int, slabOrder: Int, reserveBytes: Int, accounting: SlabAccounting? = nil) {
        caches = Self.classSizes.map {
            SlabCache(name: "metafs_name-\($0)", objectSize: $0, pageSize: pageSize, slabOrder: slabOrder,
                      reserveBytes: reserveBytes, accounting: accounting)
        }
        c64 = caches[0]; c128 = caches[1]; c256 = caches[2]
    }

    @inline(__always)
    func cache(forLength n: Int) -> SlabCache {
        n <= 64 ? c64 : (n <= 128 ? c128 : c256)
    }

    /// Copies `n` bytes into a new name record; nil if the class's range is exhausted.
    func store(_ name: UnsafeRawPointer, _ n: Int) -> UInt32? {
        let c = cache(forLength: n)
        guard let h = c.allocate() else { return nil }
        memcpy(c.pointer(h), name, n)
        return h
    }

    @inline(__always)
    func pointer(_ h: UInt32, length n: Int) -> UnsafeMutableRawPointer {
        cache(forLength: n).pointer(h)
    }

    /// Frees a name record; true if that emptied its slab.
    @discardableResult
    func free(_ h: UInt32, length n: Int) -> Bool {
        cache(forLength: n).free(h)
    }
}
