import Foundation
import Synchronization
@testable import MetaCache
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A cache with reclaim settings and merging chosen.
func makeReclaimCache(shards: Int = 8, merge: Bool = false, _ settings: (inout ReclaimSettings) -> Void = { _ in }) -> MetaCache {
    var c = CacheConfiguration()
    c.shards = shards
    c.expectedObjects = 1024
    c.reserveBytesPerCache = 1 << 30
    c.merge = merge
    settings(&c.reclaim)
    return MetaCache(configuration: c)
}

@Suite("Reclaim") struct ReclaimTests {
    @Test("direct reclaim keeps slab memory at the budget; it never calls writeback on the allocating thread")
    func budgetDirectReclaim() {
        let budget = 2 << 20
        let cache = makeReclaimCache { $0.budgetBytes = budget; $0.dirty = .writeback }
        let me = pthread_self()
        let onInsertingThread = Counter()
        let batches = Counter()
        cache.reclaimer.setWriteback({ [unowned cache] in
            if pthread_equal(pthread_self(), me) != 0 { onInsertingThread.add() }
            _ = cache.dentries.takeDirty(limit: .max)
            _ = cache.inodes.takeDirty(limit: .max)
            batches.add()
        })
        cache.reclaimer.start()
        var peak = 0
        for k in 0..<100_000 {
            let ino = UInt64(100 + k)
            cache.inodes.insert(attributes(ino), dirty: k % 50 == 0)
            cache.dentries.insert(UInt64(1 + k / 500), name(k, length: 12), ino: ino, dirty: k % 50 == 0)
            if k % 64 == 0 { peak = max(peak, cache.accountedSlabBytes) }
        }
        cache.reclaimer.stop()
        let st = cache.reclaimer.statistics()
        print("budget \(budget >> 10) KiB: peak slab \(peak >> 10) KiB, direct reclaims \(st.directReclaims), background runs \(st.backgroundRuns), writeback batches \(batches.load())")
        #expect(peak <= budget + budget / 10)
        #expect(st.directReclaims > 0)
        #expect(onInsertingThread.load() == 0)
        #expect(cache.accountedSlabBytes == cache.slabBytes)
        #expect(cache.checkConsistency() == [])
    }

    @Test("segregation: directory dentries in slabs of their own; a dentry that changes kind moves and is counted")
    func segregation() {
        for merge in [false, true] {
            let cache = makeReclaimCache(merge: merge) { $0.segregate = true }
            cache.dentries.insert(1, bytes("x"), ino: 0)                 // negative: a leaf slab
            #expect(cache.dentries.slab.kindFigures(0).live == 1)
            cache.inodes.insert(attributes(50, directory: true), dirty: false)
            cache.dentries.insert(1, bytes("x"), ino: 50, type: DT_DIR)   // mkdir over the negative dentry
            cache.dentries.insert(50, bytes("child"), ino: 51)            // pins x
            cache.dentries.insert(1, bytes("leaf"), ino: 52)
            let relocated = cache.dentries.relocated.load(ordering: .relaxed)
            let names = cache.statistics().map(\.name)
            if merge {
                // SLUB-style merging: the two kinds share slabs, nothing moves.
                #expect(relocated == 0)
                #expect(!names.contains("metafs_dentry_dir"))
                #expect(cache.dentries.slab.kindFigures(1).live == 0)
            } else {
                #expect(relocated == 1)
                #expect(names.contains("metafs_dentry_dir"))
                #expect(cache.dentries.slab.kindFigures(1).live == 1)
                #expect(cache.dentries.slab.kindFigures(0).live == 2)
                let dir = cache.statistics().first { $0.name == "metafs_dentry_dir" }!
                #expect(dir.activeObjects == 1 && dir.pinned == 1)
            }
            #expect(cache.dentries.pins(1, bytes("x")) == 1)
            #expect(cache.dentries.lookup(1, bytes("x")) == .positive(ino: 50, type: DT_DIR))
            // rmdir: the directory dentry becomes negative again (a leaf): it moves back.
            cache.dentries.remove(50, bytes("child"))
            cache.dentries.insert(1, bytes("x"), ino: 0, dirty: true)
            #expect(cache.dentries.relocated.load(ordering: .relaxed) == (merge ? 0 : 2))
            #expect(cache.dentries.lookup(1, bytes("x")) == .negative)
            #expect(cache.dentries.dirtyCount == 1)
            #expect(cache.checkConsistency() == [])
        }
    }

    @Test("negative_max bounds clean negative dentries; dirty ones stay")
    func negativeMax() {
        let cache = makeReclaimCache { $0.negativeMax = 100 }
        for k in 0..<50 { cache.dentries.insert(2, name(k, length: 10), ino: 0, dirty: true) }
        for k in 0..<2000 {
            cache.dentries.insert(1, name(k, length: 10), ino: 0)
            #expect(cache.dentries.negativeCount.load(ordering: .relaxed) <= 101)
        }
        #expect(cache.dentries.negativeCount.load(ordering: .relaxed) <= 100)
        #expect(cache.dentries.dirtyCount == 50)
        for k in 0..<50 { #expect(cache.dentries.lookup(2, name(k, length: 10)) == .negative) }
        // The newest survive.
        #expect(cache.dentries.lookup(1, name(1999, length: 10)) == .negative)
        #expect(cache.reclaimer.statistics().negativeTrimmed >= 1900)
        #expect(cache.checkConsistency() == [])
    }

    @Test("extent shrinker: round-robin over inodes, resumes where it stopped, second chance, never under I/O")
    func extentShrinker() {
        let cache = makeReclaimCache(shards: 1)
        for ino in UInt64(1)...10 {
            cache.inodes.insert(attributes(ino), dirty: false)
            for b in 0..<20 {
                cache.extents.insert(ino: ino, ExtentMapping(logical: UInt64(b * 2), length: 1, physical: ino * 1000 + UInt64(b * 2),
                                                             status: .written), dirty: false)
            }
        }
        #expect(cache.extents.count(ino: 1) == 20)
        cache.extents.beginIO(ino: 3)
        for b in 0..<20 { _ = cache.extents.lookup(ino: 5, block: UInt64(b * 2)) }   // referenced
        let r = cache.reclaimer
        _ = r.scan(shrinker: "extent", nrToScan: 20)
        #expect(cache.extents.count(ino: 1) == 0 && cache.extents.count(ino: 2) == 20)
        _ = r.scan(shrinker: "extent", nrToScan: 20)      // resumes at inode 2
        #expect(cache.extents.count(ino: 2) == 0 && cache.extents.count(ino: 4) == 20)
        _ = r.scan(shrinker: "extent", nrToScan: 60)      // 3: under I/O, passed over; 4 freed; 5: bits cleared
        #expect(cache.extents.count(ino: 3) == 20)
        #expect(cache.extents.count(ino: 4) == 0)
        #expect(cache.extents.count(ino: 5) == 20)
        _ = r.scan(shrinker: "extent", nrToScan: 1000)
        #expect(cache.extents.count(ino: 3) == 20)
        #expect(cache.extents.count(ino: 5) == 0)
        cache.extents.endIO(ino: 3)
        _ = r.scan(shrinker: "extent", nrToScan: 1000)
        #expect(cache.extents.count(ino: 3) == 0)
        let info = r.extentShrinkerInfo()
        #expect(info.hasPrefix("stats:\n  0 objects\n  0 reclaimable objects\n"))
        #expect(info.contains("cache hits/misses\n") && info.contains("average:\n") && info.contains(" shrunk objects\n"))
        #expect(cache.reclaimer.extentShrinker.counters.skippedIO.load(ordering: .relaxed) >= 20)
        #expect(cache.checkConsistency() == [])
    }

    @Test("page policy on extents and inodes frees whole pages; dirty extents stay")
    func pagePolicyOtherCaches() {
        let cache = makeReclaimCache(shards: 4) { $0.policy = .page }
        for ino in UInt64(1)...300 {
            cache.inodes.insert(attributes(ino), dirty: ino > 270)
            for b in 0..<10 {
                cache.extents.insert(ino: ino, ExtentMapping(logical: UInt64(b * 2), length: 1, physical: ino * 1000 + UInt64(b * 2),
                                                             status: .written), dirty: ino > 290 && b == 0)
            }
        }
        let dirtyExtents = cache.extents.dirtyCount
        let before = cache.slabBytes
        let rep = cache.reclaimer.shrink(.pages(10))
        #expect(rep.freedPages >= 10)
        #expect(before - cache.slabBytes == rep.freedPages * 4096)
        #expect(cache.extents.dirtyCount == dirtyExtents)
        #expect(cache.inodes.dirtyCount == 30)
        let perShrinker = Dictionary(uniqueKeysWithValues: rep.perShrinker.map { ($0.name, $0.pages) })
        #expect(perShrinker["inode", default: 0] + perShrinker["extent", default: 0] == rep.freedPages)
        #expect(cache.checkConsistency() == [])
    }

    @Test("budget auto: a memory-pressure event makes the background reclaimer take an eighth back")
    func budgetAuto() {
        let cache = makeReclaimCache { $0.budgetAuto = true }
        #expect(cache.reclaimer.statistics().pressureSource == "")       // armed only while running
        cache.reclaimer.start()
        let st = cache.reclaimer.statistics()
        #expect(!st.pressureSource.isEmpty)
        print("budget auto: pressure from \(st.pressureSource)")
        for k in 0..<20_000 { cache.dentries.insert(1, name(k, length: 12), ino: UInt64(10 + k)) }
        let before = cache.accountedSlabBytes
        cache.reclaimer.simulatePressure()
        var waited = 0
        while cache.reclaimer.statistics().backgroundRuns == 0 && waited < 400 { usleep(5_000); waited += 1 }
        usleep(50_000)
        let after = cache.accountedSlabBytes
        #expect(cache.reclaimer.statistics().pressureEvents == 1)
        #expect(after <= before - before / 8 + 4096, "before \(before), after \(after)")
        cache.reclaimer.update { $0.budgetAuto = false }
        #expect(cache.reclaimer.statistics().pressureSource == "")
        cache.reclaimer.stop()
        #expect(cache.checkConsistency() == [])
    }

    @Test("a busy shard is skipped and counted; the scan goes on elsewhere")
    func lockBusy() {
        let cache = makeReclaimCache(shards: 4)
        for k in 0..<400 { cache.dentries.insert(1, name(k, length: 10), ino: UInt64(10 + k)) }
        let r = cache.dentries.shards.withLock(2) { _ in cache.reclaimer.shrink(.objects(100)) }
        #expect(r.freedObjects >= 100)
        #expect(r.lockBusy > 0)
        #expect(cache.reclaimer.dentryShrinker.counters.lockBusy.load(ordering: .relaxed) > 0)
        #expect(cache.reclaimer.debugfsCount(shrinker: "dentry") == "0 \(cache.dentries.count)\n")
        #expect(cache.checkConsistency() == [])
    }

    @Test("shrinkers, direct reclaim and policy switches run beside inserts, lookups and removals; nothing dirty is lost")
    func concurrentReclaim() {
        let cache = makeReclaimCache(shards: 8) { $0.budgetBytes = 1 << 20; $0.reclaimers = 1 }
        cache.reclaimer.start()
        let stop = Atomic<Bool>(false)
        let lost = Atomic<Int>(0)
        runThreads(4) { t in
            switch t {
            case 0, 1:
                var rng = SeededRandom(seed: UInt64(t + 7))
                for k in 0..<30_000 {
                    let ino = UInt64(t * 1_000_000 + k + 10)
                    let dirty = k % 10 == 0
                    cache.inodes.insert(attributes(ino), dirty: dirty)
                    cache.dentries.insert(UInt64(t + 1), name(k, length: 16 + k % 40), ino: ino, dirty: dirty)
                    let probe = Int.random(in: 0...k, using: &rng)
                    _ = cache.dentries.lookup(UInt64(t + 1), name(probe, length: 16 + probe % 40))
                    _ = cache.inodes.get(UInt64(t * 1_000_000 + probe + 10))
                    // Every dirty dentry and inode written so far must still be cached.
                    if k % 1000 == 999 {
                        for d in stride(from: 0, through: k, by: 10) {
                            if cache.dentries.lookup(UInt64(t + 1), name(d, length: 16 + d % 40)) == .miss { lost.add(1, ordering: .relaxed) }
                            if !cache.inodes.contains(UInt64(t * 1_000_000 + d + 10)) { lost.add(1, ordering: .relaxed) }
                        }
                    }
                }
                stop.store(true, ordering: .releasing)
            case 2:
                var i = 0
                while !stop.load(ordering: .acquiring) {
                    _ = cache.reclaimer.shrink(.objects(500))
                    i += 1
                }
            default:
                var i = 0
                while !stop.load(ordering: .acquiring) {
                    let p = ReclaimPolicy.allCases[i % 3]
                    cache.reclaimer.update { $0.policy = p; $0.segregate = i % 2 == 0 }
                    _ = cache.reclaimer.scan(shrinker: ["dentry", "inode", "extent"][i % 3], nrToScan: 200)
                    i += 1
                    usleep(500)
                }
            }
        }
        cache.reclaimer.stop()
        #expect(lost.load(ordering: .relaxed) == 0)
        let st = cache.reclaimer.statistics()
        #expect(st.shrinkers.reduce(0) { $0 + $1.freedObjects } > 0)
        #expect(cache.checkConsistency() == [])
    }
}
