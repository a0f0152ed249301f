import Testing
import Foundation
@testable import MetaCache

@Suite("Slab memory and the OS")
struct SlabMemoryTests {
    // Run in a child process so that other tests' allocations do not disturb the RSS figures.
    @Test("RSS grows with the slabs and drops when they are handed back")
    func rssFollowsSlabs() async {
        await #expect(processExitsWith: .success) {
            var c = CacheConfiguration()
            c.reserveBytesPerCache = 1 << 30
            let cache = MetaCache(configuration: c)
            let base = ProcessMemory.residentBytes()
            for k in 0..<200_000 {
                cache.inodes.insert(InodeAttributes(ino: UInt64(k + 1), mode: 0o100644, nlink: 1, uid: 0, gid: 0), dirty: false)
            }
            let grown = ProcessMemory.residentBytes()
            let slabBytes = cache.slabBytes
            let reported = cache.memoryBytes
            // 200,000 inodes at 26 a page: ~30 MiB of slabs.
            guard slabBytes > 29 << 20, grown - base > Int(Double(slabBytes) * 0.9),
                  Double(grown - base) < Double(reported) * 1.15 + Double(2 << 20) else {
                print("RSS grew \(grown - base), slabs \(slabBytes), reported \(reported)")
                exit(1)
            }
            let (_, pages) = cache.dropCaches()
            let dropped = ProcessMemory.residentBytes()
            guard pages * 4096 == slabBytes, grown - dropped > Int(Double(slabBytes) * 0.9) else {
                print("RSS after drop \(dropped), before \(grown), pages \(pages)")
                exit(2)
            }
            exit(0)
        }
    }

    @Test("freeing most objects of a slab keeps it; freeing all returns it")
    func residentSlabAccounting() {
        let slab = SlabCache(name: "t", objectSize: 256, pageSize: 4096, slabOrder: 2, reserveBytes: 1 << 24)
        var hs: [UInt32] = []
        for _ in 0..<(slab.objectsPerSlab * 4) { hs.append(slab.allocate()!) }
        #expect(slab.memoryBytes >= 4 * 16384)
        for h in hs where slab.slabIndex(h) != 2 { slab.free(h) }
        // Slab 2 still full; of the three emptied, one is kept resident.
        #expect(slab.figures.residentSlabs == 2)
        #expect(slab.figures.slabsReleased == 2)
        #expect(slab.snapshot(slab: 2).live == slab.objectsPerSlab)
        #expect(slab.snapshot(slab: 0).resident == false || slab.snapshot(slab: 1).resident == false)
        #expect(slab.checkInvariants() == [])
    }
}
