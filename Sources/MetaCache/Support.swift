// Small building blocks of the caches: hashing, lock shards and hash bucket arrays.

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Hashing

/// MurmurHash3's 64-bit finaliser: a cheap, well-mixing bijection.
@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var h = x
    h ^= h >> 33
    h &*= 0xff51_afd7_ed55_8ccd
    h ^= h >> 33
    h &*= 0xc4ce_b9fe_1a85_ec53
    h ^= h >> 33
    return h
}

/// Hash of a (parent inode, name) key. Reads the name 8 bytes at a time.
func hashName(_ parent: UInt64, _ name: UnsafeRawPointer, _ n: Int) -> UInt64 {
    var h = mix64(parent ^ 0x9e37_79b9_7f4a_7c15) ^ UInt64(truncatingIfNeeded: n)
    var i = 0
    while i &+ 8 <= n {
        let w = name.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ (w &* 0x87c3_7b91_1142_53d5)) &* 0x4cf5_ad43_2745_937f
        h = (h << 31) | (h >> 33)
        i &+= 8
    }
    if i < n {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            w |= UInt64(name.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift &+= 8
            i &+= 1
        }
        h = (h ^ (w &* 0x87c3_7b91_1142_53d5)) &* 0x4cf5_ad43_2745_937f
    }
    return mix64(h)
}

@inline(__always)
func mix32(_ x: UInt32) -> UInt32 {
    var h = x
    h ^= h >> 16
    h &*= 0x85eb_ca6b
    h ^= h >> 13
    h &*= 0xc2b2_ae35
    h ^= h >> 16
    return h
}

// MARK: Lock shards

/// A fixed array of shards, each a `Mutex` and the state it guards, on cache lines of their own,
/// in raw memory so that reaching shard `i` costs an add, with no array bounds check and no
/// reference counting. The state sits beside a `Mutex<Void>` rather than inside a
/// `Mutex<State>`: the states hold raw pointers into slab memory (not Sendable), and keeping
/// them out of the mutex's `sending` value lets the callers' closures borrow name buffers.
final class ShardedMutex<State>: @unchecked Sendable {
    let count: Int
    private let storage: UnsafeMutableRawPointer
    private let stride: Int
    private let stateOffset: Int

    init(count: Int, _ make: (Int) -> State) {
        self.count = count
        let lockSize = MemoryLayout<Mutex<Void>>.size
        let align = max(MemoryLayout<State>.alignment, 8)
        self.stateOffset = (lockSize + align - 1) / align * align
        self.stride = (stateOffset + MemoryLayout<State>.size + 127) / 128 * 128
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: stride * count, alignment: 128)
        for i in 0..<count {
            (storage + i * stride).bindMemory(to: Mutex<Void>.self, capacity: 1).initialize(to: Mutex(()))
            (storage + i * stride + stateOffset).bindMemory(to: State.self, capacity: 1).initialize(to: make(i))
        }
    }

    deinit {
        for i in 0..<count {
            _ = (storage + i * stride).assumingMemoryBound(to: Mutex<Void>.self).deinitialize(count: 1)
            _ = (storage + i * stride + stateOffset).assumingMemoryBound(to: State.self).deinitialize(count: 1)
        }
        storage.deallocate()
    }

    var memoryBytes: Int { stride * count }

    @inline(__always)
    func withLock<R>(_ i: Int, _ body: (inout State) -> R) -> R {
        let base = storage + i &* stride
        let state = (base + stateOffset).assumingMemoryBound(to: State.self)
        nonisolated(unsafe) var result: R? = nil
        base.assumingMemoryBound(to: Mutex<Void>.self).pointee.withLock { _ in
            result = body(&state.pointee)
        }
        return result.unsafelyUnwrapped
    }

    /// Runs `body` if shard `i`'s lock is free right now; nil if it is busy.
    func withLockIfAvailable<R>(_ i: Int, _ body: (inout State) -> R) -> R? {
        let base = storage + i &* stride
        let state = (base + stateOffset).assumingMemoryBound(to: State.self)
        nonisolated(unsafe) var result: R? = nil
        _ = base.assumingMemoryBound(to: Mutex<Void>.self).pointee.withLockIfAvailable { _ in
            result = body(&state.pointee)
        }
        return result
    }
}

// MARK: Hash buckets

/// The bucket heads of one shard's chained hash table: a power-of-two array of handles in pages
/// of its own (mmap), so growing it gives the old pages straight back to the OS.
struct HashBuckets: @unchecked Sendable {
    var heads: UnsafeMutablePointer<UInt32>
    var mask: Int
    private var region: VirtualRegion

    init(count: Int) {
        precondition(count > 0 && count & (count - 1) == 0)
        region = VirtualRegion.reserve(count * MemoryLayout<UInt32>.stride)
        heads = region.base.bindMemory(to: UInt32.self, capacity: count)
        heads.initialize(repeating: nilHandle, count: count)
        mask = count - 1
    }

    var bucketCount: Int { mask + 1 }
    var memoryBytes: Int { region.size }

    @inline(__always)
    func bucket(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    func release() { region.unmap() }
}

@inline(__always)
func nextPowerOfTwo(_ n: Int) -> Int {
    n <= 1 ? 1 : 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)
}
