import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

extension StoreTests {
    /// Build a small populated store: directories, files with extents (some overflowing), xattrs,
    /// symlinks; returns it closed.
    private func populated() throws -> TempStore {
        let t = try TempStore(size: 4 << 20, inodes: 256)
        let s = try t.open()
        let d = try makeDirectory(s, "dir")
        for i in 0..<150 { try makeFile(s, in: d, "entry-with-a-longish-name-\(i)") }
        let f = try makeFile(s, "file")
        let r = try s.allocateBlocks(count: 20, goal: 0)
        let tx = s.beginTransaction()
        try tx.setExtents(f, mapping: (0..<10).map { StoreExtent(logical: UInt64($0) * 3, length: 2, physical: r.start + UInt64($0) * 2) })
        try tx.setXattrs(f, [(b("user.a"), b("value"))])
        try tx.commit()
        let l = try makeFile(s, "link", mode: 0o120777)
        let tx2 = s.beginTransaction()
        try tx2.setSymlink(l, target: Array(repeating: 0x41, count: 300))
        try tx2.commit()
        #expect(s.check() == [])
        try s.close()
        return t
    }

    /// Walk everything the store holds, as a mount and fsck would; errors are fine, traps are not.
    private func exercise(_ s: Store) {
        _ = s.check()
        var queue: [UInt64] = [1]
        var seen = Set<UInt64>()
        while let d = queue.popLast(), seen.insert(d).inserted, seen.count < 1000 {
            var children: [(UInt64, UInt8)] = []
            try? s.readDirectory(d, after: 0) { name, ino, type, _ in
                _ = try? s.lookup(directory: d, name: name)
                children.append((ino, type))
                return children.count < 1000
            }
            for (ino, type) in children {
                _ = try? s.readInode(ino)
                _ = try? s.readExtents(ino)
                _ = try? s.extent(ino, covering: 5)
                _ = try? s.nextExtent(ino, from: 1)
                _ = try? s.readXattrs(ino)
                _ = try? s.readSymlink(ino)
                if type == UInt8(DT_DIR) { queue.append(ino) }
            }
        }
        // A transaction over damaged metadata must fail cleanly too.
        let tx = s.beginTransaction()
        try? tx.addEntry(directory: 1, name: b("new"), ino: 1, type: UInt8(DT_DIR))
        try? tx.removeEntry(directory: 1, name: b("file"))
        try? tx.freeInode(2)
        tx.abort()
    }

    @Test func randomMetadataDamageNeverCrashes() throws {
        let t = try populated()
        let pristine = t.peek(offset: 0, count: 4 << 20)
        let sb = pristine.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 104, as: UInt64.self) }   // data start
        // Damage lands in metadata: the superblock, journal header, bitmaps, inode table, and the
        // metadata blocks at the start of the data area.
        let metaEnd = Int(sb + 64) * 4096
        let ibStart = Int(pristine.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 56, as: UInt64.self) })
        var rng = SystemRandomNumberGenerator()
        var refused = 0, opened = 0
        let rounds = Int(ProcessInfo.processInfo.environment["METAFS_DAMAGE_ROUNDS"] ?? "") ?? 60
        for _ in 0..<rounds {
            var image = pristine
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let region = Int.random(in: 0..<4, using: &rng)
                let off: Int
                switch region {
                case 0: off = Bool.random(using: &rng) ? Int.random(in: 0..<256, using: &rng)         // superblock
                                                       : 4096 + Int.random(in: 0..<64, using: &rng)  // journal header
                case 1: off = Int.random(in: ibStart * 4096..<Int(sb) * 4096, using: &rng)          // bitmaps, inode table
                default: off = Int.random(in: Int(sb) * 4096..<metaEnd, using: &rng)                 // data-area metadata
                }
                image[off] ^= UInt8.random(in: 1...255, using: &rng)
            }
            t.poke(offset: 0, image)
            do {
                let s = try t.open()
                opened += 1
                exercise(s)
                try? s.close()
            } catch {
                #expect(!msg(error).isEmpty)
                refused += 1
            }
        }
        #expect(opened + refused == rounds)
    }
}
