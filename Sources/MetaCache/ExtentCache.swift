// The extent status cache: per inode, the mapping from file blocks to store blocks, as ext4's
// extent status tree keeps it. Each inode's extents form a treap (ExtentTree.swift) rooted in
// the inode's record, under the inode's shard lock. Inodes that have extents are on a per-shard
// list in insertion order, for an ext4-style shrinker that walks inodes round-robin; inodes with
// dirty extents are on a second list, for writeback.
//
// Extents for an inode whose attributes are not cached hang off a stub inode record
// (InodeCache.swift), so a dirty mapping is never dropped for want of its inode.

import Synchronization

public final class ExtentCache: @unchecked Sendable {
    let inodes: InodeCache
    var slab: SlabCache { inodes.extentSlab }

    private let extentDirtyRotor = Atomic<Int>(0)

    init(inodes: InodeCache) {
        self.inodes = inodes
    }

    /// The cached extent covering `block`, if any (O(log n) in the inode's extents); sets its
    /// referenced bit.
    public func lookup(ino: UInt64, block: UInt64) -> ExtentMapping? {
        let hv = inodes.hash(ino)
        return inodes.shards.withLock(inodes.shardIndex(hv)) { s -> ExtentMapping? in
            let h = inodes.find(&s, ino, hv)
            guard h != nilHandle else { inodes.events.add(3); return nil }
            let e = inodes.tree(h).lookup(block)
            guard e != nilHandle else { inodes.events.add(3); return nil }
            inodes.events.add(2)
            return ExtentRef(slab.pointer(e)).mapping
        }
    }

    /// Inserts, replacing whatever overlaps (splitting partially covered extents) and merging
    /// with adjacent extents that continue it (same status, same dirtiness, physically
    /// contiguous). A zero-length mapping changes nothing.
    public func insert(ino: UInt64, _ mapping: ExtentMapping, dirty: Bool) {
        guard mapping.length > 0, mapping.logical < ExtentRef.blockLimit else { return }
        let hv = inodes.hash(ino)
        inodes.budget.admit(slab)
        inodes.shards.withWriteLock(inodes.shardIndex(hv)) { s in
            var h = inodes.find(&s, ino, hv)
            if h == nilHandle {
                guard let stub = inodes.create(&s, ino, hv, stub: true) else {
                    if dirty { fatalError("MetaCache: metafs_inode: reserved address range exhausted") }
                    return
                }
                h = stub
            }
            var t = inodes.tree(h)
            t.insert(mapping, dirty: dirty)
            inodes.store(t, h, &s)
        }
    }

    /// Drops cached mappings in [from, from+count) (count == .max: to the end), splitting as needed.
    public func remove(ino: UInt64, from: UInt64, count: UInt64) {
        guard count > 0 else { return }
        let to = count == .max || from > UInt64.max - count ? UInt64.max : from + count
        let hv = inodes.hash(ino)
        inodes.shards.withWriteLock(inodes.shardIndex(hv)) { s in
            let h = inodes.find(&s, ino, hv)
            guard h != nilHandle else { return }
            var t = inodes.tree(h)
            t.removeRange(from, to)
            inodes.store(t, h, &s)
            inodes.releaseStubIfEmpty(&s, h)
        }
    }

    /// All cached mappings of `ino`, sorted by logical block.
    public func extents(ino: UInt64) -> [ExtentMapping] {
        let hv = inodes.hash(ino)
        return inodes.shards.withLock(inodes.shardIndex(hv)) { s -> [ExtentMapping] in
            let h = inodes.find(&s, ino, hv)
            guard h != nilHandle else { return [] }
            return inodes.tree(h).mappings()
        }
    }

    /// Inodes that have dirty extents.
    public var dirtyInodeCount: Int {
        var n = 0
        for i in 0..<inodes.shards.count { n += inodes.shards.withLock(i) { $0.withDirtyExtents.count } }
        return n
    }

    /// Dirty extents in the cache.
    public var dirtyCount: Int { slab.total(.dirty) }

    /// Up to `limit` inodes with dirty extents (oldest first): their dirty mappings, marked clean.
    public func takeDirty(limit: Int) -> [(ino: UInt64, mappings: [ExtentMapping])] {
        var out: [(ino: UInt64, mappings: [ExtentMapping])] = []
        guard limit > 0 else { return out }
        // Start where the last call stopped, so that small batches drain every shard in turn.
        let first = extentDirtyRotor.wrappingAdd(1, ordering: .relaxed).oldValue
        for k in 0..<inodes.shards.count where out.count < limit {
            let i = (first &+ k) & (inodes.shards.count - 1)
            inodes.shards.withLock(i) { s in
                while out.count < limit, s.withDirtyExtents.tail != nilHandle {
                    let h = s.withDirtyExtents.tail
                    var t = inodes.tree(h)
                    let dirty = t.takeDirty()
                    inodes.store(t, h, &s)
                    out.append((ino: inodes.ref(h).ino, mappings: dirty))
                }
            }
        }
        return out
    }

    // MARK: I/O in flight

    /// Marks I/O on `ino` as in flight: until the matching `endIO`, the extent shrinker leaves
    /// this inode's extents alone (as ext4's never reclaims extents of an inode being written),
    /// and the inode shrinker its record. Calls nest.
    public func beginIO(ino: UInt64) {
        inodes.ioStripe(ino).pointee.wrappingAdd(1, ordering: .relaxed)
    }

    public func endIO(ino: UInt64) {
        inodes.ioStripe(ino).pointee.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Whether `ino` may have I/O in flight.
    public func ioInFlight(ino: UInt64) -> Bool { inodes.ioBusy(ino) }

    /// Cached extents of `ino` (0 when none).
    public func count(ino: UInt64) -> Int {
        let hv = inodes.hash(ino)
        return inodes.shards.withLock(inodes.shardIndex(hv)) { s -> Int in
            let h = inodes.find(&s, ino, hv)
            return h == nilHandle ? 0 : inodes.ref(h).extentCount
        }
    }
}
