// The inode cache: inode records keyed by inode number in a sharded hash table; each record also
// roots the inode's extent status tree (ExtentCache works under the same shard locks).
//
// Inode record (152 bytes; 26 to a 4 KiB slab):
//
//       0  header (ObjectHeader.swift)     cache bits: 0x1 = stub (extents only, no attributes)
//      20  hashNext     u32
//      24  ino          u64
//      32  alias        u32   a hashed dentry naming this directory (children find and pin it)
//      36  extentRoot   u32   treap root (ExtentTree.swift)
//      40  extentCount  u32
//      44  dirtyExtents u32
//      48  esPrev/esNext u32 x2   list of inodes that have extents (round-robin for the shrinker)
//      56  edPrev/edNext u32 x2   list of inodes that have dirty extents (writeback)
//      64  rdev, size, blocks, atime.sec, mtime.sec, ctime.sec       u64 x6
//     112  mode, nlink, uid, gid, atime.nsec, mtime.nsec, ctime.nsec, generation, flags   u32 x9
//     148  spare u32
//
// A stub record exists when extents are cached for an inode whose attributes are not: get()
// and contains() do not see it, insert() turns it into a full record, and it goes when its last
// extent goes. An inode removed while pinned becomes a zombie: unhashed, on its shard's zombie
// list (through the LRU links), freed by the unpin that drops its last pin.

import Synchronization

struct InodeRef {
    let p: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { self.p = p }

    static let stubBit: UInt32 = 0x1

    var header: HeaderRef { HeaderRef(p) }
    var hashNext: UInt32 {
        get { p.load(fromByteOffset: 20, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 20, as: UInt32.self) }
    }
    var ino: UInt64 {
        get { p.load(fromByteOffset: 24, as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 24, as: UInt64.self) }
    }
    var alias: UInt32 {
        get { p.load(fromByteOffset: 32, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 32, as: UInt32.self) }
    }
    var extentRoot: UInt32 {
        get { p.load(fromByteOffset: 36, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 36, as: UInt32.self) }
    }
    var extentCount: Int {
        get { Int(p.load(fromByteOffset: 40, as: UInt32.self)) }
        nonmutating set { p.storeBytes(of: UInt32(newValue), toByteOffset: 40, as: UInt32.self) }
    }
    var dirtyExtents: Int {
        get { Int(p.load(fromByteOffset: 44, as: UInt32.self)) }
        nonmutating set { p.storeBytes(of: UInt32(newValue), toByteOffset: 44, as: UInt32.self) }
    }
    var isStub: Bool { header.cacheBits & Self.stubBit != 0 }

    static let extentList = Links(prev: 48, next: 52)
    static let dirtyExtentList = Links(prev: 56, next: 60)

    var attributes: InodeAttributes {
        get {
            InodeAttributes(
                ino: ino,
                mode: p.load(fromByteOffset: 112, as: UInt32.self),
                nlink: p.load(fromByteOffset: 116, as: UInt32.self),
                uid: p.load(fromByteOffset: 120, as: UInt32.self),
                gid: p.load(fromByteOffset: 124, as: UInt32.self),
                rdev: p.load(fromByteOffset: 64, as: UInt64.self),
                size: p.load(fromByteOffset: 72, as: UInt64.self),
                blocks: p.load(fromByteOffset: 80, as: UInt64.self),
                atime: Timespec(seconds: p.load(fromByteOffset: 88, as: Int64.self),
                                nanoseconds: p.load(fromByteOffset: 128, as: UInt32.self)),
                mtime: Timespec(seconds: p.load(fromByteOffset: 96, as: Int64.self),
                                nanoseconds: p.load(fromByteOffset: 132, as: UInt32.self)),
                ctime: Timespec(seconds: p.load(fromByteOffset: 104, as: Int64.self),
                                nanoseconds: p.load(fromByteOffset: 136, as: UInt32.self)),
                generation: p.load(fromByteOffset: 140, as: UInt32.self),
                flags: p.load(fromByteOffset: 144, as: UInt32.self))
        }
        nonmutating set {
            // `ino` is the key and is written only when the record is created.
            p.storeBytes(of: newValue.rdev, toByteOffset: 64, as: UInt64.self)
            p.storeBytes(of: newValue.size, toByteOffset: 72, as: UInt64.self)
            p.storeBytes(of: newValue.blocks, toByteOffset: 80, as: UInt64.self)
            p.storeBytes(of: newValue.atime.seconds, toByteOffset: 88, as: Int64.self)
            p.storeBytes(of: newValue.mtime.seconds, toByteOffset: 96, as: Int64.self)
            p.storeBytes(of: newValue.ctime.seconds, toByteOffset: 104, as: Int64.self)
            p.storeBytes(of: newValue.mode, toByteOffset: 112, as: UInt32.self)
            p.storeBytes(of: newValue.nlink, toByteOffset: 116, as: UInt32.self)
            p.storeBytes(of: newValue.uid, toByteOffset: 120, as: UInt32.self)
            p.storeBytes(of: newValue.gid, toByteOffset: 124, as: UInt32.self)
            p.storeBytes(of: newValue.atime.nanoseconds, toByteOffset: 128, as: UInt32.self)
            p.storeBytes(of: newValue.mtime.nanoseconds, toByteOffset: 132, as: UInt32.self)
            p.storeBytes(of: newValue.ctime.nanoseconds, toByteOffset: 136, as: UInt32.self)
            p.storeBytes(of: newValue.generation, toByteOffset: 140, as: UInt32.self)
            p.storeBytes(of: newValue.flags, toByteOffset: 144, as: UInt32.self)
        }
    }

    static let size = 152
}

/// One lock shard of the inode table (and of the extent trees rooted in its inodes).
struct InodeShard {
    var buckets: HashBuckets
    var count = 0
    var stubs = 0
    var lru = ObjectList()
    var dirty = ObjectList()
    var zombies = ObjectList()          // through the LRU links
    var withExtents = ObjectList()      // InodeRef.extentList
    var withDirtyExtents = ObjectList() // InodeRef.dirtyExtentList
    var extentRotor: UInt32 = nilHandle
}

public final class InodeCache: @unchecked Sendable {
    let slab: SlabCache
    let extentSlab: SlabCache
    let shards: ShardedMutex<InodeShard>
    let shardMask: Int
    /// inode hits (0) and misses (1), extent hits (2) and misses (3), lock-free reads that had
    /// to be redone under the lock (4).
    let events = StripedCounters()

    private let dirtyRotor = Atomic<Int>(0)
    /// The memory budget every allocation is admitted by (Budget.swift).
    let budget: MemoryBudget
    /// I/O in flight, per stripe of inode numbers (ExtentCache.beginIO): while a stripe's count
    /// is not zero, reclaim leaves the extents (and the inode records) of its inodes alone. A
    /// stripe is shared by many inodes, so this errs on the side of keeping.
    let ioStripes: UnsafeMutablePointer<Atomic<UInt32>>
    static let ioStripeCount = 4096

    init(configuration c: CacheConfiguration, budget: MemoryBudget) {
        self.budget = budget
        slab = SlabCache(name: "metafs_inode", objectSize: InodeRef.size, pageSize: c.pageSize,
                         slabOrder: c.slabOrder, reserveBytes: c.reserveBytesPerCache, accounting: budget.accounting)
        extentSlab = SlabCache(name: "metafs_extent", objectSize: ExtentRef.size, pageSize: c.pageSize,
                               slabOrder: c.slabOrder, reserveBytes: c.reserveBytesPerCache, accounting: budget.accounting)
        ioStripes = UnsafeMutablePointer<Atomic<UInt32>>.allocate(capacity: Self.ioStripeCount)
        for i in 0..<Self.ioStripeCount { (ioStripes + i).initialize(to: Atomic(0)) }
        let n = nextPowerOfTwo(max(1, c.shards))
        shardMask = n - 1
        let buckets = nextPowerOfTwo(max(1024, c.expectedObjects / n))
        let maxBuckets = max(buckets, nextPowerOfTwo(min(1 << 26, c.reserveBytesPerCache / InodeRef.size / n)))
        shards = ShardedMutex(count: n) { _ in InodeShard(buckets: HashBuckets(count: buckets, maxCount: maxBuckets)) }
    }

    deinit {
        for i in 0..<shards.count { shards.withLock(i) { $0.buckets.release() } }
        ioStripes.deinitialize(count: Self.ioStripeCount)
        ioStripes.deallocate()
    }

    @inline(__always) func ioStripe(_ ino: UInt64) -> UnsafeMutablePointer<Atomic<UInt32>> {
        ioStripes + Int(truncatingIfNeeded: mix64(ino ^ 0x5bd1_e995) & UInt64(Self.ioStripeCount - 1))
    }

    /// Whether I/O may be in flight on `ino` (see `ioStripes`).
    @inline(__always) func ioBusy(_ ino: UInt64) -> Bool { ioStripe(ino).pointee.load(ordering: .relaxed) != 0 }

    @inline(__always) func hash(_ ino: UInt64) -> UInt64 { mix64(ino) }
    @inline(__always) func shardIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> 48) & shardMask }
    @inline(__always) func ref(_ h: UInt32) -> InodeRef { InodeRef(slab.pointer(h)) }

    /// The hashed record for `ino` (stub or not), or nilHandle. Caller holds the shard lock.
    @inline(__always)
    func find(_ s: inout InodeShard, _ ino: UInt64, _ hash: UInt64) -> UInt32 {
        var h = s.buckets.heads[s.buckets.bucket(hash)]
        while h != nilHandle {
            let r = ref(h)
            if r.ino == ino { return h }
            h = r.hashNext
        }
        return nilHandle
    }

    private func unhash(_ s: inout InodeShard, _ h: UInt32) {
        let r = ref(h)
        let b = s.buckets.bucket(hash(r.ino))
        var cur = s.buckets.heads[b]
        if cur == h {
            s.buckets.heads[b] = r.hashNext
        } else {
            while cur != nilHandle {
                let c = ref(cur)
                if c.hashNext == h { c.hashNext = r.hashNext; break }
                cur = c.hashNext
            }
        }
        r.hashNext = nilHandle
        r.header.clear(ObjectFlag.hashed)
        s.count -= 1
        if r.isStub { s.stubs -= 1 }
    }

    private func growIfNeeded(_ s: inout InodeShard) {
        guard s.buckets.wantsGrowth(s.count) else { return }
        let old = s.buckets.double()
        s.buckets.splitChains(old: old, hash: { hash(ref($0).ino) }, next: { ref($0).hashNext },
                              setNext: { ref($0).hashNext = $1 })
    }

    /// Allocates and hashes a record for `ino` (caller holds the shard lock and knows it is absent).
    func create(_ s: inout InodeShard, _ ino: UInt64, _ hash: UInt64, stub: Bool) -> UInt32? {
        guard let h = slab.allocate() else { return nil }
        let r = ref(h)
        r.header.initialize(flags: ObjectFlag.hashed | ObjectFlag.onLRU)
        if stub { r.header.cacheBits = InodeRef.stubBit; s.stubs += 1 }
        r.ino = ino
        r.alias = nilHandle
        r.extentRoot = nilHandle
        r.extentCount = 0
        r.dirtyExtents = 0
        for off in stride(from: 48, to: 64, by: 4) { r.p.storeBytes(of: nilHandle, toByteOffset: off, as: UInt32.self) }
        r.p.storeBytes(of: UInt32(0), toByteOffset: 148, as: UInt32.self)
        let b = s.buckets.bucket(hash)
        r.hashNext = s.buckets.heads[b]
        s.buckets.heads[b] = h
        s.count += 1
        s.lru.pushFront(h, slab, .lru)
        growIfNeeded(&s)
        return h
    }

    // MARK: Extent bookkeeping (ExtentCache and eviction)

    func tree(_ h: UInt32) -> ExtentTree {
        let r = ref(h)
        return ExtentTree(slab: extentSlab, owner: h, root: r.extentRoot, count: r.extentCount, dirty: r.dirtyExtents)
    }

    /// Writes a tree's root and counts back and keeps the shard's extent lists in step.
    func store(_ t: ExtentTree, _ h: UInt32, _ s: inout InodeShard) {
        let r = ref(h)
        let hadExtents = r.extentCount > 0, hadDirty = r.dirtyExtents > 0
        r.extentRoot = t.root
        r.extentCount = t.count
        r.dirtyExtents = t.dirty
        if hadExtents != (t.count > 0) {
            if t.count > 0 {
                s.withExtents.pushBack(h, slab, InodeRef.extentList)
            } else {
                if s.extentRotor == h { s.extentRotor = s.withExtents.next(of: h, slab, InodeRef.extentList) }
                s.withExtents.remove(h, slab, InodeRef.extentList)
            }
        }
        if hadDirty != (t.dirty > 0) {
            if t.dirty > 0 { s.withDirtyExtents.pushFront(h, slab, InodeRef.dirtyExtentList) }
            else { s.withDirtyExtents.remove(h, slab, InodeRef.dirtyExtentList) }
        }
    }

    /// Frees a stub that no longer holds extents. Returns the slab pages that emptied.
    @discardableResult
    func releaseStubIfEmpty(_ s: inout InodeShard, _ h: UInt32) -> Int {
        let r = ref(h)
        guard r.isStub, r.extentCount == 0, r.header.pins == 0, r.header.has(ObjectFlag.hashed) else { return 0 }
        unhash(&s, h)
        s.lru.remove(h, slab, .lru)
        slab.clearCountedFlags(h)
        r.header.state = 0
        return slab.free(h) ? slab.pagesPerSlab : 0
    }

    /// Unhashes and frees an unpinned record, with its extents. Returns extents freed.
    @discardableResult
    func destroy(_ s: inout InodeShard, _ h: UInt32) -> Int {
        destroyCounting(&s, h).extents
    }

    /// `destroy`, also returning the slab pages (inode and extent slabs) that emptied.
    func destroyCounting(_ s: inout InodeShard, _ h: UInt32) -> (extents: Int, pages: Int) {
        var t = tree(h)
        let n = t.removeAll()
        store(t, h, &s)
        let r = ref(h)
        if r.header.has(ObjectFlag.hashed) {
            unhash(&s, h)
            s.lru.remove(h, slab, .lru)
        }
        if r.header.has(ObjectFlag.dirty) { s.dirty.remove(h, slab, .dirty) }
        slab.clearCountedFlags(h)
        r.header.state = 0
        let pages = t.pagesFreed + (slab.free(h) ? slab.pagesPerSlab : 0)
        return (n, pages)
    }

    // MARK: Public API

    /// The cached attributes of `ino`. A hit sets the referenced bit. Read lock-free first, as
    /// DentryCache.lookup does; a first hit (referenced bit not yet set) or a read that keeps
    /// racing with writers takes the shard lock.
    public func get(_ ino: UInt64) -> InodeAttributes? {
        let hv = hash(ino)
        let si = shardIndex(hv)
        switch optimisticFind(si, ino, hv) {
        case .absent:
            events.add(1)
            return nil
        case .found(let a):
            events.add(0)
            return a
        case .retry:
            break
        }
        events.add(4)
        return shards.withLock(si) { s -> InodeAttributes? in
            let h = find(&s, ino, hv)
            guard h != nilHandle, !ref(h).isStub else { events.add(1); return nil }
            events.add(0)
            slab.markReferenced(h)
            return ref(h).attributes
        }
    }

    private enum Optimistic {
        case absent
        case found(InodeAttributes)
        case retry
    }

    /// A seqlock read of `ino` (see DentryCache.lookup): never faults, validated by the shard's
    /// sequence; `.retry` when it raced too often or the object is not yet referenced.
    @inline(__always)
    private func optimisticFind(_ si: Int, _ ino: UInt64, _ hv: UInt64) -> Optimistic {
        let seq = shards.sequence(si)
        let state = shards.unsafeState(si)
        for _ in 0..<3 {
            let s1 = seq.pointee.load(ordering: .acquiring)
            if s1 & 1 != 0 { continue }
            let buckets = state.pointee.buckets
            var h = buckets.heads[buckets.bucket(hv)]
            var steps = 0
            var sane = true
            while h != nilHandle {
                guard slab.isValidHandle(h), steps < 4096 else { sane = false; break }
                let r = ref(h)
                if r.ino == ino { break }
                h = r.hashNext
                steps &+= 1
            }
            var attributes: InodeAttributes? = nil
            var st: UInt32 = 0
            if sane && h != nilHandle {
                let r = ref(h)
                st = r.header.state
                attributes = r.attributes
            }
            atomicMemoryFence(ordering: .acquiring)
            guard sane, seq.pointee.load(ordering: .relaxed) == s1 else { continue }
            guard let attributes, (st >> ObjectFlag.cacheShift) & InodeRef.stubBit == 0 else { return .absent }
            return st & ObjectFlag.referenced != 0 ? .found(attributes) : .retry
        }
        return .retry
    }

    /// Caches `attributes`, replacing a cached copy (its pins, alias and extents stay). An object
    /// that is dirty stays dirty until `takeDirty` hands it out.
    public func insert(_ attributes: InodeAttributes, dirty: Bool) {
        let ino = attributes.ino
        let hv = hash(ino)
        budget.admit(slab)
        let ok = shards.withWriteLock(shardIndex(hv)) { s -> Bool in
            var h = find(&s, ino, hv)
            if h == nilHandle {
                guard let n = create(&s, ino, hv, stub: false) else { return false }
                h = n
            } else if ref(h).isStub {
                ref(h).header.cacheBits = 0
                s.stubs -= 1
            }
            ref(h).attributes = attributes
            if dirty, slab.setDirtyFlag(h, true) { s.dirty.pushFront(h, slab, .dirty) }
            return true
        }
        if !ok && dirty { fatalError("MetaCache: metafs_inode: reserved address range exhausted") }
    }

    /// Changes a cached inode under its lock and marks it dirty; nil if not cached. `body` must
    /// not call back into the caches (it runs under a shard lock). The inode number cannot change.
    public func update(_ ino: UInt64, _ body: (inout InodeAttributes) -> Void) -> InodeAttributes? {
        let hv = hash(ino)
        return shards.withWriteLock(shardIndex(hv)) { s -> InodeAttributes? in
            let h = find(&s, ino, hv)
            guard h != nilHandle, !ref(h).isStub else { return nil }
            let r = ref(h)
            var a = r.attributes
            body(&a)
            a.ino = ino
            r.attributes = a
            slab.markReferenced(h)
            if slab.setDirtyFlag(h, true) { s.dirty.pushFront(h, slab, .dirty) }
            return a
        }
    }

    /// Drops `ino` now, dirty or not (the inode was freed), with all its extents. If something
    /// still pins it, the record lingers unhashed until the last pin goes.
    public func remove(_ ino: UInt64) {
        let hv = hash(ino)
        shards.withWriteLock(shardIndex(hv)) { s in
            let h = find(&s, ino, hv)
            guard h != nilHandle else { return }
            let r = ref(h)
            if r.header.pins == 0 {
                _ = destroy(&s, h)
                return
            }
            var t = tree(h)
            _ = t.removeAll()
            store(t, h, &s)
            unhash(&s, h)
            s.lru.remove(h, slab, .lru)
            if r.header.has(ObjectFlag.dirty) { s.dirty.remove(h, slab, .dirty) }
            slab.clearCountedFlags(h)
            r.header.clear(ObjectFlag.onLRU)
            r.alias = nilHandle
            s.zombies.pushFront(h, slab, .lru)
        }
    }

    /// Pins a cached inode (an open file). False if it is not cached.
    public func pin(_ ino: UInt64) -> Bool {
        let hv = hash(ino)
        return shards.withLock(shardIndex(hv)) { s -> Bool in
            let h = find(&s, ino, hv)
            guard h != nilHandle, !ref(h).isStub else { return false }
            return slab.pinObject(h)
        }
    }

    /// Drops a pin taken with `pin`.
    public func unpin(_ ino: UInt64) {
        let hv = hash(ino)
        shards.withLock(shardIndex(hv)) { s in
            var h = find(&s, ino, hv)
            if h == nilHandle || ref(h).header.pins == 0 {
                // Removed while open: look among the zombies.
                h = nilHandle
                var cur = s.zombies.head
                while cur != nilHandle {
                    if ref(cur).ino == ino { h = cur; break }
                    cur = s.zombies.next(of: cur, slab, .lru)
                }
            }
            guard h != nilHandle, ref(h).header.pins > 0 else { return }
            unpinLocked(&s, h)
        }
    }

    private func unpinLocked(_ s: inout InodeShard, _ h: UInt32) {
        let left = slab.unpinObject(h)
        if left == 0 && !ref(h).header.has(ObjectFlag.hashed) {
            s.zombies.remove(h, slab, .lru)
            ref(h).header.state = 0
            slab.free(h)
        }
    }

    public func contains(_ ino: UInt64) -> Bool {
        let hv = hash(ino)
        let si = shardIndex(hv)
        switch optimisticFind(si, ino, hv) {
        case .absent: return false
        case .found: return true
        case .retry: break
        }
        return shards.withLock(si) { s -> Bool in
            let h = find(&s, ino, hv)
            return h != nilHandle && !ref(h).isStub
        }
    }

    public var dirtyCount: Int {
        var n = 0
        for i in 0..<shards.count { n += shards.withLock(i) { $0.dirty.count } }
        return n
    }

    /// Up to `limit` dirty inodes, oldest first, copied out and marked clean.
    public func takeDirty(limit: Int) -> [InodeAttributes] {
        var out: [InodeAttributes] = []
        guard limit > 0 else { return out }
        // Start where the last call stopped, so that small batches drain every shard in turn.
        let first = dirtyRotor.wrappingAdd(1, ordering: .relaxed).oldValue
        for k in 0..<shards.count where out.count < limit {
            let i = (first &+ k) & (shards.count - 1)
            shards.withLock(i) { s in
                while out.count < limit, s.dirty.tail != nilHandle {
                    let h = s.dirty.tail
                    s.dirty.remove(h, slab, .dirty)
                    slab.setDirtyFlag(h, false)
                    out.append(ref(h).attributes)
                }
            }
        }
        return out
    }

    // MARK: Pins and aliases used by the dentry cache

    /// Pins the cached (non-stub) inode `ino` for a dentry; its handle, or nilHandle.
    func pinForDentry(_ ino: UInt64) -> UInt32 {
        let hv = hash(ino)
        return shards.withLock(shardIndex(hv)) { s -> UInt32 in
            let h = find(&s, ino, hv)
            guard h != nilHandle, !ref(h).isStub, slab.pinObject(h) else { return nilHandle }
            return h
        }
    }

    /// Drops a pin held through a handle (the record stays allocated while pinned, so its inode
    /// number, and with it its shard, can be read before locking).
    func unpin(handle h: UInt32) {
        guard h != nilHandle else { return }
        let hv = hash(ref(h).ino)
        shards.withLock(shardIndex(hv)) { s in unpinLocked(&s, h) }
    }

    /// Under the lock of directory `dirIno`, runs `body` with its alias dentry (or nilHandle).
    /// Lock order: inode shard, then (inside body) a dentry shard.
    func withAlias<R>(of dirIno: UInt64, _ body: (UInt32) -> R) -> R {
        let hv = hash(dirIno)
        return shards.withLock(shardIndex(hv)) { s -> R in
            let h = find(&s, dirIno, hv)
            guard h != nilHandle, !ref(h).isStub else { return body(nilHandle) }
            return body(ref(h).alias)
        }
    }

    /// Records `dentry` as the alias of the inode at `h` (pinned by that dentry) if `verify`,
    /// run under the inode lock, confirms the dentry is still hashed and names this inode.
    func setAlias(inode h: UInt32, ino: UInt64, dentry: UInt32, verify: () -> Bool) {
        let hv = hash(ino)
        shards.withLock(shardIndex(hv)) { s in
            let r = ref(h)
            guard r.ino == ino, r.header.has(ObjectFlag.hashed), !r.isStub, verify() else { return }
            r.alias = dentry
        }
    }

    /// Forgets `dentry` as the alias of the inode at `h` (which the dentry still pins).
    func clearAlias(inode h: UInt32, dentry: UInt32) {
        guard h != nilHandle else { return }
        let hv = hash(ref(h).ino)
        shards.withLock(shardIndex(hv)) { _ in
            let r = ref(h)
            if r.alias == dentry { r.alias = nilHandle }
        }
    }

    // MARK: Eviction

    /// Frees the clean extents of every inode (dirty ones stay). Returns extents freed.
    func dropCleanExtents() -> Int {
        var freed = 0
        for i in 0..<shards.count {
            shards.withWriteLock(i) { s in
                var h = s.withExtents.head
                while h != nilHandle {
                    let next = s.withExtents.next(of: h, slab, InodeRef.extentList)
                    var t = tree(h)
                    freed += t.removeClean()
                    store(t, h, &s)
                    releaseStubIfEmpty(&s, h)
                    h = next
                }
            }
        }
        return freed
    }

    /// Frees every unpinned inode that is clean and has no dirty extents (and its clean
    /// extents). Returns (inodes, extents) freed.
    func evictUnused() -> (inodes: Int, extents: Int) {
        var inodes = 0, extents = 0
        for i in 0..<shards.count {
            shards.withWriteLock(i) { s in
                var h = s.lru.tail
                while h != nilHandle {
                    let prev = s.lru.prev(of: h, slab, .lru)
                    let r = ref(h)
                    if r.header.pins == 0, !r.header.has(ObjectFlag.dirty), r.dirtyExtents == 0 {
                        extents += destroy(&s, h)
                        inodes += 1
                    }
                    h = prev
                }
            }
        }
        return (inodes, extents)
    }

    // MARK: Figures

    func counts() -> (hits: UInt64, misses: UInt64, extentHits: UInt64, extentMisses: UInt64) {
        (events.total(0), events.total(1), events.total(2), events.total(3))
    }

    var tableBytes: Int {
        var n = shards.memoryBytes + events.memoryBytes
        for i in 0..<shards.count { n += shards.withLock(i) { $0.buckets.memoryBytes } }
        return n
    }
}
