import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

extension StoreTests {
    @Test func extentsInlineAndOverflow() throws {
        let t = try TempStore(size: 32 << 20)
        let s = try t.open()
        let f = try makeFile(s, "f")
        let r = try s.allocateBlocks(count: 64, goal: 0)
        #expect(r.count == 64)
        let map = [StoreExtent(logical: 0, length: 4, physical: r.start),
                   StoreExtent(logical: 10, length: 2, physical: r.start + 4, unwritten: true),
                   StoreExtent(logical: 100, length: 8, physical: r.start + 8)]
        var tx = s.beginTransaction()
        try tx.setExtents(f, mapping: map)
        try tx.commit()
        #expect(try s.readExtents(f) == map)
        #expect(try s.extent(f, covering: 0) == map[0])
        #expect(try s.extent(f, covering: 3) == map[0])
        #expect(try s.extent(f, covering: 4) == nil)
        #expect(try s.extent(f, covering: 11) == map[1])
        #expect(try s.extent(f, covering: 108) == nil)
        #expect(try s.nextExtent(f, from: 4) == map[1])
        #expect(try s.nextExtent(f, from: 2) == map[0])
        #expect(try s.nextExtent(f, from: 12) == map[2])
        #expect(try s.nextExtent(f, from: 108) == nil)
        // The unused reservation goes back.
        s.releaseUncommittedBlocks(start: r.start + 16, count: 48)
        // Overflow: 500 one-block extents at every other logical block.
        let big = try s.allocateBlocks(count: 500, goal: 0)
        #expect(big.count == 500)
        let many = (0..<500).map { StoreExtent(logical: UInt64($0) * 2, length: 1, physical: big.start + UInt64($0)) }
        tx = s.beginTransaction()
        try tx.setExtents(f, mapping: many)   // map[...] blocks are freed by the replacement
        try tx.commit()
        #expect(try s.readExtents(f) == many)
        #expect(try s.extent(f, covering: 998) == many[499])
        #expect(try s.extent(f, covering: 997) == nil)
        #expect(try s.nextExtent(f, from: 501) == many[251])
        #expect(s.check() == [])
        try s.close()
        let s2 = try t.open()
        #expect(try s2.readExtents(f) == many)
        let freeBefore = s2.usage.freeBlocks
        tx = s2.beginTransaction()
        try tx.setExtents(f, mapping: Array(many.prefix(2)))
        try tx.commit()
        // 498 data blocks and the overflow blocks (3) are free again.
        #expect(s2.usage.freeBlocks == freeBefore + 498 + 3)
        #expect(try s2.readExtents(f) == Array(many.prefix(2)))
        #expect(s2.check() == [])
        // Bad maps are refused.
        tx = s2.beginTransaction()
        #expect(throws: StoreError.self) { try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: 1, physical: 0)]) }
        #expect(throws: StoreError.self) { try tx.setExtents(f, mapping: [StoreExtent(logical: 5, length: 1, physical: big.start + 100), StoreExtent(logical: 0, length: 1, physical: big.start + 101)]) }
        #expect(throws: StoreError.self) { try tx.setExtents(1, mapping: []) }   // a directory
        tx.abort()
        #expect(s2.check() == [])
        try s2.close()
    }

    @Test func dataWrittenPersistedReopened() throws {
        let t = try TempStore()
        let s = try t.open()
        let f = try makeFile(s, "data")
        let r = try s.allocateBlocks(count: 3, goal: 0)
        for i in 0..<r.count {
            let p = s.dataPointer(block: r.start + UInt64(i))
            for k in 0..<4096 { p.storeBytes(of: UInt8(truncatingIfNeeded: k &* 7 &+ i), toByteOffset: k, as: UInt8.self) }
        }
        s.noteDataWritten(block: r.start, count: r.count)
        let persistsBefore = s.usage.persists
        let tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: UInt32(r.count), physical: r.start)])
        var inode = try #require(try s.readInode(f))
        inode.size = UInt64(r.count * 4096); inode.blocks = UInt64(r.count * 8)
        try tx.writeInode(f, inode)
        try tx.commit()
        #expect(s.usage.persists > persistsBefore)
        #expect(s.usage.commits >= 1)
        try s.close()
        let s2 = try t.open()
        let e = try #require(try s2.extent(f, covering: 2))
        let p = s2.dataPointer(block: e.physical + 2)
        var ok = true
        for k in 0..<4096 where p.load(fromByteOffset: k, as: UInt8.self) != UInt8(truncatingIfNeeded: k &* 7 &+ 2) { ok = false }
        #expect(ok)
        #expect(try s2.readInode(f)?.size == 3 * 4096)
        try s2.close()
    }

    @Test func xattrsAndSymlinks() throws {
        let t = try TempStore()
        let s = try t.open()
        let f = try makeFile(s, "f")
        var tx = s.beginTransaction()
        let xs: [(name: [UInt8], value: [UInt8])] = [(b("user.a"), b("1")), (b("user.empty"), []), (b("security.selinux"), Array(repeating: 0xAB, count: 1000))]
        try tx.setXattrs(f, xs)
        try tx.commit()
        var got = try s.readXattrs(f)
        #expect(got.map(\.name) == xs.map(\.name))
        #expect(got.map(\.value) == xs.map(\.value))
        tx = s.beginTransaction()
        do {
            try tx.setXattrs(f, [(b("user.big"), Array(repeating: 1, count: 5000))])
            Issue.record("oversized xattrs accepted")
        } catch { #expect(code(error) == ENOSPC) }
        try tx.setXattrs(f, [(b("user.a"), b("2"))])
        try tx.commit()
        got = try s.readXattrs(f)
        #expect(got.count == 1 && got[0].value == b("2"))
        tx = s.beginTransaction()
        try tx.setXattrs(f, [])
        try tx.commit()
        #expect(try s.readXattrs(f).isEmpty)
        // Symlinks, short (inline) and long (a block).
        let short = try makeFile(s, "short", mode: 0o120777)
        let long = try makeFile(s, "long", mode: 0o120777)
        let longTarget = Array(repeating: UInt8(ascii: "d"), count: 4000) + b("/end")
        tx = s.beginTransaction()
        try tx.setSymlink(short, target: b("../target"))
        try tx.setSymlink(long, target: longTarget)
        #expect(throws: StoreError.self) { try tx.setSymlink(f, target: b("x")) }   // not a symlink
        #expect(throws: StoreError.self) { try tx.setSymlink(long, target: Array(repeating: 1, count: 4096)) }
        try tx.commit()
        #expect(try s.readSymlink(short) == b("../target"))
        #expect(try s.readSymlink(long) == longTarget)
        #expect(s.check() == [])
        try s.close()
        let s2 = try t.open()
        #expect(try s2.readSymlink(long) == longTarget)
        // Long → short frees the block.
        let free = s2.usage.freeBlocks
        tx = s2.beginTransaction()
        try tx.setSymlink(long, target: b("short-now"))
        try tx.commit()
        #expect(s2.usage.freeBlocks == free + 1)
        #expect(try s2.readSymlink(long) == b("short-now"))
        #expect(s2.check() == [])
        try s2.close()
    }

    @Test func allocatorNeverDoubleAllocatesAndFreesAfterCommit() throws {
        let t = try TempStore(size: 4 << 20, inodes: 64)
        let s = try t.open()
        let f = try makeFile(s, "f")
        let initialFree = s.usage.freeBlocks   // the root directory's leaf is in use
        // Take every block.
        var got: [(UInt64, Int)] = []
        var seen = Set<UInt64>()
        while true {
            do {
                let r = try s.allocateBlocks(count: 37, goal: 0)
                got.append((r.start, r.count))
                for b in r.start..<r.start + UInt64(r.count) { #expect(seen.insert(b).inserted) }
            } catch {
                #expect(code(error) == ENOSPC)
                break
            }
        }
        let reserve = s.metadataReserveBlocks   // kept for metadata: data never takes it
        #expect(UInt64(seen.count) == initialFree - reserve)
        #expect(s.usage.freeBlocks == reserve)
        // Map the first run into the file, give the rest back.
        let (first, n) = got[0]
        var tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: UInt32(n), physical: first)])
        try tx.commit()
        for (start, count) in got.dropFirst() { s.releaseUncommittedBlocks(start: start, count: count) }
        s.releaseUncommittedBlocks(start: first, count: n)   // recorded: harmless, nothing released
        let free = s.usage.freeBlocks
        #expect(free == initialFree - UInt64(n))
        // Fill again, then free the file's blocks: they must not come back before the commit.
        var rest: [(UInt64, Int)] = []
        while let r = try? s.allocateBlocks(count: 64, goal: 0) { rest.append((r.start, r.count)) }
        #expect(s.usage.freeBlocks == reserve)
        tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [])
        #expect(throws: StoreError.self) { try s.allocateBlocks(count: 1, goal: 0) }
        try tx.commit()
        #expect(s.usage.freeBlocks == reserve + UInt64(n))
        let again = try s.allocateBlocks(count: n, goal: first)
        #expect(again.start == first && again.count == n)
        for (start, count) in rest { s.releaseUncommittedBlocks(start: start, count: count) }
        s.releaseUncommittedBlocks(start: again.start, count: again.count)
        #expect(s.usage.freeBlocks == initialFree)
        #expect(s.check() == [])
        try s.close()
    }

    @Test func inodeENOSPCAndGenerationOnReuse() throws {
        let t = try TempStore(size: 4 << 20, inodes: 32)
        let s = try t.open()
        var inos: [UInt64] = []
        while true {
            do { inos.append(try s.allocateInode().ino) } catch {
                #expect(code(error) == ENOSPC)
                break
            }
        }
        #expect(inos.count == 30)   // 32 slots less 0 and the root
        #expect(Set(inos).count == inos.count)
        for ino in inos.dropFirst() { s.releaseUncommittedInode(ino) }
        let ino = inos[0]
        var tx = s.beginTransaction()
        try tx.writeInode(ino, DiskInode(mode: 0o100644, nlink: 1, uid: 0, gid: 0, generation: 5))
        try tx.addEntry(directory: 1, name: b("x"), ino: ino, type: UInt8(DT_REG))
        try tx.commit()
        let others = (0..<29).compactMap { _ in try? s.allocateInode().ino }
        #expect(others.count == 29 && !others.contains(ino))
        #expect(throws: StoreError.self) { try s.allocateInode() }
        tx = s.beginTransaction()
        try tx.removeEntry(directory: 1, name: b("x"))
        try tx.freeInode(ino)
        #expect(throws: StoreError.self) { try s.allocateInode() }   // not before the commit
        try tx.commit()
        let reused = try s.allocateInode()
        #expect(reused.ino == ino && reused.generation == 6)
        for o in others { s.releaseUncommittedInode(o) }
        s.releaseUncommittedInode(reused.ino)
        #expect(s.usage.freeInodes == 30)
        #expect(s.check() == [])
        try s.close()
    }
}
