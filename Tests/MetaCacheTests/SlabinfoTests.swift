import Foundation
import Testing
@testable import MetaCache

@Suite("Statistics and slabinfo")
struct SlabinfoTests {
    @Test("slabinfo matches Linux's version 2.1 layout")
    func format() {
        let cache = makeCache()
        for k in 0..<100 { cache.dentries.insert(1, name(k, length: 6), ino: UInt64(k + 2)) }
        cache.dentries.insert(1, name(1, length: 100), ino: 9)
        let text = cache.slabinfo()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "slabinfo - version: 2.1")
        #expect(lines[1] == "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>")
        #expect(lines.last == "")
        let names = lines.dropFirst(2).dropLast().map { String($0.prefix(17)).trimmingCharacters(in: .whitespaces) }
        #expect(names == ["metafs_dentry", "metafs_inode", "metafs_extent", "metafs_name-64", "metafs_name-128", "metafs_name-256"])
        // The dentry line, column by column: %-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu
        #expect(lines[2] == "metafs_dentry        101    138     88   46    1 : tunables    0    0    0 : slabdata      3      3      0")
        #expect(lines[6] == "metafs_name-128        1     32    128   32    1 : tunables    0    0    0 : slabdata      1      1      0")
        #expect(lines[3] == "metafs_inode           0      0    152   26    1 : tunables    0    0    0 : slabdata      0      0      0")
    }

    @Test("long names overflow the name column as Linux's %-17s does")
    func longName() {
        let s = CacheStatistics(name: "a_cache_name_longer_than_17", activeObjects: 1234567, totalObjects: 2, objectSize: 3,
                                objectsPerSlab: 4, pagesPerSlab: 8, activeSlabs: 5, totalSlabs: 6)
        let text = MetaCache.slabinfo([s])
        #expect(text.split(separator: "\n")[2] == "a_cache_name_longer_than_17 1234567      2      3    4    8 : tunables    0    0    0 : slabdata      5      6      0")
    }

    @Test("statistics count objects, slabs and bytes")
    func statistics() {
        let cache = makeCache(slabOrder: 1)
        for k in 1...1000 { cache.inodes.insert(attributes(UInt64(k)), dirty: k % 10 == 0) }
        for k in 1...100 { _ = cache.inodes.pin(UInt64(k)) }
        let s = cache.statistics().first { $0.name == "metafs_inode" }!
        #expect(s.activeObjects == 1000)
        #expect(s.objectsPerSlab == 8192 / 152)
        #expect(s.pagesPerSlab == 2)
        #expect(s.totalSlabs == (1000 + s.objectsPerSlab - 1) / s.objectsPerSlab)
        #expect(s.totalObjects == s.totalSlabs * s.objectsPerSlab)
        #expect(s.slabBytes == s.totalSlabs * 8192)
        #expect(s.dirty == 100 && s.pinned == 100)
        #expect(s.allocations == 1000 && s.frees == 0)
        #expect(cache.memoryBytes >= cache.slabBytes)
    }
}
