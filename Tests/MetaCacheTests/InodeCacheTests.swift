import Testing
@testable import MetaCache

@Suite("Inode cache")
struct InodeCacheTests {
    @Test("insert, get, replace, update, remove")
    func basics() {
        let cache = makeCache()
        let i = cache.inodes
        #expect(i.get(5) == nil)
        let a = attributes(5, size: 8192)
        i.insert(a, dirty: false)
        #expect(i.get(5) == a)
        #expect(i.contains(5))
        var b = a
        b.nlink = 3
        b.mtime = Timespec(seconds: -5, nanoseconds: 999_999_999)
        i.insert(b, dirty: false)
        #expect(i.get(5) == b)
        let c = i.update(5) { $0.size = 1; $0.ino = 99 }
        #expect(c?.size == 1 && c?.ino == 5)
        #expect(i.get(5)?.size == 1)
        #expect(i.update(6) { $0.size = 1 } == nil)
        #expect(i.dirtyCount == 1)
        i.remove(5)
        #expect(i.get(5) == nil && !i.contains(5))
        #expect(i.dirtyCount == 0)
        let s = cache.statistics().first { $0.name == "metafs_inode" }!
        #expect(s.hits == 3 && s.misses == 2)
        #expect(s.activeObjects == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("extreme attribute values round-trip")
    func attributeRoundTrip() {
        let cache = makeCache()
        let a = InodeAttributes(ino: .max, mode: .max, nlink: .max, uid: .max, gid: .max, rdev: .max, size: .max,
                                blocks: .max, atime: Timespec(seconds: .min, nanoseconds: .max),
                                mtime: Timespec(seconds: .max, nanoseconds: 0), ctime: Timespec(seconds: 0, nanoseconds: 7),
                                generation: .max, flags: .max)
        cache.inodes.insert(a, dirty: true)
        #expect(cache.inodes.get(.max) == a)
        #expect(cache.inodes.takeDirty(limit: 1) == [a])
    }

    @Test("dirty inodes: takeDirty hands them out once, oldest first")
    func dirty() {
        let cache = makeCache(shards: 1)
        let i = cache.inodes
        for n in 1...5 { i.insert(attributes(UInt64(n)), dirty: true) }
        _ = i.update(1) { $0.size = 7 }
        #expect(i.dirtyCount == 5)
        let first = i.takeDirty(limit: 2)
        #expect(first.map(\.ino) == [1, 2])
        #expect(first[0].size == 7)
        #expect(i.takeDirty(limit: 10).map(\.ino) == [3, 4, 5])
        #expect(i.takeDirty(limit: 10).isEmpty)
        #expect(i.slab.total(.dirty) == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("pins: open files; a removed pinned inode lingers until unpinned")
    func pins() {
        let cache = makeCache()
        let i = cache.inodes
        #expect(!i.pin(9))
        i.insert(attributes(9), dirty: false)
        #expect(i.pin(9) && i.pin(9))
        #expect(i.pins(9) == 2)
        i.remove(9)                            // freed in the store while open
        #expect(!i.contains(9))
        #expect(i.slab.figures.liveObjects == 1)
        #expect(cache.checkConsistency() == [])
        i.insert(attributes(9), dirty: false)  // the number is reused
        #expect(i.pins(9) == 0)
        i.unpin(9)                             // goes to the zombie
        i.unpin(9)
        #expect(i.slab.figures.liveObjects == 1)
        #expect(i.pins(9) == 0)
        #expect(cache.checkConsistency() == [])
    }
}
