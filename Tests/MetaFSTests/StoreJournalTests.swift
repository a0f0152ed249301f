import Foundation
import Glibc
import MetaCache
import Synchronization
import Testing
@testable import MetaFS

extension StoreTests {
    /// The order of durability barriers in one commit: data, journal (descriptor + images), commit
    /// record, home locations, journal header.
    @Test func commitPersistOrder() throws {
        let t = try TempStore()
        let s = try t.open()
        let f = try makeFile(s, "f")
        let r = try s.allocateBlocks(count: 2, goal: 0)
        s.dataPointer(block: r.start).storeBytes(of: 0xABCD, as: UInt32.self)
        s.noteDataWritten(block: r.start, count: 2)
        final class Log: @unchecked Sendable { var ranges: [(Int, Int)] = [] }
        let log = Log()
        s.persistObserver = { off, len in log.ranges.append((off, len)) }
        let tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: 2, physical: r.start)])
        try tx.commit()
        s.persistObserver = nil
        let blocks = log.ranges.map { (UInt64($0.0 / 4096), ($0.0 + $0.1 + 4095) / 4096 - $0.0 / 4096) }
        let sb = s.sb
        let journal = sb.journalStart..<(sb.journalStart + sb.journalBlocks)
        #expect(blocks.count >= 5)
        #expect(blocks[0] == (r.start, 2))                          // data first
        #expect(blocks[1].0 == sb.journalStart + 1)                  // descriptor and images
        #expect(journal.contains(blocks[2].0) && blocks[2].1 == 1)   // commit record
        for home in blocks[3..<(blocks.count - 1)] { #expect(!journal.contains(home.0)) }   // checkpoint
        #expect(blocks.last! == (sb.journalStart, 1))                // journal marked empty
        // An empty transaction still persists noted data (fsync of data only).
        s.noteDataWritten(block: r.start, count: 1)
        let before = s.usage.persists
        try s.beginTransaction().commit()
        #expect(s.usage.persists == before + 1)
        try s.close()
    }

    @Test func oversizedTransactionFailsCleanly() throws {
        let t = try TempStore(size: 8 << 20, inodes: 1024)
        let s = try t.open()
        #expect(s.maxTransactionBlocks > 200 && s.maxTransactionBlocks < 256)
        var inos: [UInt64] = []
        for _ in 0..<400 { inos.append(try s.allocateInode().ino) }
        var tx = s.beginTransaction()
        var done = 0
        var hitLimit = false
        for ino in inos {
            do {
                try tx.writeInode(ino, DiskInode(mode: 0o100644, nlink: 1, uid: 0, gid: 0, generation: 1))
                try tx.addEntry(directory: 1, name: b("n\(ino)"), ino: ino, type: UInt8(DT_REG))
                try tx.setXattrs(ino, [(b("user.x"), b("y"))])
                done += 1
            } catch {
                #expect(code(error) == ENOSPC && msg(error).contains("journal"))
                hitLimit = true
                break
            }
        }
        #expect(hitLimit)
        #expect(tx.blockCount <= s.maxTransactionBlocks)
        // The failed call left nothing half done; what is there commits and is consistent...
        try tx.commit()
        // ...except the last inode, written and entered but without its xattr: finish it.
        let last = inos[done]
        if try s.readInode(last) != nil {
            tx = s.beginTransaction()
            try tx.setXattrs(last, [(b("user.x"), b("y"))])
            try tx.commit()
            done += 1
        }
        for ino in inos[done...] { s.releaseUncommittedInode(ino) }
        #expect(try s.entryCount(1) == UInt64(done))
        #expect(s.check() == [])
        try s.close()
        let s2 = try t.open()
        #expect(s2.check() == [])
        try s2.close()
    }

    @Test func directoryFreedWithItsBlocks() throws {
        let t = try TempStore()
        let s = try t.open()
        let free0 = s.usage.freeBlocks
        let d = try makeDirectory(s, "d")
        let f = try makeFile(s, in: d, "x")
        var tx = s.beginTransaction()
        for i in 0..<600 { try tx.addEntry(directory: d, name: b("link-\(i)-" + String(repeating: "z", count: 40)), ino: f, type: UInt8(DT_REG)) }
        var inode = try #require(try s.readInode(f))
        inode.nlink = 601
        try tx.writeInode(f, inode)
        try tx.commit()
        #expect(s.usage.freeBlocks < free0 - 5)   // leaves and an index
        #expect(s.check() == [])
        // rm -r: remove every entry, free the file and the directory.
        var names: [[UInt8]] = []
        try s.readDirectory(d, after: 0) { name, _, _, _ in names.append(Array(name)); return true }
        #expect(names.count == 601)
        tx = s.beginTransaction()
        for n in names { try tx.removeEntry(directory: d, name: n) }
        try tx.freeInode(f)
        try tx.removeEntry(directory: 1, name: b("d"))
        try tx.freeInode(d)
        var root = try #require(try s.readInode(1))
        root.nlink -= 1
        try tx.writeInode(1, root)
        try tx.commit()
        #expect(s.usage.freeBlocks == free0 - 1)   // the root keeps its (first) leaf
        #expect(try s.readInode(d) == nil && s.readInode(f) == nil)
        #expect(s.check() == [])
        try s.close()
    }
}
