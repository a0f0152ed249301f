import Testing
import Synchronization
@testable import MetaCache

@Suite("Concurrency")
struct ConcurrencyTests {
    /// Four threads, 1,000,000 operations in all. Each thread owns a directory (its own keys, so
    /// it can model them exactly) and also hammers a shared directory whose names always map to
    /// the same inode, so whatever the interleaving the outcome per name is known. Directory
    /// dentries come and go under their children, so pins and zombies race too.
    @Test("a million mixed operations from four threads lose and duplicate nothing")
    func stress() {
        let threads = 4
        let opsPerThread = 250_000
        let keys = 1_500
        let cache = makeCache(shards: 16)
        let failures = Atomic<Int>(0)
        for t in 0..<threads {
            cache.inodes.insert(attributes(UInt64(1_000 + t), directory: true), dirty: false)
            cache.dentries.insert(1, bytes("dir\(t)"), ino: UInt64(1_000 + t), type: DT_DIR)
        }
        let models = Mutex<[[UInt64?]]>(Array(repeating: [], count: threads))
        runThreads(threads) { t in
            var rng = SeededRandom(seed: UInt64(t + 1) &* 0x1234567)
            let dir = UInt64(1_000 + t)
            var model = [UInt64?](repeating: nil, count: keys)       // nil: absent; 0: negative
            var names: [[UInt8]] = (0..<keys).map { name($0, length: $0 % 9 == 0 ? 70 : 8 + $0 % 30) }
            var opened: [UInt64] = []
            for _ in 0..<opsPerThread {
                let k = Int.random(in: 0..<keys, using: &rng)
                let r = Int.random(in: 0..<100, using: &rng)
                switch r {
                case 0..<35:
                    let got = cache.dentries.lookup(dir, names[k])
                    let want: DentryLookup = model[k].map { $0 == 0 ? .negative : .positive(ino: $0, type: DT_REG) } ?? .miss
                    if got != want { failures.wrappingAdd(1, ordering: .relaxed) }
                case 35..<55:
                    let ino: UInt64 = Bool.random(using: &rng) ? 0 : UInt64(t) << 32 | UInt64(k + 1)
                    if ino != 0 && Bool.random(using: &rng) { cache.inodes.insert(attributes(ino), dirty: false) }
                    cache.dentries.insert(dir, names[k], ino: ino, type: DT_REG, dirty: r % 3 == 0)
                    model[k] = ino
                case 55..<68:
                    cache.dentries.remove(dir, names[k])
                    model[k] = nil
                case 68..<80:
                    // Shared directory: name k always means inode 7_000_000 + k.
                    let shared = names[k]
                    switch r % 3 {
                    case 0: cache.dentries.insert(2, shared, ino: UInt64(7_000_000 + k), type: DT_REG)
                    case 1: cache.dentries.remove(2, shared)
                    default:
                        let got = cache.dentries.lookup(2, shared)
                        if got != .miss && got != .positive(ino: UInt64(7_000_000 + k), type: DT_REG) {
                            failures.wrappingAdd(1, ordering: .relaxed)
                        }
                    }
                case 80..<88:
                    let ino = UInt64(t) << 32 | UInt64(k + 1)
                    switch r % 4 {
                    case 0: if cache.inodes.pin(ino) { opened.append(ino) }
                    case 1: if let o = opened.popLast() { cache.inodes.unpin(o) }
                    case 2: _ = cache.inodes.update(ino) { $0.size += 1 }
                    default: _ = cache.inodes.get(ino)
                    }
                case 88..<96:
                    let ino = UInt64(t) << 32 | UInt64(k + 1)
                    let start = UInt64.random(in: 0..<64, using: &rng)
                    if r % 2 == 0 {
                        cache.extents.insert(ino: ino, ExtentMapping(logical: start, length: 4, physical: 100 + start, status: .written), dirty: r % 4 == 0)
                        if cache.extents.lookup(ino: ino, block: start + 1)?.physical != nil,
                           let e = cache.extents.lookup(ino: ino, block: start + 1), e.physical + (start + 1 - e.logical) != 101 + start {
                            failures.wrappingAdd(1, ordering: .relaxed)
                        }
                    } else {
                        cache.extents.remove(ino: ino, from: start, count: 8)
                    }
                case 96..<98:
                    // Rename our directory away and back: children pin the old dentry (a zombie).
                    cache.dentries.insert(1, bytes("dir\(t)-tmp"), ino: dir, type: DT_DIR)
                    cache.dentries.remove(1, bytes("dir\(t)"))
                    cache.dentries.insert(1, bytes("dir\(t)"), ino: dir, type: DT_DIR)
                    cache.dentries.remove(1, bytes("dir\(t)-tmp"))
                default:
                    _ = cache.dentries.takeDirty(limit: 8)
                    _ = cache.inodes.takeDirty(limit: 8)
                    _ = cache.extents.takeDirty(limit: 2)
                }
            }
            for o in opened { cache.inodes.unpin(o) }
            names.removeAll()
            models.withLock { $0[t] = model }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(cache.checkConsistency() == [])
        // Every modelled entry is exactly where it should be, and nothing else is cached.
        let all = models.withLock { $0 }
        var expected = threads + 0
        for t in 0..<threads {
            for k in 0..<keys {
                let n = name(k, length: k % 9 == 0 ? 70 : 8 + k % 30)
                let got = cache.dentries.lookup(UInt64(1_000 + t), n)
                let want: DentryLookup = all[t][k].map { $0 == 0 ? .negative : .positive(ino: $0, type: DT_REG) } ?? .miss
                #expect(got == want, "thread \(t) key \(k)")
                if want != .miss { expected += 1 }
            }
        }
        for k in 0..<keys {
            let n = name(k, length: k % 9 == 0 ? 70 : 8 + k % 30)
            if cache.dentries.lookup(2, n) != .miss { expected += 1 }
        }
        #expect(cache.dentries.count == expected)
        let stats = cache.statistics().first { $0.name == "metafs_dentry" }!
        // Live records: hashed ones plus zombies (renamed-away directory dentries that children
        // still pin); nothing else.
        #expect(stats.activeObjects == expected + cache.dentries.counts().zombies)
        // Everything written back and dropped: nothing is left pinned or allocated.
        _ = cache.dentries.takeDirty(limit: .max)
        _ = cache.inodes.takeDirty(limit: .max)
        _ = cache.extents.takeDirty(limit: .max)
        cache.dropCaches()
        #expect(cache.checkConsistency() == [])
        #expect(cache.slabBytes == 0)
    }

    @Test("two threads looking up the same names see consistent results while a third churns")
    func readersAndWriter() {
        let cache = makeCache(shards: 4)
        for k in 0..<2_000 { cache.dentries.insert(1, name(k, length: 20), ino: UInt64(k + 1)) }
        let bad = Atomic<Int>(0)
        runThreads(3) { t in
            var rng = SeededRandom(seed: UInt64(t))
            for _ in 0..<40_000 {
                let k = Int.random(in: 0..<2_000, using: &rng)
                if t == 2 {
                    // Churn names outside the stable set, in the same shards.
                    let n = name(10_000 + k, length: 20)
                    cache.dentries.insert(1, n, ino: 5)
                    cache.dentries.remove(1, n)
                } else if cache.dentries.lookup(1, name(k, length: 20)) != .positive(ino: UInt64(k + 1), type: DT_REG) {
                    bad.wrappingAdd(1, ordering: .relaxed)
                }
            }
        }
        #expect(bad.load(ordering: .relaxed) == 0)
        #expect(cache.dentries.count == 2_000)
        #expect(cache.checkConsistency() == [])
    }

    /// Lock-free lookups race with every kind of change to the chains they walk: in-place
    /// replacement of (ino, type) pairs, removal and re-insertion, and table growth (in-place
    /// bucket doubling). Names that are never removed must never miss; a flipping name must
    /// show one of its two whole states.
    @Test("seqlock lookups never see a wrong value while chains change and tables grow")
    func seqlockReaders() {
        let cache = makeCache(shards: 2)
        let stable = 3_000, flipping = 500
        let DT_LNK: UInt8 = 10
        for k in 0..<stable { cache.dentries.insert(1, name(k, length: 12 + k % 40), ino: UInt64(k + 1)) }
        for k in 0..<flipping { cache.dentries.insert(2, name(k, length: 45), ino: 100) }
        let wrong = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        runThreads(3) { t in
            if t == 0 {
                var rng = SeededRandom(seed: 5)
                for round in 0..<40_000 {
                    let k = Int.random(in: 0..<flipping, using: &rng)
                    if round % 2 == 0 {
                        cache.dentries.insert(2, name(k, length: 45), ino: 100, type: DT_REG)
                    } else {
                        cache.dentries.insert(2, name(k, length: 45), ino: 200, type: DT_LNK)
                    }
                    // Grow the tables: many more names than the initial buckets.
                    let g = 10_000 + round
                    cache.dentries.insert(3, name(g, length: 8 + round % 60), ino: UInt64(g))
                    if round % 3 == 0 { cache.dentries.remove(3, name(g - 1, length: 8 + (round - 1) % 60)) }
                }
                stop.store(true, ordering: .releasing)
            } else {
                var rng = SeededRandom(seed: UInt64(t))
                while !stop.load(ordering: .acquiring) {
                    let k = Int.random(in: 0..<stable, using: &rng)
                    if cache.dentries.lookup(1, name(k, length: 12 + k % 40)) != .positive(ino: UInt64(k + 1), type: DT_REG) {
                        wrong.wrappingAdd(1, ordering: .relaxed)
                    }
                    let f = Int.random(in: 0..<flipping, using: &rng)
                    switch cache.dentries.lookup(2, name(f, length: 45)) {
                    case .positive(ino: 100, type: DT_REG), .positive(ino: 200, type: DT_LNK): break
                    default: wrong.wrappingAdd(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(cache.dentries.shards.withLock(0) { $0.buckets.bucketCount } >= 8192)
        #expect(cache.checkConsistency() == [])
    }

    @Test("a reclaimer can try a shard lock and move on when it is busy")
    func tryLock() {
        let cache = makeCache(shards: 4)
        let busy = cache.dentries.shards.withLock(1) { _ in
            cache.dentries.shards.withLockIfAvailable(1) { _ in true }
        }
        #expect(busy == nil)
        #expect(cache.dentries.shards.withLockIfAvailable(1) { _ in true } == true)
        let inodeBusy = cache.inodes.shards.withLock(2) { _ in cache.inodes.shards.withLockIfAvailable(2) { _ in 1 } }
        #expect(inodeBusy == nil)
    }

    /// dropCaches takes locks in the documented order while other threads insert, look up,
    /// pin and remove: no deadlock, nothing pinned or dirty lost, counts consistent.
    @Test("dropCaches runs safely beside lookups, inserts, pins and removals")
    func reclaimWhileBusy() {
        let cache = makeCache(shards: 4)
        let stop = Atomic<Bool>(false)
        let lost = Atomic<Int>(0)
        runThreads(3) { t in
            if t == 2 {
                var drops = 0
                while !stop.load(ordering: .acquiring) || drops < 5 {
                    cache.dropCaches()
                    drops += 1
                }
                return
            }
            var rng = SeededRandom(seed: UInt64(t + 50))
            let dir = UInt64(500 + t)
            cache.inodes.insert(attributes(dir, directory: true), dirty: false)
            cache.dentries.insert(1, bytes("d\(t)"), ino: dir, type: DT_DIR)
            for i in 0..<30_000 {
                let k = Int.random(in: 0..<400, using: &rng)
                let ino = UInt64(t + 1) << 20 | UInt64(k)
                let n = name(k, length: 10)
                switch i % 5 {
                case 0:
                    cache.inodes.insert(attributes(ino), dirty: false)
                    cache.dentries.insert(dir, n, ino: ino, dirty: k % 10 == 0)
                case 1:
                    // A dirty dentry may not be dropped: it must still be there.
                    cache.dentries.insert(dir, name(1_000 + k, length: 10), ino: ino, dirty: true)
                    if cache.dentries.lookup(dir, name(1_000 + k, length: 10)) != .positive(ino: ino, type: DT_REG) {
                        lost.wrappingAdd(1, ordering: .relaxed)
                    }
                    cache.dentries.remove(dir, name(1_000 + k, length: 10))
                case 2:
                    cache.inodes.insert(attributes(ino), dirty: false)
                    if cache.inodes.pin(ino) {
                        if !cache.inodes.contains(ino) { lost.wrappingAdd(1, ordering: .relaxed) }
                        cache.inodes.unpin(ino)
                    }
                case 3:
                    cache.extents.insert(ino: ino, ExtentMapping(logical: 0, length: 2, physical: 9, status: .written), dirty: true)
                    // (No takeDirty here: another thread's could clean this extent, and then a
                    // drop may rightly take it.)
                    if cache.extents.lookup(ino: ino, block: 1) == nil { lost.wrappingAdd(1, ordering: .relaxed) }
                    cache.extents.insert(ino: ino, ExtentMapping(logical: 4, length: 2, physical: 90, status: .written), dirty: false)
                default:
                    _ = cache.dentries.lookup(dir, n)
                    cache.dentries.remove(dir, n)
                }
            }
            stop.store(true, ordering: .releasing)
        }
        #expect(lost.load(ordering: .relaxed) == 0)
        #expect(cache.checkConsistency() == [])
        _ = cache.dentries.takeDirty(limit: .max)
        _ = cache.inodes.takeDirty(limit: .max)
        _ = cache.extents.takeDirty(limit: .max)
        cache.dropCaches()
        #expect(cache.slabBytes == 0)
        #expect(cache.checkConsistency() == [])
    }

    /// Lock-free inode reads never return a torn record: the writer keeps size == blocks and
    /// uid == gid in every update while tables grow and other inodes come and go.
    @Test("seqlock inode reads never see a half-written record")
    func seqlockInodeReads() {
        let cache = makeCache(shards: 2)
        let stable = 2_000
        for k in 1...stable { cache.inodes.insert(attributes(UInt64(k)), dirty: false) }
        let torn = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        runThreads(3) { t in
            var rng = SeededRandom(seed: UInt64(t + 9))
            if t == 0 {
                for round in 0..<40_000 {
                    let k = UInt64.random(in: 1...UInt64(stable), using: &rng)
                    let v = UInt64(round)
                    _ = cache.inodes.update(k) { $0.size = v; $0.blocks = v; $0.uid = UInt32(truncatingIfNeeded: v); $0.gid = UInt32(truncatingIfNeeded: v) }
                    cache.inodes.insert(attributes(UInt64(100_000 + round)), dirty: false)
                    if round % 2 == 0 { cache.inodes.remove(UInt64(100_000 + round - 1)) }
                }
                stop.store(true, ordering: .releasing)
            } else {
                while !stop.load(ordering: .acquiring) {
                    let k = UInt64.random(in: 1...UInt64(stable), using: &rng)
                    guard let a = cache.inodes.get(k) else { torn.wrappingAdd(1, ordering: .relaxed); continue }
                    if a.ino != k || (a.size != a.blocks && a.size != 0) || (a.uid != a.gid) {
                        torn.wrappingAdd(1, ordering: .relaxed)
                    }
                }
            }
        }
        #expect(torn.load(ordering: .relaxed) == 0)
        #expect(cache.checkConsistency() == [])
    }
}
