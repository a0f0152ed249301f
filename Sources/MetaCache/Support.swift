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

/// A fixed array of shards, each a `Mutex`, a sequence counter and the state they guard, on
/// cache lines of their own, in raw memory so that reaching shard `i` costs an add, with no
/// array bounds check and no reference counting. The state sits beside a `Mutex<Void>` rather
/// than inside a `Mutex<State>`: the states hold raw pointers into slab memory (not Sendable),
/// and keeping them out of the mutex's `sending` value lets the callers' closures borrow name
/// buffers.
///
/// The sequence counter makes each shard a seqlock for readers that want to look without
/// taking the mutex (see DentryCache.lookup): writers that change what such readers read bump
/// it to odd before and to even after, under the mutex.
final class ShardedMutex<State>: @unchecked Sendable {
    let count: Int
    private let storage: UnsafeMutableRawPointer
    private let stride: Int
    private let seqOffset: Int
    private let stateOffset: Int

    init(count: Int, _ make: (Int) -> State) {
        self.count = count
        let lockSize = MemoryLayout<Mutex<Void>>.size
        self.seqOffset = (lockSize + 3) / 4 * 4
        let align = max(MemoryLayout<State>.alignment, 8)
        self.stateOffset = (seqOffset + 4 + align - 1) / align * align
        self.stride = (stateOffset + MemoryLayout<State>.size + 127) / 128 * 128
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: stride * count, alignment: 128)
        for i in 0..<count {
            (storage + i * stride).bindMemory(to: Mutex<Void>.self, capacity: 1).initialize(to: Mutex(()))
            (storage + i * stride + seqOffset).bindMemory(to: Atomic<UInt32>.self, capacity: 1).initialize(to: Atomic(0))
            (storage + i * stride + stateOffset).bindMemory(to: State.self, capacity: 1).initialize(to: make(i))
        }
    }

    deinit {
        for i in 0..<count {
            _ = (storage + i * stride).assumingMemoryBound(to: Mutex<Void>.self).deinitialize(count: 1)
            _ = (storage + i * stride + seqOffset).assumingMemoryBound(to: Atomic<UInt32>.self).deinitialize(count: 1)
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

    /// `withLock` inside a seqlock write section: for changes lock-free readers must not see
    /// half done (hash chains, keys, the values they return).
    @inline(__always)
    func withWriteLock<R>(_ i: Int, _ body: (inout State) -> R) -> R {
        withLock(i) { s -> R in
            writeBegin(i)
            defer { writeEnd(i) }
            return body(&s)
        }
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

    /// Shard `i`'s state, for seqlock readers only (racy reads, validated by the sequence).
    @inline(__always)
    func unsafeState(_ i: Int) -> UnsafeMutablePointer<State> {
        (storage + i &* stride + stateOffset).assumingMemoryBound(to: State.self)
    }

    @inline(__always)
    func sequence(_ i: Int) -> UnsafeMutablePointer<Atomic<UInt32>> {
        (storage + i &* stride + seqOffset).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    /// Marks the start of a change seqlock readers must not see half done. Under the lock.
    @inline(__always)
    func writeBegin(_ i: Int) {
        let q = sequence(i)
        q.pointee.store(q.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
    }

    /// Marks the end of such a change. Under the lock.
    @inline(__always)
    func writeEnd(_ i: Int) {
        let q = sequence(i)
        q.pointee.store(q.pointee.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }
}

/// Event counters spread over cache-line-sized stripes picked by thread, so that threads
/// counting hits at once do not bounce one line between their cores.
final class StripedCounters: @unchecked Sendable {
    static let stripes = 16
    static let perStripe = 8
    private let storage: UnsafeMutablePointer<Atomic<UInt64>>

    init() {
        storage = UnsafeMutableRawPointer.allocate(byteCount: Self.stripes * 128, alignment: 128)
            .bindMemory(to: Atomic<UInt64>.self, capacity: Self.stripes * 16)
        for i in 0..<(Self.stripes * 16) { (storage + i).initialize(to: Atomic(0)) }
    }

    deinit {
        storage.deinitialize(count: Self.stripes * 16)
        UnsafeMutableRawPointer(storage).deallocate()
    }

    @inline(__always)
    func add(_ counter: Int) {
        let t = UInt64(UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))))
        let stripe = Int(truncatingIfNeeded: mix64(t)) & (Self.stripes - 1)
        (storage + (stripe &* 16 &+ counter)).pointee.wrappingAdd(1, ordering: .relaxed)
    }

    func total(_ counter: Int) -> UInt64 {
        var sum: UInt64 = 0
        for s in 0..<Self.stripes { sum &+= (storage + (s * 16 + counter)).pointee.load(ordering: .relaxed) }
        return sum
    }

    var memoryBytes: Int { Self.stripes * 128 }
}

// MARK: Hash buckets

/// The bucket heads of one shard's chained hash table: a power-of-two array of handles in a
/// reserved range of its own, grown in place (the array never moves, so seqlock readers never
/// chase a freed array) and counted by the pages it touches.
struct HashBuckets: @unchecked Sendable {
    let heads: UnsafeMutablePointer<UInt32>
    private(set) var mask: Int
    let maxCount: Int
    private let region: VirtualRegion

    init(count: Int, maxCount: Int) {
        precondition(count > 0 && count & (count - 1) == 0 && maxCount >= count)
        self.maxCount = maxCount
        region = VirtualRegion.reserve(maxCount * MemoryLayout<UInt32>.stride)
        heads = region.base.bindMemory(to: UInt32.self, capacity: maxCount)
        heads.initialize(repeating: nilHandle, count: count)
        mask = count - 1
    }

    var bucketCount: Int { mask + 1 }
    var memoryBytes: Int { ProcessMemory.roundUpToPage(bucketCount * MemoryLayout<UInt32>.stride) }
    var canGrow: Bool { bucketCount * 2 <= maxCount }

    /// Whether a table holding `count` entries should double (load factor above 1.5).
    func wantsGrowth(_ count: Int) -> Bool { count > bucketCount + bucketCount / 2 && canGrow }

    @inline(__always)
    func bucket(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    /// Doubles the table in place. The caller then moves each entry of old bucket `b` whose
    /// hash has bit `old` set to bucket `b + old` (see `splitChains`). Returns `old`.
    mutating func double() -> Int {
        let old = bucketCount
        (heads + old).initialize(repeating: nilHandle, count: old)
        mask = 2 * old - 1
        return old
    }

    /// After `double()`, splits every chain, keeping chain order.
    func splitChains(old: Int, hash: (UInt32) -> UInt64, next: (UInt32) -> UInt32, setNext: (UInt32, UInt32) -> Void) {
        for b in 0..<old {
            var h = heads[b]
            var lowHead = nilHandle, lowTail = nilHandle, highHead = nilHandle, highTail = nilHandle
            while h != nilHandle {
                let n = next(h)
                if Int(truncatingIfNeeded: hash(h)) & old != 0 {
                    if highTail == nilHandle { highHead = h } else { setNext(highTail, h) }
                    highTail = h
                } else {
                    if lowTail == nilHandle { lowHead = h } else { setNext(lowTail, h) }
                    lowTail = h
                }
                h = n
            }
            if lowTail != nilHandle { setNext(lowTail, nilHandle) }
            if highTail != nilHandle { setNext(highTail, nilHandle) }
            heads[b] = lowHead
            heads[b + old] = highHead
        }
    }

    func release() { region.unmap() }
}

@inline(__always)
func nextPowerOfTwo(_ n: Int) -> Int {
    n <= 1 ? 1 : 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)
}

/// Starts a joinable POSIX thread running `body` (Foundation's Thread cannot be joined). The
/// closure, and what it captures, lives until the thread ends. nil if no thread could start.
public func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t? {
    final class Body: @unchecked Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    let box = Unmanaged.passRetained(Body(body)).toOpaque()
    var t = pthread_t()
    let rc = pthread_create(&t, nil, { p in
        Unmanaged<Body>.fromOpaque(p!).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Body>.fromOpaque(box).release()
        return nil
    }
    return t
}
