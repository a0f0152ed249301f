import Testing
@testable import MetaCache

@Suite("Dentry cache")
struct DentryCacheTests {
    /// Distinct names of one length; long ones share all but their last 8 bytes.
    func testName(_ i: Int, _ length: Int) -> [UInt8] {
        var digits: [UInt8] = []
        var v = i
        repeat { digits.append(UInt8(1 + v % 250)); v /= 250 } while v > 0
        let tail = Array((digits + Array(repeating: UInt8(ascii: "p"), count: 8)).prefix(min(length, 8)))
        return Array(repeating: UInt8(ascii: "x"), count: length - tail.count) + tail
    }

    @Test("short, boundary and long names hash and compare correctly", arguments: [1, 8, 38, 39, 40, 41, 64, 65, 128, 129, 200, 255])
    func names(length: Int) {
        let cache = makeCache()
        let d = cache.dentries
        // Many names of this length, sharing long prefixes, in two directories.
        for i in 0..<(length == 1 ? 250 : 300) {
            let n = testName(i, length)
            d.insert(7, n, ino: UInt64(1000 + i))
            d.insert(8, n, ino: UInt64(5000 + i))
        }
        for i in 0..<(length == 1 ? 250 : 300) {
            let n = testName(i, length)
            #expect(d.lookup(7, n) == .positive(ino: UInt64(1000 + i), type: DT_REG))
            #expect(d.lookup(8, n) == .positive(ino: UInt64(5000 + i), type: DT_REG))
            #expect(d.lookup(9, n) == .miss)
        }
        // A name that differs only in its last byte misses (generated names are ASCII).
        var other = testName(1, length)
        other[length - 1] = 0xFF
        #expect(d.lookup(7, other) == .miss)
        let names = cache.statistics().filter { $0.name.hasPrefix("metafs_name-") }
        let longNames = names.reduce(0) { $0 + $1.activeObjects }
        #expect(longNames == (length > 39 ? 600 : 0))
        if length > 39 {
            let cls = length <= 64 ? "metafs_name-64" : length <= 128 ? "metafs_name-128" : "metafs_name-256"
            #expect(names.first { $0.name == cls }!.activeObjects == 600)
        }
        #expect(cache.checkConsistency() == [])
        for i in 0..<(length == 1 ? 250 : 300) {
            let n = testName(i, length)
            d.remove(7, n); d.remove(8, n)
        }
        #expect(d.count == 0)
        #expect(cache.statistics().filter { $0.name.hasPrefix("metafs_name-") }.allSatisfy { $0.activeObjects == 0 })
        #expect(cache.checkConsistency() == [])
    }

    @Test("empty and over-long names are refused without effect")
    func invalidNames() {
        let cache = makeCache()
        cache.dentries.insert(1, [], ino: 5)
        cache.dentries.insert(1, Array(repeating: 65, count: 256), ino: 5)
        #expect(cache.dentries.count == 0)
        #expect(cache.dentries.lookup(1, []) == .miss)
    }

    @Test("negative dentries are cached, counted and replaced")
    func negative() {
        let cache = makeCache()
        let d = cache.dentries
        d.insert(1, bytes("ghost"), ino: 0)
        #expect(d.lookup(1, bytes("ghost")) == .negative)
        #expect(cache.statistics().first { $0.name == "metafs_dentry" }!.negative == 1)
        d.insert(1, bytes("ghost"), ino: 42, type: DT_REG)   // created
        #expect(d.lookup(1, bytes("ghost")) == .positive(ino: 42, type: DT_REG))
        #expect(cache.statistics().first { $0.name == "metafs_dentry" }!.negative == 0)
        d.insert(1, bytes("ghost"), ino: 0, dirty: true)     // unlinked
        #expect(d.lookup(1, bytes("ghost")) == .negative)
        let dirty = d.takeDirty(limit: 10)
        #expect(dirty == [DirtyDentry(parent: 1, name: bytes("ghost"), ino: 0, type: DT_REG)])
        #expect(cache.checkConsistency() == [])
    }

    @Test("directory and leaf dentries; hits and misses counted")
    func kinds() {
        let cache = makeCache()
        let d = cache.dentries
        d.insert(1, bytes("dir"), ino: 2, type: DT_DIR)
        d.insert(1, bytes("file"), ino: 3, type: DT_REG)
        #expect(d.lookup(1, bytes("dir")) == .positive(ino: 2, type: DT_DIR))
        #expect(d.lookup(1, bytes("file")) == .positive(ino: 3, type: DT_REG))
        #expect(d.lookup(1, bytes("nope")) == .miss)
        let s = cache.statistics().first { $0.name == "metafs_dentry" }!
        #expect(s.hits == 2 && s.misses == 1)
        // A lookup sets the referenced bit without moving the dentry on the LRU.
        let lruBefore = (0..<d.shards.count).map { i in d.shards.withLock(i) { $0.lru.handles(d.slab, .lru) } }
        _ = d.lookup(1, bytes("dir"))
        let lruAfter = (0..<d.shards.count).map { i in d.shards.withLock(i) { $0.lru.handles(d.slab, .lru) } }
        #expect(lruBefore == lruAfter)
        #expect(d.slab.total(.referenced) == 2)
    }

    @Test("a dentry pins its inode and its parent directory's dentry; pins go with it")
    func pins() {
        let cache = makeCache()
        let d = cache.dentries, i = cache.inodes
        i.insert(attributes(10, directory: true), dirty: false)
        i.insert(attributes(11), dirty: false)
        i.insert(attributes(12, directory: true), dirty: false)
        d.insert(1, bytes("a"), ino: 10, type: DT_DIR)          // /a
        #expect(i.pins(10) == 1)
        d.insert(10, bytes("f"), ino: 11, type: DT_REG)          // /a/f
        d.insert(10, bytes("missing"), ino: 0)                   // /a/missing (negative)
        d.insert(10, bytes("b"), ino: 12, type: DT_DIR)          // /a/b
        d.insert(12, bytes("deep"), ino: 0)                      // /a/b/deep
        #expect(i.pins(11) == 1)
        #expect(d.pins(1, bytes("a")) == 3)                      // f, missing, b
        #expect(d.pins(10, bytes("b")) == 1)
        #expect(d.pins(10, bytes("f")) == 0)
        #expect(cache.checkConsistency() == [])

        // Replacing a dentry moves its inode pin.
        i.insert(attributes(13), dirty: false)
        d.insert(10, bytes("f"), ino: 13, type: DT_REG)
        #expect(i.pins(11) == 0 && i.pins(13) == 1)
        // Removing a leaf releases both pins.
        d.remove(10, bytes("f"))
        #expect(i.pins(13) == 0)
        #expect(d.pins(1, bytes("a")) == 2)
        // Removing a directory dentry that children still pin leaves a zombie that the last
        // child frees; the directory's inode is released at once.
        d.remove(1, bytes("a"))
        #expect(d.lookup(1, bytes("a")) == .miss)
        #expect(i.pins(10) == 0)
        #expect(d.counts().zombies == 1)
        #expect(cache.checkConsistency() == [])
        d.remove(10, bytes("missing"))
        #expect(d.counts().zombies == 1)
        d.remove(12, bytes("deep"))
        d.remove(10, bytes("b"))
        #expect(d.counts().zombies == 0)
        #expect(d.count == 0)
        #expect(cache.inodes.slab.total(.pinned) == 0)
        #expect(cache.dentries.slab.figures.liveObjects == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("a directory renamed while its children are cached: children keep the old dentry until they go")
    func renameDirectory() {
        let cache = makeCache()
        let d = cache.dentries, i = cache.inodes
        i.insert(attributes(20, directory: true), dirty: false)
        d.insert(1, bytes("old"), ino: 20, type: DT_DIR)
        d.insert(20, bytes("x"), ino: 0)
        d.insert(1, bytes("new"), ino: 20, type: DT_DIR, dirty: true)
        d.remove(1, bytes("old"))
        d.insert(20, bytes("y"), ino: 0)                         // pins the new dentry through the alias
        #expect(d.pins(1, bytes("new")) == 1)
        #expect(i.pins(20) == 1)
        #expect(cache.checkConsistency() == [])
        d.remove(20, bytes("x"))                                 // frees the zombie
        #expect(d.counts().zombies == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("a directory dentry replaced by a negative one (rename, rmdir) is detached, not rewritten")
    func replaceDirectoryWithNegative() {
        let cache = makeCache()
        let d = cache.dentries, i = cache.inodes
        i.insert(attributes(40, directory: true), dirty: false)
        d.insert(1, bytes("src"), ino: 40, type: DT_DIR)
        d.insert(40, bytes("child"), ino: 0)                     // pins "src"
        d.insert(1, bytes("dst"), ino: 40, type: DT_DIR, dirty: true)
        d.insert(1, bytes("src"), ino: 0, type: 0, dirty: true)   // rename src -> dst, as the FS does it
        #expect(d.lookup(1, bytes("src")) == .negative)
        #expect(d.lookup(1, bytes("dst")) == .positive(ino: 40, type: DT_DIR))
        #expect(d.counts().zombies == 1)                          // the old "src", held by "child"
        #expect(i.pins(40) == 1)                                  // only "dst" pins the inode now
        #expect(cache.checkConsistency() == [])
        d.insert(40, bytes("child2"), ino: 0)                    // pins "dst" through the alias
        #expect(d.pins(1, bytes("dst")) == 1)
        d.remove(40, bytes("child"))
        #expect(d.counts().zombies == 0)
        let dirty = d.takeDirty(limit: 10)
        #expect(Set(dirty.map { String(decoding: $0.name, as: UTF8.self) }) == ["src", "dst"])
        #expect(cache.checkConsistency() == [])
    }

    @Test("an inode inserted after its dentry is not pinned by it")
    func inodeAfterDentry() {
        let cache = makeCache()
        cache.dentries.insert(1, bytes("late"), ino: 30)
        cache.inodes.insert(attributes(30), dirty: false)
        #expect(cache.inodes.pins(30) == 0)
        cache.dentries.insert(1, bytes("late"), ino: 30)      // re-insert takes the pin
        #expect(cache.inodes.pins(30) == 1)
        #expect(cache.checkConsistency() == [])
    }

    @Test("dirty dentries are handed out oldest first, in batches, and marked clean")
    func dirty() {
        let cache = makeCache(shards: 1)
        let d = cache.dentries
        for k in 0..<10 { d.insert(1, name(k, length: k % 2 == 0 ? 5 : 50), ino: UInt64(100 + k), dirty: true) }
        d.insert(1, name(3, length: 50), ino: 103, dirty: false)     // stays dirty
        #expect(d.dirtyCount == 10)
        let first = d.takeDirty(limit: 4)
        #expect(first.map(\.ino) == [100, 101, 102, 103])
        #expect(first[1].name == name(1, length: 50))
        #expect(d.dirtyCount == 6)
        let rest = d.takeDirty(limit: 100)
        #expect(rest.count == 6)
        #expect(d.dirtyCount == 0)
        #expect(d.slab.total(.dirty) == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("hash tables grow and keep every entry")
    func growth() {
        let cache = makeCache(shards: 2)
        for k in 0..<20_000 { cache.dentries.insert(UInt64(k % 13), name(k, length: 10 + k % 50), ino: UInt64(k + 1)) }
        for k in 0..<20_000 {
            #expect(cache.dentries.lookup(UInt64(k % 13), name(k, length: 10 + k % 50)) == .positive(ino: UInt64(k + 1), type: DT_REG))
        }
        #expect(cache.dentries.shards.withLock(0) { $0.buckets.bucketCount } > 1024)
        #expect(cache.checkConsistency() == [])
    }
}
