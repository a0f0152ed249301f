// The slab allocator: caches of fixed-size records laid out in page-aligned slabs.
//
// A `SlabCache` owns one reserved range of address space (see VirtualMemory.swift) cut into
// slabs of `pageSize << slabOrder` bytes; slab `i` lives at `base + i * slabSize`. A record is
// named by a 32-bit handle, `slab << slotBits | slot`, so a handle becomes an address with a
// shift, a mask and a multiply. Records carry no allocator metadata: everything the allocator
// knows about a slab sits in a descriptor kept out of the slab page (a second reserved range,
// one fixed-stride descriptor per slab):
//
//     descriptor: live u32 | prev u32 | next u32 | list u8 | resident u8 | pad | live bitmap u64...
//
// plus four atomic counters per slab (pinned, dirty, referenced, spare) that the object caches
// update from their own shard locks as object flags change, so "is this slab freeable, and what
// would emptying it cost?" is a constant-time read. `live`, the bitmap and the slab lists are
// guarded by the cache's mutex.
//
// Slabs sit on one of: the full list, one of eight partial lists bucketed by fill (allocation
// takes a slab from the fullest non-empty bucket, which packs objects densely and lets sparse
// slabs drain), the list of resident empty slabs (at most `keepEmpty` of them, to absorb
// alloc/free churn at a slab boundary), or no list at all once released to the OS; released slab
// indices are reused before the high-water mark grows.
//
// Kinds (segregation, issue 4): a slab holds objects of one kind only (0 or 1; the dentry cache
// puts directory dentries in kind-1 slabs when `segregate` is on), with full and partial lists
// per kind, so the two kinds behave as two slab caches sharing one handle space. `mergeKinds`
// (mount option --merge on) makes every allocation kind 0, as SLUB merges caches of one size.
//
// Accounting: every slab that becomes resident or goes back to the OS is added to or taken from
// `residentBytes` and the shared `SlabAccounting` (the memory budget reads it without a lock).
//
// Lock order: object-cache shard locks are taken before a slab cache's mutex, never after; the
// slab mutex is a leaf (nothing else is locked while it is held).

import Synchronization

/// A handle that names no object.
let nilHandle: UInt32 = .max

/// The per-slab counters that object caches keep in step with their objects' flags.
enum SlabCounter: Int {
    case pinned = 0
    case dirty = 1
    case referenced = 2
    /// Not an object count: non-zero while a page-aware shrinker is emptying the slab, so two
    /// shrinkers running at once do not work on the same slab (see `claim`).
    case claimed = 3
}

/// Resident slab bytes of a group of slab caches, read without a lock (the memory budget).
final class SlabAccounting: @unchecked Sendable {
    let residentBytes = Atomic<Int>(0)
    init() {}
    @inline(__always) var bytes: Int { residentBytes.load(ordering: .relaxed) }
}

/// What a slab holds, read in O(1) (for reclaim policies and tests).
struct SlabSnapshot: Equatable, Sendable {
    var index: Int
    var resident: Bool
    var live: Int
    var pinned: Int
    var dirty: Int
    var referenced: Int
    /// No pinned object: emptying this slab gives a page (or pages) back.
    var freeable: Bool { resident && pinned == 0 }
}

/// Figures for one slab cache (the object caches add hits, misses and the like).
struct SlabFigures: Sendable {
    var liveObjects = 0
    var residentSlabs = 0
    var activeSlabs = 0
    var allocations: UInt64 = 0
    var frees: UInt64 = 0
    var slabsReleased: UInt64 = 0
}

final class SlabCache: @unchecked Sendable {
    let name: String
    let objectSize: Int
    let slabSize: Int
    let slabShift: Int
    let objectsPerSlab: Int
    /// Slab size in units of the configured page size (the `<pagesperslab>` column).
    let pagesPerSlab: Int
    let slotBits: UInt32
    let slotMask: UInt32
    let maxSlabs: Int
    let keepEmpty: Int
    let base: UnsafeMutableRawPointer
    private let region: VirtualRegion
    private let descriptorRegion: VirtualRegion
    private let descriptors: UnsafeMutableRawPointer
    private let descriptorStride: Int
    private let bitmapWords: Int
    private let counterRegion: VirtualRegion
    // Raw memory: four Atomic<UInt32> per slab, initialised when the slab index is first used.
    let counters: UnsafeMutablePointer<Atomic<UInt32>>
    private let state: Mutex<State>
    /// Resident slab bytes of this cache (read without a lock).
    let residentBytes = Atomic<Int>(0)
    /// A cap on this cache's resident slab bytes (`limit CACHE SIZE`); 0: none.
    let limitBytes = Atomic<Int>(0)
    /// Free object slots in resident slabs, and the high-water mark, published for lock-free
    /// readers (the budget's "would this allocation need a new slab?", page ranking).
    let freeSlots = Atomic<Int>(0)
    private let publishedHighWater = Atomic<Int>(0)
    let accounting: SlabAccounting?
    /// Every allocation is kind 0 (slab merging).
    let mergeKinds: Bool

    static let kinds = 2
    private static let emptyList: UInt8 = 1
    private static let fullBase: UInt8 = 2
    private static let partialBase: UInt8 = 4
    private static let partialBuckets = 8

    struct State {
        /// [kind * 8 + fill bucket]
        var partialHeads = InlineArray<16, UInt32>(repeating: nilHandle)
        /// Bit kind * 8 + bucket set when that list is not empty.
        var partialMask: UInt32 = 0
        var fullHeads = InlineArray<2, UInt32>(repeating: nilHandle)
        var kindAllocations = InlineArray<2, UInt64>(repeating: 0)
        var kindFrees = InlineArray<2, UInt64>(repeating: 0)
        var emptyHead: UInt32 = nilHandle
        var emptyResident = 0
        var released: [UInt32] = []
        var highWater = 0
        var figures = SlabFigures()
    }

    /// - Parameters:
    ///   - objectSize: record size in bytes (rounded up to 4).
    ///   - pageSize, slabOrder: a slab is `pageSize << slabOrder` bytes.
    ///   - reserveBytes: address space to reserve; bounds the number of slabs.
    ///   - keepEmpty: empty slabs kept resident rather than handed back at once.
    init(name: String, objectSize: Int, pageSize: Int, slabOrder: Int, reserveBytes: Int, keepEmpty: Int = 1,
         accounting: SlabAccounting? = nil, mergeKinds: Bool = false) {
        precondition(pageSize > 0 && pageSize & (pageSize - 1) == 0 && pageSize % ProcessMemory.pageSize == 0,
                     "MetaCache: pageSize must be a power of two and a multiple of the OS page size")
        precondition(slabOrder >= 0 && slabOrder <= 10, "MetaCache: slabOrder must be in 0...10")
        self.name = name
        self.objectSize = (objectSize + 3) & ~3
        self.slabSize = pageSize << slabOrder
        self.slabShift = slabSize.trailingZeroBitCount
        self.pagesPerSlab = 1 << slabOrder
        self.objectsPerSlab = slabSize / self.objectSize
        precondition(objectsPerSlab >= 8, "MetaCache: \(name): fewer than 8 objects per slab")
        let bits = UInt32(Int.bitWidth - (objectsPerSlab - 1).leadingZeroBitCount)
        self.slotBits = bits
        self.slotMask = (1 << bits) - 1
        // Keep the all-ones handle (nilHandle) out of reach.
        let handleLimit = (1 << (32 - Int(bits))) - 1
        self.maxSlabs = max(1, min(handleLimit, reserveBytes / slabSize))
        self.keepEmpty = keepEmpty
        self.accounting = accounting
        self.mergeKinds = mergeKinds
        self.bitmapWords = (objectsPerSlab + 63) / 64
        self.descriptorStride = 16 + 8 * bitmapWords
        self.region = VirtualRegion.reserve(maxSlabs * slabSize)
        self.base = region.base
        self.descriptorRegion = VirtualRegion.reserve(maxSlabs * descriptorStride)
        self.descriptors = descriptorRegion.base
        self.counterRegion = VirtualRegion.reserve(maxSlabs * 4 * MemoryLayout<UInt32>.stride)
        self.counters = counterRegion.base.bindMemory(to: Atomic<UInt32>.self, capacity: maxSlabs * 4)
        self.state = Mutex(State())
    }

    deinit {
        region.unmap()
        descriptorRegion.unmap()
        counterRegion.unmap()
    }

    // MARK: Handles

    /// The address of the record named by `h`.
    @inline(__always)
    func pointer(_ h: UInt32) -> UnsafeMutableRawPointer {
        base + (Int(h >> slotBits) << slabShift) + Int(h & slotMask) &* objectSize
    }

    @inline(__always)
    func slabIndex(_ h: UInt32) -> Int { Int(h >> slotBits) }

    /// Whether `h` could name a record of this cache (in range; not whether it is live).
    func isValidHandle(_ h: UInt32) -> Bool {
        h != nilHandle && Int(h >> slotBits) < maxSlabs && Int(h & slotMask) < objectsPerSlab
    }

    // MARK: Per-slab counters (lock-free)

    @inline(__always)
    func count(_ h: UInt32, _ counter: SlabCounter, up: Bool) {
        let c = counters + (Int(h >> slotBits) &* 4 &+ counter.rawValue)
        if up {
            c.pointee.wrappingAdd(1, ordering: .relaxed)
        } else {
            c.pointee.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    func counter(slab: Int, _ counter: SlabCounter) -> Int {
        Int((counters + (slab * 4 + counter.rawValue)).pointee.load(ordering: .relaxed))
    }

    // MARK: Descriptors (guarded by `state`)

    @inline(__always) private func desc(_ slab: UInt32) -> UnsafeMutableRawPointer {
        descriptors + Int(slab) * descriptorStride
    }
    @inline(__always) private func live(_ d: UnsafeMutableRawPointer) -> Int {
        Int(d.load(as: UInt32.self))
    }
    @inline(__always) private func setLive(_ d: UnsafeMutableRawPointer, _ v: Int) {
        d.storeBytes(of: UInt32(v), as: UInt32.self)
    }
    @inline(__always) private func prev(_ d: UnsafeMutableRawPointer) -> UInt32 { d.load(fromByteOffset: 4, as: UInt32.self) }
    @inline(__always) private func next(_ d: UnsafeMutableRawPointer) -> UInt32 { d.load(fromByteOffset: 8, as: UInt32.self) }
    @inline(__always) private func setPrev(_ d: UnsafeMutableRawPointer, _ v: UInt32) { d.storeBytes(of: v, toByteOffset: 4, as: UInt32.self) }
    @inline(__always) private func setNext(_ d: UnsafeMutableRawPointer, _ v: UInt32) { d.storeBytes(of: v, toByteOffset: 8, as: UInt32.self) }
    @inline(__always) private func list(_ d: UnsafeMutableRawPointer) -> UInt8 { d.load(fromByteOffset: 12, as: UInt8.self) }
    @inline(__always) private func setList(_ d: UnsafeMutableRawPointer, _ v: UInt8) { d.storeBytes(of: v, toByteOffset: 12, as: UInt8.self) }
    @inline(__always) private func resident(_ d: UnsafeMutableRawPointer) -> Bool { d.load(fromByteOffset: 13, as: UInt8.self) != 0 }
    @inline(__always) private func setResident(_ d: UnsafeMutableRawPointer, _ v: Bool) { d.storeBytes(of: v ? 1 : 0, toByteOffset: 13, as: UInt8.self) }
    @inline(__always) private func kind(_ d: UnsafeMutableRawPointer) -> Int { Int(d.load(fromByteOffset: 14, as: UInt8.self)) }
    @inline(__always) private func setKind(_ d: UnsafeMutableRawPointer, _ v: Int) { d.storeBytes(of: UInt8(v), toByteOffset: 14, as: UInt8.self) }
    @inline(__always) private func bitmap(_ d: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt64> {
        (d + 16).assumingMemoryBound(to: UInt64.self)
    }

    private func initDescriptor(_ slab: UInt32) {
        let d = desc(slab)
        // Fresh mmap memory is zero; bind it to the types it holds from now on.
        _ = (d + 16).bindMemory(to: UInt64.self, capacity: bitmapWords)
        setLive(d, 0); setPrev(d, nilHandle); setNext(d, nilHandle); setList(d, 0); setResident(d, false); setKind(d, 0)
        let bm = bitmap(d)
        for w in 0..<bitmapWords { bm[w] = 0 }
        let tail = objectsPerSlab % 64
        if tail != 0 { bm[bitmapWords - 1] = ~UInt64(0) << UInt64(tail) }   // slots past the end never allocate
        for k in 0..<4 { (counters + (Int(slab) * 4 + k)).initialize(to: Atomic<UInt32>(0)) }
    }

    @inline(__always) private func listFor(live: Int, kind: Int) -> UInt8 {
        if live == 0 { return Self.emptyList }
        if live == objectsPerSlab { return Self.fullBase + UInt8(kind) }
        return Self.partialBase + UInt8(kind * Self.partialBuckets + (live * Self.partialBuckets - 1) / objectsPerSlab)
    }

    private func head(_ list: UInt8, _ s: inout State) -> UInt32 {
        switch list {
        case Self.emptyList: return s.emptyHead
        case Self.fullBase, Self.fullBase + 1: return s.fullHeads[Int(list - Self.fullBase)]
        default: return s.partialHeads[Int(list - Self.partialBase)]
        }
    }

    private func setHead(_ list: UInt8, _ v: UInt32, _ s: inout State) {
        switch list {
        case Self.emptyList: s.emptyHead = v
        case Self.fullBase, Self.fullBase + 1: s.fullHeads[Int(list - Self.fullBase)] = v
        default:
            let b = Int(list - Self.partialBase)
            s.partialHeads[b] = v
            if v == nilHandle { s.partialMask &= ~(1 << UInt32(b)) } else { s.partialMask |= 1 << UInt32(b) }
        }
    }

    private func unlink(_ slab: UInt32, _ s: inout State) {
        let d = desc(slab)
        let l = list(d)
        guard l != 0 else { return }
        let p = prev(d), n = next(d)
        if p != nilHandle { setNext(desc(p), n) } else { setHead(l, n, &s) }
        if n != nilHandle { setPrev(desc(n), p) }
        setPrev(d, nilHandle); setNext(d, nilHandle); setList(d, 0)
        if l == Self.emptyList { s.emptyResident -= 1 }
    }

    private func push(_ slab: UInt32, _ l: UInt8, _ s: inout State) {
        let d = desc(slab)
        let h = head(l, &s)
        setPrev(d, nilHandle); setNext(d, h); setList(d, l)
        if h != nilHandle { setPrev(desc(h), slab) }
        setHead(l, slab, &s)
        if l == Self.emptyList { s.emptyResident += 1 }
    }

    private func releaseToOS(_ slab: UInt32, _ s: inout State) {
        let d = desc(slab)
        unlink(slab, &s)
        region.discard(offset: Int(slab) << slabShift, length: slabSize)
        setResident(d, false)
        residentBytes.wrappingSubtract(slabSize, ordering: .relaxed)
        accounting?.residentBytes.wrappingSubtract(slabSize, ordering: .relaxed)
        s.figures.residentSlabs -= 1
        s.figures.slabsReleased += 1
        s.released.append(slab)
    }

    // MARK: Allocation

    /// A free record (its bytes are unspecified), or nil when the reserved range is exhausted.
    /// `kind` (0 or 1) picks the slabs it may come from (see the header comment).
    func allocate(kind requested: Int = 0) -> UInt32? {
        let k = mergeKinds ? 0 : requested & 1
        return state.withLock { s -> UInt32? in
            var slab: UInt32
            let bits = (s.partialMask >> UInt32(k * Self.partialBuckets)) & 0xFF
            if bits != 0 {
                slab = s.partialHeads[k * Self.partialBuckets + 31 - bits.leadingZeroBitCount]
            } else if s.emptyHead != nilHandle {
                slab = s.emptyHead
                setKind(desc(slab), k)
            } else if let r = s.released.popLast() {
                slab = r
                setResident(desc(slab), true)
                setKind(desc(slab), k)
                s.figures.residentSlabs += 1
                residentBytes.wrappingAdd(slabSize, ordering: .relaxed)
                accounting?.residentBytes.wrappingAdd(slabSize, ordering: .relaxed)
            } else if s.highWater < maxSlabs {
                slab = UInt32(s.highWater)
                s.highWater += 1
                initDescriptor(slab)
                publishedHighWater.store(s.highWater, ordering: .releasing)
                setResident(desc(slab), true)
                setKind(desc(slab), k)
                s.figures.residentSlabs += 1
                residentBytes.wrappingAdd(slabSize, ordering: .relaxed)
                accounting?.residentBytes.wrappingAdd(slabSize, ordering: .relaxed)
            } else {
                return nil
            }
            let d = desc(slab)
            let bm = bitmap(d)
            var slot = -1
            for w in 0..<bitmapWords where bm[w] != ~UInt64(0) {
                let bit = (~bm[w]).trailingZeroBitCount
                bm[w] |= 1 << UInt64(bit)
                slot = w * 64 + bit
                break
            }
            precondition(slot >= 0 && slot < objectsPerSlab, "MetaCache: \(name): slab lists corrupt")
            let old = live(d)
            setLive(d, old + 1)
            if old == 0 { s.figures.activeSlabs += 1 }
            let to = listFor(live: old + 1, kind: k)
            if to != list(d) { unlink(slab, &s); push(slab, to, &s) }
            s.figures.liveObjects += 1
            s.figures.allocations += 1
            s.kindAllocations[k] &+= 1
            freeSlots.store(s.figures.residentSlabs * objectsPerSlab - s.figures.liveObjects, ordering: .relaxed)
            return slab << slotBits | UInt32(slot)
        }
    }

    /// Frees the record named by `h`. Its per-slab counters (pinned, dirty, referenced) must
    /// already have been brought back down by the owner. Returns whether its slab is now empty
    /// (what reclaim counts as a page freed).
    @discardableResult
    func free(_ h: UInt32) -> Bool {
        state.withLock { s -> Bool in
            let slab = h >> slotBits
            let slot = Int(h & slotMask)
            precondition(Int(slab) < s.highWater && slot < objectsPerSlab, "MetaCache: \(name): bad handle \(h)")
            let d = desc(slab)
            let bm = bitmap(d)
            let mask = UInt64(1) << UInt64(slot % 64)
            precondition(bm[slot / 64] & mask != 0, "MetaCache: \(name): double free of handle \(h)")
            bm[slot / 64] &= ~mask
            let now = live(d) - 1
            setLive(d, now)
            s.figures.liveObjects -= 1
            s.figures.frees += 1
            let k = kind(d)
            s.kindFrees[k] &+= 1
            let to = listFor(live: now, kind: k)
            if to != list(d) { unlink(slab, &s); push(slab, to, &s) }
            if now == 0 {
                s.figures.activeSlabs -= 1
                if s.emptyResident > keepEmpty { releaseToOS(slab, &s) }
            }
            freeSlots.store(s.figures.residentSlabs * objectsPerSlab - s.figures.liveObjects, ordering: .relaxed)
            return now == 0
        }
    }

    /// Hands every resident empty slab back to the OS. Returns how many slabs went.
    @discardableResult
    func releaseEmptySlabs() -> Int {
        state.withLock { s in
            var n = 0
            while s.emptyHead != nilHandle {
                releaseToOS(s.emptyHead, &s)
                n += 1
            }
            freeSlots.store(s.figures.residentSlabs * objectsPerSlab - s.figures.liveObjects, ordering: .relaxed)
            return n
        }
    }

    // MARK: Introspection

    var figures: SlabFigures { state.withLock { $0.figures } }

    /// Slab indices ever used (descriptors exist below this).
    var highWater: Int { state.withLock { $0.highWater } }

    /// Bytes held from the OS: resident slabs plus the touched part of the descriptor and
    /// counter ranges.
    var memoryBytes: Int {
        let (resident, hw, releasedCapacity) = state.withLock { s in
            (s.figures.residentSlabs, s.highWater, s.released.capacity)
        }
        return resident * slabSize
            + ProcessMemory.roundUpToPage(hw * descriptorStride)
            + ProcessMemory.roundUpToPage(hw * 4 * MemoryLayout<UInt32>.stride)
            + releasedCapacity * MemoryLayout<UInt32>.stride
    }

    /// The state of one slab (index below `highWater`).
    func snapshot(slab: Int) -> SlabSnapshot {
        state.withLock { _ in
            let d = desc(UInt32(slab))
            return SlabSnapshot(index: slab, resident: resident(d), live: live(d),
                                pinned: counter(slab: slab, .pinned), dirty: counter(slab: slab, .dirty),
                                referenced: counter(slab: slab, .referenced))
        }
    }

    /// Every resident slab's state (what a page-aware shrinker ranks by cost).
    func snapshots() -> [SlabSnapshot] {
        state.withLock { s -> [SlabSnapshot] in
            var out: [SlabSnapshot] = []
            out.reserveCapacity(s.figures.residentSlabs)
            for i in 0..<s.highWater {
                let d = desc(UInt32(i))
                guard resident(d) else { continue }
                out.append(SlabSnapshot(index: i, resident: true, live: live(d),
                                        pinned: counter(slab: i, .pinned), dirty: counter(slab: i, .dirty),
                                        referenced: counter(slab: i, .referenced)))
            }
            return out
        }
    }

    /// The live handles on one slab, in slot order.
    func liveHandles(slab: Int) -> [UInt32] {
        state.withLock { s -> [UInt32] in
            guard slab < s.highWater else { return [] }
            let bm = bitmap(desc(UInt32(slab)))
            var out: [UInt32] = []
            for slot in 0..<objectsPerSlab where bm[slot / 64] & (1 << UInt64(slot % 64)) != 0 {
                out.append(UInt32(slab) << slotBits | UInt32(slot))
            }
            return out
        }
    }

    /// Whether `h` is allocated (a racy read unless the caller excludes frees).
    func isLive(_ h: UInt32) -> Bool {
        guard isValidHandle(h) else { return false }
        return state.withLock { s in
            let slab = h >> slotBits
            guard Int(slab) < s.highWater else { return false }
            let slot = Int(h & slotMask)
            return bitmap(desc(slab))[slot / 64] & (1 << UInt64(slot % 64)) != 0
        }
    }

    /// Sum of one per-slab counter over the resident slabs of one kind.
    func total(_ c: SlabCounter, kind k: Int) -> Int {
        var sum = 0
        racySnapshots { snap, kind in
            guard kind == k else { return }
            switch c {
            case .pinned: sum += snap.pinned
            case .dirty: sum += snap.dirty
            case .referenced: sum += snap.referenced
            case .claimed: break
            }
        }
        return sum
    }

    /// Sum of one per-slab counter over all slabs.
    func total(_ c: SlabCounter) -> Int {
        let hw = highWater
        var sum = 0
        for i in 0..<hw { sum += counter(slab: i, c) }
        return sum
    }

    /// Allocator invariants; empty when they hold. Call while no other thread allocates or frees.
    func checkInvariants() -> [String] {
        state.withLock { s -> [String] in
            var problems: [String] = []
            var live = 0, resident = 0, active = 0, onLists = 0, empties = 0
            for i in 0..<s.highWater {
                let d = desc(UInt32(i))
                let bm = bitmap(d)
                var bits = 0
                for w in 0..<bitmapWords { bits += bm[w].nonzeroBitCount }
                let tail = objectsPerSlab % 64
                if tail != 0 { bits -= 64 - tail }
                if bits != self.live(d) { problems.append("\(name) slab \(i): bitmap has \(bits), live says \(self.live(d))") }
                live += bits
                if self.resident(d) {
                    resident += 1
                    if bits > 0 { active += 1 }
                    if list(d) != listFor(live: bits, kind: kind(d)) { problems.append("\(name) slab \(i): on list \(list(d)), expected \(listFor(live: bits, kind: kind(d)))") }
                    if bits == 0 { empties += 1 }
                } else {
                    if bits != 0 { problems.append("\(name) slab \(i): released with \(bits) live objects") }
                    if list(d) != 0 { problems.append("\(name) slab \(i): released but on list \(list(d))") }
                }
                for c in [SlabCounter.pinned, .dirty, .referenced] where counter(slab: i, c) > bits {
                    problems.append("\(name) slab \(i): \(c) count \(counter(slab: i, c)) > live \(bits)")
                }
            }
            // Walk every list and check the links.
            var lists: [UInt8] = [Self.emptyList, Self.fullBase, Self.fullBase + 1]
            for b in 0..<(Self.partialBuckets * Self.kinds) { lists.append(Self.partialBase + UInt8(b)) }
            for l in lists {
                var prevSlab = nilHandle
                var cur = head(l, &s)
                var steps = 0
                while cur != nilHandle && steps <= s.highWater {
                    let d = desc(cur)
                    if list(d) != l { problems.append("\(name) slab \(cur) linked on list \(l) but marked \(list(d))") }
                    if prev(d) != prevSlab { problems.append("\(name) slab \(cur): bad prev link") }
                    prevSlab = cur
                    cur = next(d)
                    steps += 1
                    onLists += 1
                }
                if steps > s.highWater { problems.append("\(name): list \(l) has a cycle") }
            }
            if onLists != resident { problems.append("\(name): \(onLists) slabs on lists, \(resident) resident") }
            if live != s.figures.liveObjects { problems.append("\(name): \(live) live in bitmaps, figures say \(s.figures.liveObjects)") }
            if resident != s.figures.residentSlabs { problems.append("\(name): \(resident) resident, figures say \(s.figures.residentSlabs)") }
            if active != s.figures.activeSlabs { problems.append("\(name): \(active) active, figures say \(s.figures.activeSlabs)") }
            if empties != s.emptyResident { problems.append("\(name): \(empties) empty resident, count says \(s.emptyResident)") }
            if resident + s.released.count != s.highWater { problems.append("\(name): resident + released != high water") }
            if residentBytes.load(ordering: .relaxed) != resident * slabSize { problems.append("\(name): resident bytes \(residentBytes.load(ordering: .relaxed)), slabs say \(resident * slabSize)") }
            for i in 0..<s.highWater where counter(slab: i, .claimed) != 0 { problems.append("\(name) slab \(i): still claimed") }
            return problems
        }
    }

    // MARK: Reclaim support (Shrinker.swift, PageSelection.swift)

    /// The state of every resident slab, read without the cache's mutex: the per-slab counts
    /// are atomics and a descriptor's live count and kind are read racily (a page-aware shrinker
    /// ranks by them and then verifies every object under its owner's lock).
    func racySnapshots(_ body: (SlabSnapshot, Int) -> Void) {
        let hw = publishedHighWater.load(ordering: .acquiring)
        for i in 0..<hw {
            let d = desc(UInt32(i))
            guard resident(d) else { continue }
            let n = live(d)
            guard n > 0 else { continue }
            body(SlabSnapshot(index: i, resident: true, live: n, pinned: counter(slab: i, .pinned),
                              dirty: counter(slab: i, .dirty), referenced: counter(slab: i, .referenced)), kind(d))
        }
    }

    /// Live objects on slab `slab`, read racily.
    @inline(__always)
    func racyLive(slab: Int) -> Int {
        guard slab < publishedHighWater.load(ordering: .acquiring) else { return 0 }
        return live(desc(UInt32(slab)))
    }

    /// Marks a slab as being emptied by one shrinker; false if another already has it.
    func claim(slab: Int) -> Bool {
        (counters + (slab * 4 + SlabCounter.claimed.rawValue)).pointee
            .compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
    }

    func unclaim(slab: Int) {
        (counters + (slab * 4 + SlabCounter.claimed.rawValue)).pointee.store(0, ordering: .releasing)
    }

    /// Whether an allocation of this kind could be served without a new slab (racy).
    @inline(__always)
    var hasFreeSlot: Bool { freeSlots.load(ordering: .relaxed) > 0 }

    /// Per-kind figures (for the statistics of segregated caches): live objects, resident and
    /// active slabs, allocations, frees. Walks the descriptors under the mutex.
    func kindFigures(_ k: Int) -> (live: Int, resident: Int, active: Int, allocations: UInt64, frees: UInt64) {
        state.withLock { s in
            var live = 0, resident = 0, active = 0
            for i in 0..<s.highWater {
                let d = desc(UInt32(i))
                guard self.resident(d), kind(d) == k else { continue }
                resident += 1
                let n = self.live(d)
                live += n
                if n > 0 { active += 1 }
            }
            return (live, resident, active, s.kindAllocations[k], s.kindFrees[k])
        }
    }

    /// Kind of the slab holding `h` (racy read; exact for a record its caller keeps allocated).
    func kind(of h: UInt32) -> Int { kind(desc(h >> slotBits)) }
}
