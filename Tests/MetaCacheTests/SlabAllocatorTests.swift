import Testing
@testable import MetaCache

@Suite("Slab allocator")
struct SlabAllocatorTests {
    @Test("record layouts fit their budgets")
    func layouts() {
        #expect(DentryRef.size <= 96)
        #expect(InodeRef.size <= 192)
        let cache = makeCache()
        #expect(cache.inodes.extentSlab.objectSize == 28)
        #expect(cache.dentries.slab.objectsPerSlab == 4096 / 88)
        #expect(cache.inodes.slab.objectsPerSlab == 4096 / 152)
        #expect(cache.inodes.extentSlab.objectsPerSlab == 4096 / 28)
    }

    @Test("long random alloc/free sequences match a simple model", arguments: [0, 2])
    func randomSequences(order: Int) {
        let slab = SlabCache(name: "test", objectSize: 48, pageSize: 4096, slabOrder: order, reserveBytes: 64 << 20)
        var rng = SeededRandom(seed: UInt64(42 + order))
        var live: [UInt32: UInt64] = [:]     // handle -> stamp written into the object
        var handles: [UInt32] = []
        for step in 0..<60_000 {
            // Phases: grow, shrink, churn, so slabs fill, drain and get reused.
            let phase = (step / 10_000) % 3
            let allocate = phase == 0 ? Int.random(in: 0..<10, using: &rng) < 8
                : phase == 1 ? Int.random(in: 0..<10, using: &rng) < 2 : Bool.random(using: &rng)
            if allocate || live.isEmpty {
                guard let h = slab.allocate() else { Issue.record("allocation failed"); return }
                #expect(live[h] == nil, "handle \(h) handed out twice")
                let stamp = rng.next()
                slab.pointer(h).storeBytes(of: stamp, as: UInt64.self)
                slab.pointer(h).storeBytes(of: stamp ^ 0xffff, toByteOffset: 40, as: UInt64.self)
                live[h] = stamp
                handles.append(h)
            } else {
                let i = Int.random(in: 0..<handles.count, using: &rng)
                handles.swapAt(i, handles.count - 1)
                let h = handles.removeLast()
                let stamp = live.removeValue(forKey: h)!
                #expect(slab.pointer(h).load(as: UInt64.self) == stamp, "object \(h) was overwritten")
                #expect(slab.pointer(h).load(fromByteOffset: 40, as: UInt64.self) == stamp ^ 0xffff)
                slab.free(h)
            }
            if step % 5_000 == 0 {
                #expect(slab.checkInvariants() == [])
                #expect(slab.figures.liveObjects == live.count)
            }
        }
        #expect(slab.checkInvariants() == [])
        for (h, stamp) in live { #expect(slab.pointer(h).load(as: UInt64.self) == stamp) }
        // Every live handle is reported live and no other.
        var reported = Set<UInt32>()
        for s in 0..<slab.highWater { reported.formUnion(slab.liveHandles(slab: s)) }
        #expect(reported == Set(live.keys))
        for h in live.keys { slab.free(h) }
        slab.releaseEmptySlabs()
        #expect(slab.checkInvariants() == [])
        let f = slab.figures
        #expect(f.liveObjects == 0 && f.residentSlabs == 0 && f.activeSlabs == 0)
    }

    @Test("allocation fills the fullest partial slab first")
    func fullestFirst() {
        let slab = SlabCache(name: "test", objectSize: 64, pageSize: 4096, slabOrder: 0, reserveBytes: 16 << 20)
        let per = slab.objectsPerSlab
        var handles: [UInt32] = []
        for _ in 0..<(3 * per) { handles.append(slab.allocate()!) }
        // Slab 0: free most; slab 1: free a few; slab 2: free half.
        for h in handles where slab.slabIndex(h) == 0 && Int(h & slab.slotMask) < per - 4 { slab.free(h) }
        for h in handles where slab.slabIndex(h) == 1 && Int(h & slab.slotMask) < 3 { slab.free(h) }
        for h in handles where slab.slabIndex(h) == 2 && Int(h & slab.slotMask) < per / 2 { slab.free(h) }
        // The next three allocations go to slab 1 (fullest), then slab 2, never slab 0 first.
        for _ in 0..<3 { #expect(slab.slabIndex(slab.allocate()!) == 1) }
        #expect(slab.slabIndex(slab.allocate()!) == 2)
        #expect(slab.checkInvariants() == [])
    }

    @Test("an empty slab goes back to the OS, keeping at most one resident")
    func emptySlabsReleased() {
        let slab = SlabCache(name: "test", objectSize: 64, pageSize: 4096, slabOrder: 0, reserveBytes: 16 << 20)
        var handles: [UInt32] = []
        for _ in 0..<(10 * slab.objectsPerSlab) { handles.append(slab.allocate()!) }
        #expect(slab.figures.residentSlabs == 10)
        for h in handles { slab.free(h) }
        #expect(slab.figures.residentSlabs == 1)
        #expect(slab.figures.slabsReleased == 9)
        #expect(slab.releaseEmptySlabs() == 1)
        #expect(slab.figures.residentSlabs == 0)
        // Released indices are reused and read as zeros.
        let h = slab.allocate()!
        #expect(slab.slabIndex(h) < 10)
        #expect(slab.pointer(h).load(as: UInt64.self) == 0)
        #expect(slab.checkInvariants() == [])
    }

    @Test("pinned, dirty and referenced counts per slab stay exact")
    func perSlabCounters() {
        let cache = makeCache()
        let slab = cache.dentries.slab
        var rng = SeededRandom(seed: 7)
        for i in 0..<2_000 { cache.dentries.insert(1, name(i, length: 12), ino: UInt64(i + 10)) }
        for _ in 0..<20_000 {
            let i = Int.random(in: 0..<2_000, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: _ = cache.dentries.lookup(1, name(i, length: 12))           // referenced
            case 1: cache.dentries.insert(1, name(i, length: 12), ino: UInt64(i + 10), dirty: true)
            case 2: _ = cache.dentries.takeDirty(limit: 3)
            default: cache.dentries.remove(1, name(i, length: 12)); cache.dentries.insert(1, name(i, length: 12), ino: 5)
            }
        }
        #expect(cache.checkConsistency() == [])
        // Totals agree with what the caches say.
        let stats = cache.statistics().first { $0.name == "metafs_dentry" }!
        #expect(stats.dirty == cache.dentries.dirtyCount)
        var referenced = 0
        for s in 0..<slab.highWater { referenced += slab.snapshot(slab: s).referenced }
        #expect(referenced > 0)
        #expect(referenced == slab.total(.referenced))
    }

    @Test("pins are counted per slab as objects become pinned and unpinned")
    func pinCounts() {
        let cache = makeCache()
        for i in 1...100 { cache.inodes.insert(attributes(UInt64(i)), dirty: false) }
        for i in stride(from: 1, through: 100, by: 3) { #expect(cache.inodes.pin(UInt64(i))) }
        for i in stride(from: 1, through: 100, by: 3) { #expect(cache.inodes.pin(UInt64(i))) }  // twice: still one pinned object
        #expect(cache.inodes.slab.total(.pinned) == 34)
        for i in stride(from: 1, through: 100, by: 6) { cache.inodes.unpin(UInt64(i)); cache.inodes.unpin(UInt64(i)) }
        #expect(cache.inodes.slab.total(.pinned) == 34 - 17)
        #expect(cache.checkConsistency() == [])
    }

    @Test("a slab's live, pinned, dirty and referenced counts are exact and read in O(1)")
    func exactSlabCounts() {
        let cache = makeCache(shards: 1)
        let per = cache.dentries.slab.objectsPerSlab      // 46: dentries 0..<46 fill slab 0
        for k in 0..<(per + 10) {
            cache.inodes.insert(attributes(UInt64(10_000 + k)), dirty: false)
            cache.dentries.insert(1, name(k, length: 10), ino: UInt64(10_000 + k), dirty: k % 5 == 0)
        }
        for k in stride(from: 0, to: per, by: 3) { _ = cache.dentries.lookup(1, name(k, length: 10)) }
        for k in stride(from: 1, to: per, by: 4) { _ = cache.dentries.lookup(1, name(k, length: 10)) }
        let snaps = cache.dentries.slab.snapshots()
        #expect(snaps.map(\.index) == [0, 1])
        let referenced = Set(stride(from: 0, to: per, by: 3)).union(stride(from: 1, to: per, by: 4)).count
        #expect(snaps[0] == SlabSnapshot(index: 0, resident: true, live: per, pinned: 0,
                                         dirty: (per + 4) / 5, referenced: referenced))
        #expect(snaps[1].live == 10 && snaps[1].dirty == 2 && snaps[1].referenced == 0)
        // Inodes: each is pinned by its dentry (26 to a slab).
        let inodeSnaps = cache.inodes.slab.snapshots()
        #expect(inodeSnaps.map(\.pinned) == [26, 26, 4])
        #expect(inodeSnaps.allSatisfy { !$0.freeable })
        // Removing the dentries unpins every inode; written back, every dentry slab is clean.
        _ = cache.dentries.takeDirty(limit: .max)
        #expect(cache.dentries.slab.snapshots().allSatisfy { $0.dirty == 0 && $0.freeable })
        for k in 0..<(per + 10) { cache.dentries.remove(1, name(k, length: 10)) }
        #expect(cache.inodes.slab.snapshots().allSatisfy { $0.pinned == 0 && $0.freeable })
        #expect(cache.checkConsistency() == [])
    }
}
