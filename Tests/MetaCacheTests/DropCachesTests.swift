import Testing
@testable import MetaCache

@Suite("dropCaches")
struct DropCachesTests {
    /// A tree: /d0../d9 directories, each with 50 files, some of them open, some dirty.
    func populate(_ cache: MetaCache) {
        for d in 0..<10 {
            let dirIno = UInt64(100 + d)
            cache.inodes.insert(attributes(dirIno, directory: true), dirty: false)
            cache.dentries.insert(1, name(d, length: 4), ino: dirIno, type: DT_DIR)
            for f in 0..<50 {
                let ino = UInt64(10_000 + d * 100 + f)
                cache.inodes.insert(attributes(ino), dirty: false)
                cache.dentries.insert(dirIno, name(f, length: f % 5 == 0 ? 60 : 8), ino: ino)
                cache.extents.insert(ino: ino, ExtentMapping(logical: 0, length: 8, physical: ino * 8, status: .written), dirty: false)
            }
            cache.dentries.insert(dirIno, bytes("no-such-file"), ino: 0)
        }
    }

    @Test("everything clean and unpinned goes, leaves before the directories they pin, and pages go back")
    func dropsAll() {
        let cache = makeCache()
        populate(cache)
        let before = cache.slabBytes
        #expect(cache.checkConsistency() == [])
        let (objects, pages) = cache.dropCaches()
        #expect(objects == 10 * (1 + 50 + 1) + 10 * (1 + 50) + 10 * 50)
        #expect(pages * 4096 == before)
        #expect(cache.slabBytes == 0)
        #expect(cache.statistics().allSatisfy { $0.activeObjects == 0 && $0.totalSlabs == 0 })
        #expect(cache.checkConsistency() == [])
    }

    @Test("pinned and dirty objects stay, with whatever they pin")
    func respectsPinsAndDirty() {
        let cache = makeCache()
        populate(cache)
        // An open file in d3, a dirty dentry in d5, a dirty inode in d7, dirty extents of a file in d8.
        #expect(cache.inodes.pin(10_000 + 3 * 100 + 7))
        cache.dentries.insert(105, name(9, length: 8), ino: 10_000 + 5 * 100 + 9, dirty: true)
        _ = cache.inodes.update(10_000 + 7 * 100 + 2) { $0.size = 4096 }
        cache.extents.insert(ino: 10_000 + 8 * 100 + 4, ExtentMapping(logical: 8, length: 8, physical: 1, status: .unwritten), dirty: true)
        cache.dropCaches()
        #expect(cache.checkConsistency() == [])
        // The open file's inode stays; its dentry and directory may go (an open file pins only its inode).
        #expect(cache.inodes.contains(10_307))
        // The dirty dentry stays, so does the directory dentry it pins and both inodes they pin.
        #expect(cache.dentries.lookup(105, name(9, length: 8)) == .positive(ino: 10_509, type: DT_REG))
        #expect(cache.dentries.lookup(1, name(5, length: 4)) == .positive(ino: 105, type: DT_DIR))
        #expect(cache.inodes.contains(10_509) && cache.inodes.contains(105))
        // The dirty inode stays (its clean extents go).
        #expect(cache.inodes.get(10_702)?.size == 4096)
        #expect(cache.extents.extents(ino: 10_702).isEmpty)
        // Dirty extents stay, clean ones of the same inode go.
        #expect(cache.extents.extents(ino: 10_804) == [ExtentMapping(logical: 8, length: 8, physical: 1, status: .unwritten)])
        // Nothing else.
        #expect(cache.dentries.count == 2)
        #expect(cache.statistics().first { $0.name == "metafs_inode" }!.activeObjects == 5)
        // Once written back and unpinned, they go too.
        _ = cache.dentries.takeDirty(limit: 10)
        _ = cache.inodes.takeDirty(limit: 10)
        _ = cache.extents.takeDirty(limit: 10)
        cache.inodes.unpin(10_307)
        cache.dropCaches()
        #expect(cache.slabBytes == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("a directory dentry pinned by a child goes only after the child")
    func leavesFirst() {
        let cache = makeCache()
        cache.inodes.insert(attributes(2, directory: true), dirty: false)
        cache.inodes.insert(attributes(3, directory: true), dirty: false)
        cache.dentries.insert(1, bytes("a"), ino: 2, type: DT_DIR)
        cache.dentries.insert(2, bytes("b"), ino: 3, type: DT_DIR)
        cache.dentries.insert(3, bytes("c"), ino: 0, dirty: true)   // pins b, which pins a
        cache.dropCaches()
        #expect(cache.dentries.count == 3)
        _ = cache.dentries.takeDirty(limit: 1)
        let (objects, _) = cache.dropCaches()
        #expect(objects == 3 + 2)
        #expect(cache.dentries.count == 0)
        #expect(cache.checkConsistency() == [])
    }

    @Test("a deep clean tree goes in one call, each directory right after its last child")
    func deepTree() {
        let cache = makeCache()
        var parent: UInt64 = 1
        for depth in 0..<200 {
            let ino = UInt64(1_000 + depth)
            cache.inodes.insert(attributes(ino, directory: true), dirty: false)
            cache.dentries.insert(parent, bytes("level\(depth)"), ino: ino, type: DT_DIR)
            cache.dentries.insert(parent, bytes("missing\(depth)"), ino: 0)
            parent = ino
        }
        #expect(cache.dentries.pins(1, bytes("level0")) == 2)
        let (objects, _) = cache.dropCaches()
        #expect(objects == 400 + 200)
        #expect(cache.dentries.count == 0)
        #expect(cache.slabBytes == 0)
        #expect(cache.checkConsistency() == [])
    }
}
