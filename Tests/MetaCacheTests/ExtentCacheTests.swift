import Testing
@testable import MetaCache

@Suite("Extent cache")
struct ExtentCacheTests {
    func m(_ logical: UInt64, _ length: UInt32, _ physical: UInt64, _ status: ExtentStatus = .written) -> ExtentMapping {
        ExtentMapping(logical: logical, length: length, physical: physical, status: status)
    }

    @Test("lookup finds the covering extent; holes and gaps differ")
    func lookup() {
        let cache = makeCache()
        let e = cache.extents
        cache.inodes.insert(attributes(3), dirty: false)
        e.insert(ino: 3, m(0, 10, 100), dirty: false)
        e.insert(ino: 3, m(20, 5, 0, .hole), dirty: false)
        e.insert(ino: 3, m(30, 5, 500, .unwritten), dirty: false)
        #expect(e.lookup(ino: 3, block: 0) == m(0, 10, 100))
        #expect(e.lookup(ino: 3, block: 9) == m(0, 10, 100))
        #expect(e.lookup(ino: 3, block: 10) == nil)
        #expect(e.lookup(ino: 3, block: 22) == m(20, 5, 0, .hole))
        #expect(e.lookup(ino: 3, block: 34)?.status == .unwritten)
        #expect(e.lookup(ino: 4, block: 0) == nil)
        let s = cache.statistics().first { $0.name == "metafs_extent" }!
        #expect(s.hits == 4 && s.misses == 2)
        #expect(cache.inodes.extentSlab.total(.referenced) == 3)
    }

    @Test("insert splits what it overlaps")
    func split() {
        let cache = makeCache()
        let e = cache.extents
        e.insert(ino: 1, m(0, 100, 1000), dirty: false)
        e.insert(ino: 1, m(40, 10, 7000), dirty: false)
        #expect(e.extents(ino: 1) == [m(0, 40, 1000), m(40, 10, 7000), m(50, 50, 1050)])
        e.insert(ino: 1, m(30, 30, 0, .hole), dirty: false)
        #expect(e.extents(ino: 1) == [m(0, 30, 1000), m(30, 30, 0, .hole), m(60, 40, 1060)])
        e.remove(ino: 1, from: 70, count: 10)
        #expect(e.extents(ino: 1) == [m(0, 30, 1000), m(30, 30, 0, .hole), m(60, 10, 1060), m(80, 20, 1080)])
        e.remove(ino: 1, from: 65, count: .max)
        #expect(e.extents(ino: 1) == [m(0, 30, 1000), m(30, 30, 0, .hole), m(60, 5, 1060)])
        #expect(cache.checkConsistency() == [])
    }

    @Test("adjacent contiguous extents merge; others do not")
    func merge() {
        let cache = makeCache()
        let e = cache.extents
        e.insert(ino: 1, m(0, 10, 100), dirty: false)
        e.insert(ino: 1, m(10, 10, 110), dirty: false)       // continues: merges
        #expect(e.extents(ino: 1) == [m(0, 20, 100)])
        e.insert(ino: 1, m(30, 10, 130), dirty: false)
        e.insert(ino: 1, m(20, 10, 120), dirty: false)       // bridges both sides
        #expect(e.extents(ino: 1) == [m(0, 40, 100)])
        e.insert(ino: 1, m(40, 10, 999), dirty: false)       // not physically contiguous
        e.insert(ino: 1, m(50, 10, 1009, .unwritten), dirty: false)  // other status
        e.insert(ino: 1, m(60, 10, 1019, .unwritten), dirty: true)   // other dirtiness
        #expect(e.extents(ino: 1).count == 4)
        e.insert(ino: 1, m(70, 5, 0, .hole), dirty: false)
        e.insert(ino: 1, m(75, 5, 12345, .hole), dirty: false)       // holes merge whatever physical says
        #expect(e.extents(ino: 1).last == m(70, 10, 0, .hole))
        // Extending to the left.
        e.insert(ino: 2, m(10, 10, 110), dirty: false)
        e.insert(ino: 2, m(0, 10, 100), dirty: false)
        #expect(e.extents(ino: 2) == [m(0, 20, 100)])
        #expect(cache.checkConsistency() == [])
    }

    @Test("a mapping longer than one record holds is stored in pieces and stays correct")
    func longMapping() {
        let cache = makeCache()
        let e = cache.extents
        e.insert(ino: 1, m(5, UInt32.max, 1 << 40), dirty: false)
        let all = e.extents(ino: 1)
        #expect(all.reduce(UInt64(0)) { $0 + UInt64($1.length) } == UInt64(UInt32.max))
        #expect(e.lookup(ino: 1, block: 5 + (1 << 31)) != nil)
        let hit = e.lookup(ino: 1, block: 5 + 3_000_000_000)!
        #expect(hit.physical + (5 + 3_000_000_000 - hit.logical) == (1 << 40) + 3_000_000_000)
        // Block numbers have 48 bits: a mapping is clamped at 2^48, and one beyond is not cached.
        e.insert(ino: 1, m((1 << 48) - 3, 100, 0, .hole), dirty: false)
        #expect(e.lookup(ino: 1, block: (1 << 48) - 1) == m((1 << 48) - 3, 3, 0, .hole))
        e.insert(ino: 1, m(1 << 48, 10, 0, .hole), dirty: false)
        #expect(e.lookup(ino: 1, block: 1 << 48) == nil)
        e.insert(ino: 2, m(1 << 50, 10, 0, .hole), dirty: true)
        #expect(e.dirtyInodeCount == 0 && cache.inodes.slab.figures.liveObjects == 1)
        #expect(cache.checkConsistency() == [])
    }

    @Test("random inserts and removes agree with a per-block model", arguments: [false, true])
    func randomModel(withDirty: Bool) {
        let cache = makeCache()
        let e = cache.extents
        var rng = SeededRandom(seed: withDirty ? 99 : 98)
        let blocks = 300
        // Model: per block, (physical or nil for hole, status, dirty), or nil when unmapped.
        var model = [(phys: UInt64, status: ExtentStatus, dirty: Bool)?](repeating: nil, count: blocks)
        for step in 0..<4_000 {
            let start = UInt64.random(in: 0..<UInt64(blocks), using: &rng)
            let len = UInt32.random(in: 1...40, using: &rng)
            let end = min(UInt64(blocks), start + UInt64(len))
            if Int.random(in: 0..<4, using: &rng) == 0 {
                e.remove(ino: 1, from: start, count: end - start)
                for b in Int(start)..<Int(end) { model[b] = nil }
            } else {
                let status: ExtentStatus = [.written, .written, .unwritten, .hole].randomElement(using: &rng)!
                // Physical placement that is often contiguous with the neighbours.
                let phys = Bool.random(using: &rng) ? 10_000 + start : UInt64.random(in: 0..<1_000_000, using: &rng)
                let dirty = withDirty && Bool.random(using: &rng)
                e.insert(ino: 1, m(start, UInt32(end - start), phys, status), dirty: dirty)
                for b in Int(start)..<Int(end) {
                    model[b] = (status == .hole ? 0 : phys + UInt64(b) - start, status, dirty)
                }
            }
            if step % 400 == 0 || step == 3_999 {
                for b in 0..<blocks {
                    let got = e.lookup(ino: 1, block: UInt64(b))
                    if let want = model[b] {
                        guard let got else { Issue.record("block \(b): expected a mapping"); continue }
                        #expect(got.status == want.status, "block \(b)")
                        if want.status != .hole { #expect(got.physical + UInt64(b) - got.logical == want.phys, "block \(b)") }
                    } else {
                        #expect(got == nil, "block \(b): expected no mapping")
                    }
                }
                let all = e.extents(ino: 1)
                for (x, y) in zip(all, all.dropFirst()) {
                    #expect(x.end <= y.logical)
                    if !withDirty {
                        // With one dirtiness, nothing mergeable is left unmerged.
                        let joinable = x.end == y.logical && x.status == y.status
                            && (x.status == .hole || x.physical + UInt64(x.length) == y.physical)
                        #expect(!joinable, "\(x) and \(y) should have merged")
                    }
                }
                #expect(cache.checkConsistency() == [])
            }
        }
        // Dirty extents come back as exactly the dirty blocks.
        let taken = e.takeDirty(limit: 10)
        var dirtyBlocks = Set<Int>()
        for (_, maps) in taken { for x in maps { for b in x.logical..<x.end { dirtyBlocks.insert(Int(b)) } } }
        let want = Set((0..<blocks).filter { model[$0]?.dirty == true })
        #expect(dirtyBlocks == want)
        #expect(e.dirtyInodeCount == 0)
        #expect(cache.inodes.extentSlab.total(.dirty) == 0)
    }

    @Test("extents without a cached inode hang off a stub; inode removal drops them")
    func stubs() {
        let cache = makeCache()
        let e = cache.extents
        e.insert(ino: 50, m(0, 4, 400), dirty: true)
        #expect(!cache.inodes.contains(50))
        #expect(cache.inodes.get(50) == nil)
        #expect(e.lookup(ino: 50, block: 2) != nil)
        cache.inodes.insert(attributes(50), dirty: false)     // becomes a full inode, keeps its extents
        #expect(e.extents(ino: 50) == [m(0, 4, 400)])
        #expect(e.dirtyInodeCount == 1)
        cache.inodes.remove(50)
        #expect(e.extents(ino: 50).isEmpty)
        #expect(e.dirtyInodeCount == 0)
        #expect(cache.inodes.extentSlab.figures.liveObjects == 0)
        // A stub whose last extent goes is freed.
        e.insert(ino: 51, m(0, 4, 400), dirty: false)
        e.remove(ino: 51, from: 0, count: .max)
        #expect(cache.inodes.slab.figures.liveObjects == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("takeDirty returns each inode's dirty mappings once")
    func takeDirty() {
        let cache = makeCache()
        let e = cache.extents
        e.insert(ino: 1, m(0, 5, 100), dirty: true)
        e.insert(ino: 1, m(10, 5, 200), dirty: false)
        e.insert(ino: 2, m(0, 5, 300), dirty: true)
        #expect(e.dirtyInodeCount == 2)
        let one = e.takeDirty(limit: 1)
        #expect(one.count == 1)
        let rest = e.takeDirty(limit: 5)
        #expect(rest.count == 1)
        let all = Dictionary(uniqueKeysWithValues: (one + rest).map { ($0.ino, $0.mappings) })
        #expect(all[1] == [m(0, 5, 100)])
        #expect(all[2] == [m(0, 5, 300)])
        #expect(e.dirtyInodeCount == 0)
        #expect(cache.checkConsistency() == [])
    }
}
