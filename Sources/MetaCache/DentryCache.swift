// The dentry cache: (parent inode, name) -> inode number and type, positive or negative.
//
// Dentry record (88 bytes; 46 to a 4 KiB slab):
//
//      0  header (ObjectHeader.swift)   cache bits: the DT_* type
//     20  hashNext      u32
//     24  parent        u64   key: the directory's inode number
//     32  ino           u64   0 for a negative dentry
//     40  inodeHandle   u32   the inode this dentry pins (nilHandle if it was not cached)
//     44  parentHandle  u32   the parent directory's dentry this dentry pins (or nilHandle)
//     48  name          40 bytes: [0] length; a name of up to 39 bytes follows inline (Linux's
//                       DNAME_INLINE_LEN is 40 with the terminating NUL); a longer name lives in
//                       a name slab (NameCache.swift): [4..8) its handle, [8..40) its first 32
//                       bytes, so most mismatches are found without leaving the record.
//
// Pins. A positive dentry pins its inode, if cached when the dentry is inserted. Every dentry
// (positive or negative, as in Linux) pins the dentry of its parent directory, found through the
// directory inode's alias: the dentry that names the directory, recorded in the inode record
// when that dentry is inserted. Pins are released when the dentry goes; a dentry removed while
// children pin it becomes a zombie (unhashed, holding nothing) until its last child goes.
//
// Locks, outermost first:
//   1. an inode shard lock (InodeCache / ExtentCache)
//   2. a dentry shard lock: taken inside an inode shard lock only to pin or verify an alias
//   3. slab cache mutexes (leaves; name caches included)
// No path holds two locks of the same level, and no path takes an inode shard lock while it
// holds a dentry shard lock: insert takes its pins before locking its own shard and sets or
// clears aliases after unlocking it. An alias is cleared (under the inode lock) before the
// dentry it names is freed, and set only while that dentry is verified hashed (under both
// locks), so a reader holding the directory's inode lock may trust that the alias names an
// allocated record and read its key to find its shard.

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct DentryRef {
    let p: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { self.p = p }

    static let size = 88
    static let nameOffset = 48
    static let inlineNameMax = 39
    static let dtDir: UInt8 = 4

    var header: HeaderRef { HeaderRef(p) }
    var hashNext: UInt32 {
        get { p.load(fromByteOffset: 20, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 20, as: UInt32.self) }
    }
    var parent: UInt64 {
        get { p.load(fromByteOffset: 24, as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 24, as: UInt64.self) }
    }
    var ino: UInt64 {
        get { p.load(fromByteOffset: 32, as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 32, as: UInt64.self) }
    }
    var inodeHandle: UInt32 {
        get { p.load(fromByteOffset: 40, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 40, as: UInt32.self) }
    }
    var parentHandle: UInt32 {
        get { p.load(fromByteOffset: 44, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 44, as: UInt32.self) }
    }
    var type: UInt8 {
        get { UInt8(truncatingIfNeeded: header.cacheBits) }
        nonmutating set { header.cacheBits = UInt32(newValue & 0xF) }
    }
    var nameLength: Int { Int(p.load(fromByteOffset: Self.nameOffset, as: UInt8.self)) }
    var longNameHandle: UInt32 { p.load(fromByteOffset: Self.nameOffset + 4, as: UInt32.self) }
    var isDirectory: Bool { ino != 0 && type == Self.dtDir }
    var isHashed: Bool { header.has(ObjectFlag.hashed) }
}

/// One lock shard of the dentry hash table, with its part of the LRU and dirty lists.
struct DentryShard {
    var buckets: HashBuckets
    var count = 0
    var negative = 0
    var zombies = 0
    var lru = ObjectList()
    var dirty = ObjectList()
}

/// Told of each dentry the cache evicts under reclaim or drop_caches (not of names removed or
/// replaced: the kernel made those changes itself). Called with the dentry's shard lock held, so
/// it must only record the name and return.
public protocol DentryEvictionObserver: AnyObject, Sendable {
    func dentryEvicted(parent: UInt64, name: UnsafeRawBufferPointer)
}

public final class DentryCache: @unchecked Sendable {
    let slab: SlabCache
    let names: NameCache
    let inodes: InodeCache
    let shards: ShardedMutex<DentryShard>
    let shardMask: Int
    /// hits (0), misses (1), lock-free lookups that had to retry under the lock (2).
    let events = StripedCounters()

    private let dirtyRotor = Atomic<Int>(0)
    /// Leaf and directory dentries in slabs of their own kind (SlabCache kinds 0 and 1).
    let segregate = Atomic<Bool>(false)
    /// Dentries moved to the other kind because what they name changed (counted for the shrinker).
    let relocated = Atomic<UInt64>(0)
    /// Evictions are reported to `evictionObserver` (ReclaimSettings.kernelInvalidate).
    let notifyEvictions = Atomic<Bool>(false)
    private let evictionObserver = Mutex<(any DentryEvictionObserver)?>(nil)
    /// Negative dentries in the table (all shards), for `negative_max`.
    let negativeCount = Atomic<Int>(0)
    /// The memory budget every allocation is admitted by (Budget.swift).
    let budget: MemoryBudget

    init(configuration c: CacheConfiguration, inodes: InodeCache, budget: MemoryBudget) {
        self.inodes = inodes
        self.budget = budget
        slab = SlabCache(name: "metafs_dentry", objectSize: DentryRef.size, pageSize: c.pageSize,
                         slabOrder: c.slabOrder, reserveBytes: c.reserveBytesPerCache,
                         accounting: budget.accounting, mergeKinds: c.merge)
        names = NameCache(pageSize: c.pageSize, slabOrder: c.slabOrder, reserveBytes: c.reserveBytesPerCache / 4,
                          accounting: budget.accounting)
        segregate.store(c.reclaim.segregate, ordering: .relaxed)
        notifyEvictions.store(c.reclaim.kernelInvalidate, ordering: .relaxed)
        let n = nextPowerOfTwo(max(1, c.shards))
        shardMask = n - 1
        let buckets = nextPowerOfTwo(max(1024, c.expectedObjects / n))
        let maxBuckets = max(buckets, nextPowerOfTwo(min(1 << 26, c.reserveBytesPerCache / DentryRef.size / n)))
        shards = ShardedMutex(count: n) { _ in DentryShard(buckets: HashBuckets(count: buckets, maxCount: maxBuckets)) }
    }

    deinit {
        for i in 0..<shards.count { shards.withLock(i) { $0.buckets.release() } }
    }

    @inline(__always) func ref(_ h: UInt32) -> DentryRef { DentryRef(slab.pointer(h)) }
    @inline(__always) func shardIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> 48) & shardMask }

    // MARK: Names

    @inline(__always)
    func nameEquals(_ d: DentryRef, _ name: UnsafeRawPointer, _ n: Int) -> Bool {
        let area = d.p + DentryRef.nameOffset
        guard area.load(as: UInt8.self) == UInt8(truncatingIfNeeded: n) else { return false }
        if n <= DentryRef.inlineNameMax { return memcmp(area + 1, name, n) == 0 }
        guard memcmp(area + 8, name, 32) == 0 else { return false }
        let stored = names.pointer(area.load(fromByteOffset: 4, as: UInt32.self), length: n)
        return memcmp(stored + 32, name + 32, n - 32) == 0
    }

    /// The stored name of a dentry (valid while the record is).
    func namePointer(_ d: DentryRef) -> (UnsafeRawPointer, Int) {
        let n = d.nameLength
        if n <= DentryRef.inlineNameMax { return (UnsafeRawPointer(d.p + DentryRef.nameOffset + 1), n) }
        return (UnsafeRawPointer(names.pointer(d.longNameHandle, length: n)), n)
    }

    private func storeName(_ d: DentryRef, _ name: UnsafeRawPointer, _ n: Int) -> Bool {
        let area = d.p + DentryRef.nameOffset
        area.storeBytes(of: UInt8(n), as: UInt8.self)
        if n <= DentryRef.inlineNameMax {
            memcpy(area + 1, name, n)
            return true
        }
        guard let h = names.store(name, n) else { return false }
        area.storeBytes(of: h, toByteOffset: 4, as: UInt32.self)
        memcpy(area + 8, name, 32)
        return true
    }

    /// The hash of a record's key (the record must stay allocated meanwhile).
    func recordHash(_ h: UInt32) -> UInt64 {
        let d = ref(h)
        let (p, n) = namePointer(d)
        return hashName(d.parent, p, n)
    }

    // MARK: Table

    @inline(__always)
    func find(_ s: inout DentryShard, _ hv: UInt64, _ parent: UInt64, _ name: UnsafeRawPointer, _ n: Int) -> UInt32 {
        var h = s.buckets.heads[s.buckets.bucket(hv)]
        while h != nilHandle {
            let d = ref(h)
            if d.parent == parent && nameEquals(d, name, n) { return h }
            h = d.hashNext
        }
        return nilHandle
    }

    /// Doubles the shard's table when it is loaded past 1.5. Inside a seqlock write section.
    private func growIfNeeded(_ s: inout DentryShard) {
        guard s.buckets.wantsGrowth(s.count) else { return }
        let old = s.buckets.double()
        s.buckets.splitChains(old: old, hash: { recordHash($0) }, next: { ref($0).hashNext },
                              setNext: { ref($0).hashNext = $1 })
    }

    /// Takes a hashed dentry out of the table and off its lists, clearing its counted flags.
    private func unhash(_ s: inout DentryShard, _ h: UInt32, _ hv: UInt64) {
        let d = ref(h)
        let b = s.buckets.bucket(hv)
        var cur = s.buckets.heads[b]
        if cur == h {
            s.buckets.heads[b] = d.hashNext
        } else {
            while cur != nilHandle {
                let c = ref(cur)
                if c.hashNext == h { c.hashNext = d.hashNext; break }
                cur = c.hashNext
            }
        }
        d.hashNext = nilHandle
        s.count -= 1
        if d.ino == 0 { s.negative -= 1; negativeCount.wrappingSubtract(1, ordering: .relaxed) }
        if d.header.has(ObjectFlag.onLRU) {
            s.lru.remove(h, slab, .lru)
            d.header.clear(ObjectFlag.onLRU)
        }
        if d.header.has(ObjectFlag.dirty) { s.dirty.remove(h, slab, .dirty) }
        slab.clearCountedFlags(h)
        d.header.clear(ObjectFlag.hashed)
    }

    /// Frees an unhashed, unpinned record and its long name. Returns the slab pages this emptied.
    @discardableResult
    func freeRecord(_ h: UInt32) -> Int {
        let d = ref(h)
        let n = d.nameLength
        var pages = 0
        if n > DentryRef.inlineNameMax, names.free(d.longNameHandle, length: n) {
            pages += names.cache(forLength: n).pagesPerSlab
        }
        slab.clearCountedFlags(h)
        d.header.state = 0
        if slab.free(h) { pages += slab.pagesPerSlab }
        return pages
    }

    // MARK: Pins

    /// Pins the hashed dentry naming directory `dirIno`, found through its inode's alias.
    private func pinAlias(of dirIno: UInt64) -> UInt32 {
        inodes.withAlias(of: dirIno) { a -> UInt32 in
            guard a != nilHandle else { return nilHandle }
            // `a` stays allocated while the directory's inode lock is held (see the lock notes).
            let hv = recordHash(a)
            return shards.withLock(shardIndex(hv)) { _ -> UInt32 in
                let d = ref(a)
                guard d.isHashed, d.ino == dirIno, d.isDirectory, slab.pinObject(a) else { return nilHandle }
                return a
            }
        }
    }

    /// Drops a pin on a dentry; frees it if it was a zombie and this was its last pin.
    func unpin(dentry h: UInt32) {
        guard h != nilHandle else { return }
        let hv = recordHash(h)
        let free = shards.withLock(shardIndex(hv)) { s -> Bool in
            let left = slab.unpinObject(h)
            guard left == 0, !ref(h).isHashed else { return false }
            s.zombies -= 1
            return true
        }
        if free { freeRecord(h) }
    }

    // MARK: Public API

    /// The cached entry for `name` in directory `parent`. Does not allocate. A hit sets the
    /// referenced bit and leaves the dentry where it is on the LRU (second chance).
    ///
    /// Lookups first read the shard without locking it, as a seqlock reader (the analogue of
    /// Linux's RCU path walk): they write nothing shared, so threads looking up at once do not
    /// bounce lock cache lines between cores. Every handle is range-checked before it is
    /// followed and slab memory stays mapped, so a racing read sees stale bytes, never a fault;
    /// the sequence check then discards it. A hit whose referenced bit is not yet set, or a
    /// read that keeps racing with writers, takes the shard lock instead.
    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) -> DentryLookup {
        guard let nb = name.baseAddress, name.count >= 1, name.count <= 255 else { return .miss }
        let n = name.count
        let hv = hashName(parent, nb, n)
        let si = shardIndex(hv)
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
                let d = ref(h)
                if d.parent == parent && nameEqualsRacy(d, nb, n) { break }
                h = d.hashNext
                steps &+= 1
            }
            var ino: UInt64 = 0, st: UInt32 = 0
            if sane && h != nilHandle {
                let d = ref(h)
                ino = d.ino
                st = d.header.state
            }
            atomicMemoryFence(ordering: .acquiring)
            guard sane, seq.pointee.load(ordering: .relaxed) == s1 else { continue }
            if h == nilHandle {
                events.add(1)
                return .miss
            }
            if st & ObjectFlag.referenced != 0 {
                events.add(0)
                return ino == 0 ? .negative : .positive(ino: ino, type: UInt8(truncatingIfNeeded: (st >> ObjectFlag.cacheShift) & 0xF))
            }
            break   // a first hit: set the referenced bit under the lock
        }
        events.add(2)
        return shards.withLock(si) { s -> DentryLookup in
            let h = find(&s, hv, parent, nb, n)
            guard h != nilHandle else { events.add(1); return .miss }
            events.add(0)
            slab.markReferenced(h)
            let d = ref(h)
            let ino = d.ino
            return ino == 0 ? .negative : .positive(ino: ino, type: d.type)
        }
    }

    /// nameEquals for a seqlock reader: the record may be changing under it, so the long-name
    /// handle is range-checked before it is followed.
    @inline(__always)
    private func nameEqualsRacy(_ d: DentryRef, _ name: UnsafeRawPointer, _ n: Int) -> Bool {
        let area = d.p + DentryRef.nameOffset
        guard area.load(as: UInt8.self) == UInt8(truncatingIfNeeded: n) else { return false }
        if n <= DentryRef.inlineNameMax { return memcmp(area + 1, name, n) == 0 }
        guard memcmp(area + 8, name, 32) == 0 else { return false }
        let nh = area.load(fromByteOffset: 4, as: UInt32.self)
        let c = names.cache(forLength: n)
        guard c.isValidHandle(nh) else { return false }
        return memcmp(c.pointer(nh) + 32, name + 32, n - 32) == 0
    }

    /// What taking a dentry out of the table left to do once its shard lock is released.
    struct Detached {
        var handle = nilHandle
        var inode = nilHandle
        var parent = nilHandle
        /// It named a directory whose inode records it as alias: clear that, then drop `held`.
        var aliasDir = false
        var held = false
        /// Still allocated and unpinned (an alias directory being evicted): free it at the end.
        var freeAtEnd = false
        /// Slab pages emptied when the record was freed at once.
        var pagesFreed = 0
        /// The record was freed (at once, or will be by `finish`).
        var freed = false
    }

    /// Unhashes `h` and takes its pins with it. An unpinned dentry is freed at once unless it is
    /// some inode's alias (then it is freed, or left to its last pin, after the alias is
    /// cleared); a pinned one becomes a zombie that its last child frees. Under the shard lock,
    /// inside a seqlock write section.
    func detach(_ s: inout DentryShard, _ h: UInt32, _ hv: UInt64, evicting: Bool) -> Detached {
        let d = ref(h)
        if evicting && notifyEvictions.load(ordering: .relaxed), let observer = evictionObserver.withLock({ $0 }) {
            let (p, n) = namePointer(d)
            observer.dentryEvicted(parent: d.parent, name: UnsafeRawBufferPointer(start: p, count: n))
        }
        var out = Detached(handle: h, inode: d.inodeHandle, parent: d.parentHandle)
        out.aliasDir = d.isDirectory && out.inode != nilHandle
        unhash(&s, h, hv)
        d.inodeHandle = nilHandle
        d.parentHandle = nilHandle
        if out.aliasDir {
            if evicting {
                out.freeAtEnd = true          // unpinned, unreachable: nobody else can touch it
                out.freed = true
            } else {
                out.held = slab.pinObject(h)  // keep it allocated until the alias is cleared
                s.zombies += 1
            }
        } else if d.header.pins == 0 {
            out.pagesFreed = freeRecord(h)
            out.freed = true
        } else {
            s.zombies += 1
        }
        return out
    }

    /// The rest of `detach`, with no dentry lock held (lock order: it takes inode locks).
    /// Returns the slab pages emptied by freeing the record here.
    @discardableResult
    func finish(_ x: Detached) -> Int {
        guard x.handle != nilHandle else { return 0 }
        var pages = 0
        if x.aliasDir {
            inodes.clearAlias(inode: x.inode, dentry: x.handle)
            if x.freeAtEnd { pages = freeRecord(x.handle) } else if x.held { unpin(dentry: x.handle) }
        }
        inodes.unpin(handle: x.inode)
        unpin(dentry: x.parent)
        return pages
    }

    /// The slab kind a dentry for (ino, type) belongs in: directories apart when segregating.
    @inline(__always)
    func kindFor(ino: UInt64, type: UInt8) -> Int {
        segregate.load(ordering: .relaxed) && ino != 0 && type & 0xF == DentryRef.dtDir ? 1 : 0
    }

    /// Inserts or replaces. ino == 0 makes a negative dentry. A positive dentry pins its inode
    /// (if the inode is cached: insert the inode first); every dentry pins the dentry of `parent`
    /// if that directory's own dentry is cached (and its inode was cached when it was inserted).
    /// A dentry whose type is DT_DIR is a directory dentry, else a leaf. A dirty dentry stays
    /// dirty until `takeDirty` hands it out.
    ///
    /// A dentry is replaced in place unless it names a directory and the new entry names
    /// something else (rename over it, rmdir): then the old dentry is detached (a zombie while
    /// cached children still pin it, as in `remove`) and a fresh one takes the name, so a
    /// pinned directory dentry never changes what it names.
    public func insert(parent: UInt64, name: UnsafeRawBufferPointer, ino: UInt64, type: UInt8, dirty: Bool) {
        guard let nb = name.baseAddress, name.count >= 1, name.count <= 255 else { return }
        let n = name.count
        let hv = hashName(parent, nb, n)
        let si = shardIndex(hv)
        let isDir = ino != 0 && type & 0xF == DentryRef.dtDir
        let kind = kindFor(ino: ino, type: type)
        // The budget first, with no lock held: direct reclaim may free dentries and inodes.
        budget.admit(slab)
        if n > DentryRef.inlineNameMax { budget.admit(names.cache(forLength: n)) }
        // Pins first, before this dentry's own shard lock (lock order).
        let inodePin = ino != 0 ? inodes.pinForDentry(ino) : nilHandle
        let parentPin = pinAlias(of: parent)

        var handle = nilHandle
        var oldInode = nilHandle, oldParent = nilHandle
        var detached = Detached()
        shards.withLock(si) { s in
            shards.writeBegin(si)
            defer { shards.writeEnd(si) }
            var h = find(&s, hv, parent, nb, n)
            var wasDirty = false
            if h != nilHandle {
                let d = ref(h)
                let namesDirectory = d.isDirectory && (d.inodeHandle != nilHandle || d.header.pins > 0)
                let wrongKind = !slab.mergeKinds && slab.kind(of: h) != kind
                if namesDirectory && !(isDir && d.ino == ino) {
                    if wrongKind { relocated.wrappingAdd(1, ordering: .relaxed) }
                    wasDirty = d.header.has(ObjectFlag.dirty)
                    detached = detach(&s, h, hv, evicting: false)
                    h = nilHandle
                } else if wrongKind && segregate.load(ordering: .relaxed) && !namesDirectory {
                    // What it names changed kind (a negative dentry made a directory by mkdir):
                    // move it to a slab of the right kind. Nothing pins it and it is nobody's
                    // alias, so detaching frees it at once.
                    relocated.wrappingAdd(1, ordering: .relaxed)
                    wasDirty = d.header.has(ObjectFlag.dirty)
                    detached = detach(&s, h, hv, evicting: false)
                    h = nilHandle
                }
            }
            if h != nilHandle {
                let d = ref(h)
                oldInode = d.inodeHandle
                oldParent = d.parentHandle
                if (d.ino == 0) != (ino == 0) {
                    s.negative += ino == 0 ? 1 : -1
                    negativeCount.wrappingAdd(ino == 0 ? 1 : -1, ordering: .relaxed)
                }
                d.ino = ino
                d.type = type
                d.inodeHandle = inodePin
                d.parentHandle = parentPin
            } else {
                guard let fresh = slab.allocate(kind: kind) else { return }
                h = fresh
                let d = ref(h)
                d.header.initialize(flags: ObjectFlag.hashed | ObjectFlag.onLRU)
                d.type = type
                d.parent = parent
                d.ino = ino
                d.inodeHandle = inodePin
                d.parentHandle = parentPin
                guard storeName(d, nb, n) else {
                    d.header.state = 0
                    slab.free(h)
                    return
                }
                let b = s.buckets.bucket(hv)
                d.hashNext = s.buckets.heads[b]
                s.buckets.heads[b] = h
                s.count += 1
                if ino == 0 { s.negative += 1; negativeCount.wrappingAdd(1, ordering: .relaxed) }
                s.lru.pushFront(h, slab, .lru)
                growIfNeeded(&s)
            }
            if (dirty || wasDirty) && slab.setDirtyFlag(h, true) { s.dirty.pushFront(h, slab, .dirty) }
            handle = h
        }
        finish(detached)
        guard handle != nilHandle else {
            inodes.unpin(handle: inodePin)
            unpin(dentry: parentPin)
            if dirty { fatalError("MetaCache: metafs_dentry: reserved address range exhausted") }
            return
        }
        if isDir && inodePin != nilHandle {
            let h = handle
            inodes.setAlias(inode: inodePin, ino: ino, dentry: h) {
                shards.withLock(si) { _ -> Bool in
                    let d = ref(h)
                    return d.isHashed && d.ino == ino && d.isDirectory && d.parent == parent && nameEquals(d, nb, n)
                }
            }
        }
        inodes.unpin(handle: oldInode)
        unpin(dentry: oldParent)
        if ino == 0 { budget.negativeInserted(self) }
    }

    /// Forgets the name entirely (clean or dirty), releasing its pins.
    public func remove(parent: UInt64, name: UnsafeRawBufferPointer) {
        guard let nb = name.baseAddress, name.count >= 1, name.count <= 255 else { return }
        let n = name.count
        let hv = hashName(parent, nb, n)
        let si = shardIndex(hv)
        let x = shards.withLock(si) { s -> Detached in
            let h = find(&s, hv, parent, nb, n)
            guard h != nilHandle else { return Detached() }
            shards.writeBegin(si)
            defer { shards.writeEnd(si) }
            return detach(&s, h, hv, evicting: false)
        }
        finish(x)
    }

    /// Dentries waiting for writeback.
    public var dirtyCount: Int {
        var n = 0
        for i in 0..<shards.count { n += shards.withLock(i) { $0.dirty.count } }
        return n
    }

    /// Installs (or with nil removes) the observer told of every evicted dentry while
    /// `ReclaimSettings.kernelInvalidate` is on.
    public func setEvictionObserver(_ observer: (any DentryEvictionObserver)?) {
        evictionObserver.withLock { $0 = observer }
    }

    /// Whether a dirty positive dentry names something in directory `parent`: a name made (or
    /// re-pointed) since the last commit, which the store may not have yet. A walk of every
    /// shard's dirty list, for rmdir's emptiness check (FileSystem.isEmptyDirectory).
    public func hasDirtyEntry(in parent: UInt64) -> Bool {
        for i in 0..<shards.count {
            let found = shards.withLock(i) { s -> Bool in
                var h = s.dirty.head
                while h != nilHandle {
                    let d = ref(h)
                    if d.parent == parent && d.ino != 0 { return true }
                    h = s.dirty.next(of: h, slab, .dirty)
                }
                return false
            }
            if found { return true }
        }
        return false
    }

    /// Up to `limit` dirty dentries (oldest first per shard) copied out and marked clean.
    /// Negative dirty dentries are removals.
    public func takeDirty(limit: Int) -> [DirtyDentry] {
        var out: [DirtyDentry] = []
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
                    let d = ref(h)
                    let (p, n) = namePointer(d)
                    let name = [UInt8](UnsafeRawBufferPointer(start: p, count: n))
                    out.append(DirtyDentry(parent: d.parent, name: name, ino: d.ino, type: d.type))
                }
            }
        }
        return out
    }

    /// Hashed dentries (positive and negative).
    public var count: Int {
        var n = 0
        for i in 0..<shards.count { n += shards.withLock(i) { $0.count } }
        return n
    }

    // MARK: Eviction

    /// Evicts every clean, unpinned dentry, leaves first: a directory dentry becomes unpinned
    /// once its children are gone and goes in a later pass. Returns dentries freed.
    func evictUnused() -> Int {
        var total = 0
        var victims: [Detached] = []
        while true {
            var pass = 0
            for i in 0..<shards.count {
                victims.removeAll(keepingCapacity: true)
                shards.withWriteLock(i) { s in
                    var h = s.lru.tail
                    while h != nilHandle {
                        let prev = s.lru.prev(of: h, slab, .lru)
                        let d = ref(h)
                        if d.header.pins == 0 && !d.header.has(ObjectFlag.dirty) {
                            victims.append(detach(&s, h, recordHash(h), evicting: true))
                        }
                        h = prev
                    }
                }
                for v in victims {
                    // Up the tree: a parent whose last child this was goes too (as dentry_kill
                    // moves on to the parent), so one pass empties a whole clean subtree.
                    var x = v
                    while true {
                        pass += 1
                        let parent = x.parent
                        x.parent = nilHandle
                        finish(x)
                        guard let up = unpinEvicting(parent) else { break }
                        x = up
                    }
                }
            }
            total += pass
            if pass == 0 { break }
        }
        return total
    }

    /// Drops a child's pin on `h` for eviction: frees `h` if it was a zombie; detaches it if it
    /// is now unpinned, clean and hashed, and returns what is left to finish.
    private func unpinEvicting(_ h: UInt32) -> Detached? {
        guard h != nilHandle else { return nil }
        let hv = recordHash(h)
        let si = shardIndex(hv)
        var freeZombie = false
        let x = shards.withLock(si) { s -> Detached? in
            let left = slab.unpinObject(h)
            guard left == 0 else { return nil }
            let d = ref(h)
            if !d.isHashed {
                s.zombies -= 1
                freeZombie = true
                return nil
            }
            guard !d.header.has(ObjectFlag.dirty) else { return nil }
            shards.writeBegin(si)
            defer { shards.writeEnd(si) }
            return detach(&s, h, hv, evicting: true)
        }
        if freeZombie { freeRecord(h) }
        return x
    }

    // MARK: Figures

    func counts() -> (hits: UInt64, misses: UInt64, negative: Int, zombies: Int, lockedLookups: UInt64) {
        var r: (UInt64, UInt64, Int, Int, UInt64) = (events.total(0), events.total(1), 0, 0, events.total(2))
        for i in 0..<shards.count {
            shards.withLock(i) { s in
                r.2 += s.negative; r.3 += s.zombies
            }
        }
        return r
    }

    var tableBytes: Int {
        var n = shards.memoryBytes + events.memoryBytes
        for i in 0..<shards.count { n += shards.withLock(i) { $0.buckets.memoryBytes } }
        return n
    }
}
