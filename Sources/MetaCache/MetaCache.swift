// MetaCache: the dentry, inode and extent caches on one slab allocator, with their statistics,
// /proc/slabinfo rendering and drop_caches.
//
// How the parts fit (each file's header has the details):
//
//   SlabCache.swift     fixed-size records in page-aligned slabs of one reserved mmap range per
//                       cache; 32-bit handles; per-slab descriptors out of the slab pages with a
//                       live bitmap and live/pinned/dirty/referenced counts (O(1) "what would
//                       freeing this page cost?"); full / 8 fill-bucketed partial / empty lists;
//                       empty slabs handed back with MADV_DONTNEED (VirtualMemory.swift).
//   ObjectHeader.swift  the 20-byte header shared by dentries and inodes (LRU links, dirty-list
//                       links, pins and flags) and the intrusive list used for every LRU, dirty
//                       list and round-robin list (list_lru shape: one list per lock shard).
//   Support.swift       hashing, lock shards (Mutex + seqlock counter + state), in-place-growing
//                       bucket arrays, striped event counters.
//   DentryCache.swift   88-byte dentries, 39-byte inline names, NameCache.swift for longer ones;
//                       lock-free (seqlock) lookups; pins of inode and parent; zombies.
//   InodeCache.swift    152-byte inodes; stubs for extents of uncached inodes; zombies.
//   ExtentTree.swift    28-byte extent records in a per-inode treap; ExtentCache.swift on top.
//
// Reclaim (issue 4; docs/RECLAIM.md):
//
//   ReclaimSettings.swift  the knobs: budget, policy, dirty mode, segregation, reclaimers, limits
//   Budget.swift        the memory budget, its watermarks, and `admit`, which every insert calls
//                       before taking a lock (direct reclaim when a new slab would pass it)
//   Shrinker.swift      count/scan shrinkers and their counters; one per cache:
//                       DentryShrinker.swift, InodeShrinker.swift, ExtentShrinker.swift
//   PageSelection.swift the page-aware policy: cheapest slabs first, every object on them
//   Reclaimer.swift     the background thread, direct reclaim, `shrink`, pressure spreading,
//                       the writeback hook, and the debugfs-shaped reports
//
// Memory: every byte the caches hold comes from mmap'd ranges they own (slabs, descriptors,
// per-slab counters, bucket arrays) or a few fixed heap blocks (lock shards, counters), and
// `memoryBytes` adds them all up by the pages actually touched, so it tracks RSS.
//
// Lock order for the whole module (outermost first; DentryCache.swift explains why it holds):
//   1. inode shard locks (InodeCache and ExtentCache share them)
//   2. dentry shard locks
//   3. slab cache mutexes (leaves)
// Never two locks of one level at once. Dentry lookups take no lock at all unless they must
// (see DentryCache.lookup). A reclaimer can use `ShardedMutex.withLockIfAvailable` on a shard
// and move on when it is busy; per-slab counts are atomics it can read without any lock.

public struct CacheConfiguration: Sendable {
    /// Slab page size (a power of two, a multiple of the OS page size).
    public var pageSize: Int = 4096
    /// A slab is `pageSize << slabOrder` bytes.
    public var slabOrder: Int = 0
    /// Lock shards of each hash table (rounded up to a power of two).
    public var shards: Int = 64
    /// Initial hash table sizing hint.
    public var expectedObjects: Int = 65536
    /// Address space reserved for each slab cache (virtual only: memory is taken a slab at a
    /// time). Bounds the objects a cache can hold: 16 GiB is 190 million dentries.
    public var reserveBytesPerCache: Int = 16 << 30
    /// Caches whose objects have the same size share slabs, as SLUB merges them: the leaf and
    /// directory dentry caches of `segregate` then share slabs again. Fixed at creation.
    public var merge: Bool = false
    /// Reclaim settings at creation (they can be changed later through `MetaCache.reclaimer`).
    public var reclaim = ReclaimSettings()
    public init() {}
}

public final class MetaCache: @unchecked Sendable {
    public let configuration: CacheConfiguration
    public let inodes: InodeCache
    public let dentries: DentryCache
    public let extents: ExtentCache
    /// The budget, the shrinkers and the background reclaimer (started by `reclaimer.start()`).
    public let reclaimer: Reclaimer
    let budget: MemoryBudget

    public init(configuration: CacheConfiguration = .init()) {
        self.configuration = configuration
        budget = MemoryBudget()
        inodes = InodeCache(configuration: configuration, budget: budget)
        dentries = DentryCache(configuration: configuration, inodes: inodes, budget: budget)
        extents = ExtentCache(inodes: inodes)
        reclaimer = Reclaimer(budget: budget, dentries: dentries, inodes: inodes, merge: configuration.merge,
                              slabCaches: [dentries.slab, inodes.slab, inodes.extentSlab] + dentries.names.caches,
                              pageSize: configuration.pageSize, settings: configuration.reclaim)
        budget.reclaimer = reclaimer
    }

    deinit {
        reclaimer.stop()
    }

    /// Every slab cache, in slabinfo order.
    var slabCaches: [SlabCache] {
        [dentries.slab, inodes.slab, inodes.extentSlab] + dentries.names.caches
    }

    /// Whether the dentry statistics show leaf and directory dentries as two caches: when
    /// segregation is on (or has been: directory slabs remain) and slabs are not merged.
    var showsDirectoryDentries: Bool {
        !dentries.slab.mergeKinds && (dentries.segregate.load(ordering: .relaxed) || dentries.slab.kindFigures(1).resident > 0)
    }

    /// One entry per slab cache (the name caches included). With segregation, the dentry slab
    /// cache's two kinds are two entries: `metafs_dentry` (leaves, negatives) and
    /// `metafs_dentry_dir`.
    public func statistics() -> [CacheStatistics] {
        let d = dentries.counts()
        let i = inodes.counts()
        var out: [CacheStatistics] = []
        for c in slabCaches {
            if c === dentries.slab && showsDirectoryDentries {
                for k in 0..<SlabCache.kinds {
                    let f = c.kindFigures(k)
                    var s = CacheStatistics(
                        name: k == 0 ? c.name : c.name + "_dir", activeObjects: f.live,
                        totalObjects: f.resident * c.objectsPerSlab, objectSize: c.objectSize,
                        objectsPerSlab: c.objectsPerSlab, pagesPerSlab: c.pagesPerSlab,
                        activeSlabs: f.active, totalSlabs: f.resident, allocations: f.allocations, frees: f.frees,
                        dirty: c.total(.dirty, kind: k), pinned: c.total(.pinned, kind: k),
                        slabBytes: f.resident * c.slabSize)
                    if k == 0 { s.hits = d.hits; s.misses = d.misses; s.negative = d.negative }
                    out.append(s)
                }
                continue
            }
            out.append(entry(c, d, i))
        }
        return out
    }

    private func entry(_ c: SlabCache, _ d: (hits: UInt64, misses: UInt64, negative: Int, zombies: Int, lockedLookups: UInt64),
                       _ i: (hits: UInt64, misses: UInt64, extentHits: UInt64, extentMisses: UInt64)) -> CacheStatistics {
        do {
            let f = c.figures
            var s = CacheStatistics(
                name: c.name, activeObjects: f.liveObjects, totalObjects: f.residentSlabs * c.objectsPerSlab,
                objectSize: c.objectSize, objectsPerSlab: c.objectsPerSlab, pagesPerSlab: c.pagesPerSlab,
                activeSlabs: f.activeSlabs, totalSlabs: f.residentSlabs,
                allocations: f.allocations, frees: f.frees,
                dirty: c.total(.dirty), pinned: c.total(.pinned), slabBytes: f.residentSlabs * c.slabSize)
            if c === dentries.slab {
                s.hits = d.hits; s.misses = d.misses; s.negative = d.negative
            } else if c === inodes.slab {
                s.hits = i.hits; s.misses = i.misses
            } else if c === inodes.extentSlab {
                s.hits = i.extentHits; s.misses = i.extentMisses
            }
            return s
        }
    }


    /// The caches in /proc/slabinfo version 2.1 format, header lines included, one line per
    /// cache as mm/slab_common.c's cache_show prints it (SLUB: tunables and sharedavail 0).
    public func slabinfo() -> String {
        Self.slabinfo(statistics())
    }

    /// Stops the background reclaimer (idempotent; MetaFS calls it at unmount).
    public func stopReclaim() { reclaimer.stop() }

    static func slabinfo(_ stats: [CacheStatistics]) -> String {
        var out = "slabinfo - version: 2.1\n"
        out += "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
        out += " : tunables <limit> <batchcount> <sharedfactor>"
        out += " : slabdata <active_slabs> <num_slabs> <sharedavail>\n"
        for s in stats {
            // "%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu"
            out += pad(s.name, 17, left: true)
            out += " " + pad(s.activeObjects, 6) + " " + pad(s.totalObjects, 6) + " " + pad(s.objectSize, 6)
            out += " " + pad(s.objectsPerSlab, 4) + " " + pad(s.pagesPerSlab, 4)
            out += " : tunables " + pad(0, 4) + " " + pad(0, 4) + " " + pad(0, 4)
            out += " : slabdata " + pad(s.activeSlabs, 6) + " " + pad(s.totalSlabs, 6) + " " + pad(0, 6)
            out += "\n"
        }
        return out
    }

    private static func pad(_ v: Int, _ width: Int) -> String { pad(String(v), width, left: false) }

    private static func pad(_ s: String, _ width: Int, left: Bool) -> String {
        let n = s.utf8.count
        guard n < width else { return s }
        let fill = String(repeating: " ", count: width - n)
        return left ? s + fill : fill + s
    }

    /// Bytes the caches hold: resident slabs, slab descriptors and counters, hash tables and
    /// lock shards.
    public var memoryBytes: Int {
        slabCaches.reduce(0) { $0 + $1.memoryBytes } + dentries.tableBytes + inodes.tableBytes
    }

    /// Bytes of slab memory held from the OS (resident slabs only).
    public var slabBytes: Int {
        slabCaches.reduce(0) { $0 + $1.figures.residentSlabs * $1.slabSize }
    }

    /// The same, read from the budget's lock-free accounting (what the budget compares).
    public var accountedSlabBytes: Int { budget.accounting.bytes }

    /// Evicts every clean, unpinned object (leaf dentries before the directories they pin, then
    /// clean extents, then inodes no longer pinned) and hands every empty slab back to the OS.
    /// Returns objects (dentries, inodes, extents) freed and slab pages given back.
    @discardableResult
    public func dropCaches() -> (objects: Int, pages: Int) {
        let before = slabCaches.map { $0.figures.slabsReleased }
        var objects = dentries.evictUnused()
        objects += inodes.dropCleanExtents()
        let (i, e) = inodes.evictUnused()
        objects += i + e
        var pages = 0
        for (c, b) in zip(slabCaches, before) {
            c.releaseEmptySlabs()
            pages += Int(c.figures.slabsReleased - b) * c.pagesPerSlab
        }
        return (objects, pages)
    }

    // MARK: Consistency

    /// Checks every invariant the caches keep: allocator lists and bitmaps, per-slab counters
    /// against object flags, hash tables against LRU and dirty lists, pins against the dentries
    /// that hold them, aliases, extent trees. Empty when all hold. Call only while no other
    /// thread uses the cache.
    public func checkConsistency() -> [String] {
        var problems: [String] = []
        for c in slabCaches { problems += c.checkInvariants() }

        // Per-slab counters against flags.
        func checkCounters(_ c: SlabCache, _ flags: (UInt32) -> (ref: Bool, dirty: Bool, pinned: Bool)) -> [UInt32] {
            var all: [UInt32] = []
            for slab in 0..<c.highWater {
                var r = 0, d = 0, p = 0
                for h in c.liveHandles(slab: slab) {
                    all.append(h)
                    let f = flags(h)
                    if f.ref { r += 1 }
                    if f.dirty { d += 1 }
                    if f.pinned { p += 1 }
                }
                let snap = c.snapshot(slab: slab)
                if (snap.referenced, snap.dirty, snap.pinned) != (r, d, p) {
                    problems.append("\(c.name) slab \(slab): counters r/d/p \(snap.referenced)/\(snap.dirty)/\(snap.pinned), objects say \(r)/\(d)/\(p)")
                }
            }
            return all
        }
        let headerFlags: (SlabCache) -> (UInt32) -> (ref: Bool, dirty: Bool, pinned: Bool) = { c in
            { h in
                let hd = c.header(h)
                return (hd.has(ObjectFlag.referenced), hd.has(ObjectFlag.dirty), hd.pins > 0)
            }
        }
        let liveDentries = checkCounters(dentries.slab, headerFlags(dentries.slab))
        let liveInodes = checkCounters(inodes.slab, headerFlags(inodes.slab))
        let liveExtents = checkCounters(inodes.extentSlab) { h in
            let e = ExtentRef(self.inodes.extentSlab.pointer(h))
            return (e.isReferenced, e.isDirty, false)
        }

        // Dentries: tables, lists, pins.
        var dentryPins: [UInt32: Int] = [:]
        var inodePins: [UInt32: Int] = [:]
        var hashedDentries = 0, zombieDentries = 0
        for h in liveDentries {
            let d = dentries.ref(h)
            if d.isHashed { hashedDentries += 1 } else { zombieDentries += 1 }
            if d.parentHandle != nilHandle { dentryPins[d.parentHandle, default: 0] += 1 }
            if d.inodeHandle != nilHandle { inodePins[d.inodeHandle, default: 0] += 1 }
            if !d.isHashed && (d.inodeHandle != nilHandle || d.parentHandle != nilHandle) {
                problems.append("dentry \(h): zombie still holds pins")
            }
        }
        for h in liveDentries {
            let d = dentries.ref(h)
            let expected = dentryPins[h] ?? 0
            if Int(d.header.pins) != expected {
                problems.append("dentry \(h): \(d.header.pins) pins, \(expected) children hold it")
            }
            if !d.isHashed && d.header.pins == 0 { problems.append("dentry \(h): unpinned zombie not freed") }
            if d.parentHandle != nilHandle && !dentries.ref(d.parentHandle).isDirectory {
                problems.append("dentry \(h): pins a parent that is not a directory dentry")
            }
            if d.inodeHandle != nilHandle && inodes.ref(d.inodeHandle).ino != d.ino {
                problems.append("dentry \(h): pins inode \(inodes.ref(d.inodeHandle).ino), names \(d.ino)")
            }
        }
        var tableDentries = 0, lruDentries = 0, dirtyDentries = 0, negative = 0, zombies = 0
        for i in 0..<dentries.shards.count {
            dentries.shards.withLock(i) { s in
                var inTable = 0, neg = 0
                for b in 0..<s.buckets.bucketCount {
                    var h = s.buckets.heads[b]
                    while h != nilHandle {
                        let d = dentries.ref(h)
                        inTable += 1
                        if d.ino == 0 { neg += 1 }
                        if !d.isHashed { problems.append("dentry \(h): in table, not marked hashed") }
                        if dentries.shardIndex(dentries.recordHash(h)) != i || s.buckets.bucket(dentries.recordHash(h)) != b {
                            problems.append("dentry \(h): in the wrong bucket")
                        }
                        h = d.hashNext
                    }
                }
                if inTable != s.count { problems.append("dentry shard \(i): \(inTable) in table, count \(s.count)") }
                if neg != s.negative { problems.append("dentry shard \(i): \(neg) negative, count \(s.negative)") }
                if s.lru.count != s.count { problems.append("dentry shard \(i): LRU has \(s.lru.count) of \(s.count)") }
                if s.lru.handles(dentries.slab, .lru).count != s.lru.count { problems.append("dentry shard \(i): LRU links broken") }
                let dirtyHandles = s.dirty.handles(dentries.slab, .dirty)
                if dirtyHandles.count != s.dirty.count { problems.append("dentry shard \(i): dirty links broken") }
                for h in dirtyHandles where !dentries.slab.header(h).has(ObjectFlag.dirty) {
                    problems.append("dentry \(h): on dirty list, not dirty")
                }
                tableDentries += inTable; lruDentries += s.lru.count; dirtyDentries += s.dirty.count
                negative += neg; zombies += s.zombies
            }
        }
        if tableDentries != hashedDentries { problems.append("dentries: \(tableDentries) in tables, \(hashedDentries) live hashed") }
        if zombies != zombieDentries { problems.append("dentries: \(zombieDentries) zombies, shards count \(zombies)") }
        if negative != dentries.negativeCount.load(ordering: .relaxed) {
            problems.append("dentries: \(negative) negative in tables, counter says \(dentries.negativeCount.load(ordering: .relaxed))")
        }
        if budget.accounting.bytes != slabCaches.reduce(0, { $0 + $1.residentBytes.load(ordering: .relaxed) }) {
            problems.append("budget accounting \(budget.accounting.bytes) differs from the slab caches' resident bytes")
        }
        if dirtyDentries != dentries.slab.total(.dirty) { problems.append("dentries: dirty lists \(dirtyDentries), counters \(dentries.slab.total(.dirty))") }

        // Inodes: tables, pins, aliases, extents.
        var hashedInodes = 0, zombieInodes = 0, extentsInTrees = 0
        for h in liveInodes {
            let r = inodes.ref(h)
            if r.header.has(ObjectFlag.hashed) { hashedInodes += 1 } else { zombieInodes += 1 }
            let fromDentries = inodePins[h] ?? 0
            if Int(r.header.pins) < fromDentries {
                problems.append("inode \(r.ino): \(r.header.pins) pins, \(fromDentries) dentries hold it")
            }
            if r.alias != nilHandle {
                let d = dentries.ref(r.alias)
                if !dentries.slab.isLive(r.alias) || !d.isHashed || d.ino != r.ino || !d.isDirectory {
                    problems.append("inode \(r.ino): alias \(r.alias) does not name it")
                }
            }
            let t = inodes.tree(h)
            problems += t.check().map { "inode \(r.ino): \($0)" }
            extentsInTrees += t.count
        }
        if extentsInTrees != liveExtents.count { problems.append("extents: \(liveExtents.count) live, \(extentsInTrees) in trees") }
        var tableInodes = 0, zombieList = 0
        for i in 0..<inodes.shards.count {
            inodes.shards.withLock(i) { s in
                var inTable = 0, stubs = 0, withExtents = 0, withDirty = 0
                for b in 0..<s.buckets.bucketCount {
                    var h = s.buckets.heads[b]
                    while h != nilHandle {
                        let r = inodes.ref(h)
                        inTable += 1
                        if r.isStub { stubs += 1 }
                        if r.extentCount > 0 { withExtents += 1 }
                        if r.dirtyExtents > 0 { withDirty += 1 }
                        if !r.header.has(ObjectFlag.hashed) { problems.append("inode \(r.ino): in table, not marked hashed") }
                        if r.isStub && r.extentCount == 0 && r.header.pins == 0 { problems.append("inode \(r.ino): empty stub kept") }
                        h = r.hashNext
                    }
                }
                if inTable != s.count { problems.append("inode shard \(i): \(inTable) in table, count \(s.count)") }
                if stubs != s.stubs { problems.append("inode shard \(i): \(stubs) stubs, count \(s.stubs)") }
                if s.lru.count != s.count { problems.append("inode shard \(i): LRU has \(s.lru.count) of \(s.count)") }
                if s.withExtents.count != withExtents { problems.append("inode shard \(i): extent list \(s.withExtents.count), \(withExtents) have extents") }
                if s.withDirtyExtents.count != withDirty { problems.append("inode shard \(i): dirty-extent list \(s.withDirtyExtents.count), \(withDirty) have dirty extents") }
                if s.withExtents.handles(inodes.slab, InodeRef.extentList).count != s.withExtents.count { problems.append("inode shard \(i): extent list links broken") }
                tableInodes += inTable
                zombieList += s.zombies.count
            }
        }
        if tableInodes != hashedInodes { problems.append("inodes: \(tableInodes) in tables, \(hashedInodes) live hashed") }
        if zombieList != zombieInodes { problems.append("inodes: \(zombieInodes) zombies, lists hold \(zombieList)") }
        return problems
    }
}
