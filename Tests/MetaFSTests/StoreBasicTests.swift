import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

extension StoreTests {
    @Test func createOpenRoundTrip() throws {
        let t = try TempStore()
        var st = stat()
        #expect(stat(t.path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(st.st_size == 16 << 20)
        #expect(st.st_blocks * 512 >= 16 << 20)   // fully allocated, no holes
        let s = try t.open()
        let root = try #require(try s.readInode(1))
        #expect(root.mode == 0o040755)
        #expect(root.nlink == 2)
        #expect(root.uid == 1000 && root.gid == 100)
        #expect(try s.parent(of: 1) == 1)
        #expect(try s.readInode(2) == nil)
        let u = s.usage
        #expect(u.blockSize == 4096 && u.storeBytes == 16 << 20)
        #expect(u.totalInodes == 1023 && u.freeInodes == 1022)
        #expect(u.freeBlocks == u.dataBlocks)
        #expect(!s.recovered)
        #expect(s.check() == [])
        try s.close()
        let s2 = try t.open()
        #expect(!s2.recovered)
        #expect(try s2.readInode(1) == root)
        try s2.close()
    }

    @Test func inodeWriteRead() throws {
        let t = try TempStore()
        let s = try t.open()
        let (ino, gen) = try s.allocateInode()
        #expect(ino >= 2 && gen >= 1)
        let inode = DiskInode(mode: 0o100640, nlink: 1, uid: 7, gid: 8, rdev: 0, size: 12345, blocks: 24,
                              atime: Timespec(seconds: 1, nanoseconds: 2), mtime: Timespec(seconds: -3, nanoseconds: 999_999_999),
                              ctime: now(), generation: gen, flags: 0x10)
        let tx = s.beginTransaction()
        try tx.writeInode(ino, inode)
        try tx.addEntry(directory: 1, name: b("f"), ino: ino, type: UInt8(DT_REG))
        #expect(try s.readInode(ino) == nil)   // not committed yet
        try tx.commit()
        #expect(try s.readInode(ino) == inode)
        var changed = inode
        changed.size = 1; changed.mode = 0o100600
        let tx2 = s.beginTransaction()
        try tx2.writeInode(ino, changed)
        try tx2.commit()
        #expect(s.check() == [])
        try s.close()
        let s2 = try t.open()
        #expect(try s2.readInode(ino) == changed)
        #expect(try s2.readInode(0) == nil)
        #expect(try s2.readInode(1 << 40) == nil)
        try s2.close()
    }

    @Test func directoryBasics() throws {
        let t = try TempStore()
        let s = try t.open()
        let f = try makeFile(s, "hello")
        let d = try makeDirectory(s, "sub")
        let g = try makeFile(s, in: d, "inner", mode: 0o010644)   // a FIFO
        #expect(try lookup(s, 1, "hello")! == (f, UInt8(DT_REG)))
        #expect(try lookup(s, 1, "sub")! == (d, UInt8(DT_DIR)))
        #expect(try lookup(s, d, "inner")! == (g, UInt8(DT_FIFO)))
        #expect(try lookup(s, 1, "nope") == nil)
        #expect(try s.parent(of: d) == 1)
        #expect(try s.readInode(1)!.nlink == 3)
        #expect(Set(try listDirectory(s, 1).map(\.name)) == ["hello", "sub"])
        #expect(try listDirectory(s, d).map(\.name) == ["inner"])
        #expect(throws: StoreError.self) { try lookup(s, f, "x") }   // not a directory
        // Replace and remove.
        let tx = s.beginTransaction()
        try tx.addEntry(directory: 1, name: b("hello"), ino: g, type: UInt8(DT_FIFO))
        try tx.addEntry(directory: 1, name: b("hello2"), ino: f, type: UInt8(DT_REG))
        try tx.removeEntry(directory: d, name: b("inner"))
        #expect(throws: StoreError.self) { try tx.removeEntry(directory: d, name: b("inner")) }
        try tx.commit()
        #expect(try lookup(s, 1, "hello")!.ino == g)
        #expect(try lookup(s, 1, "hello2")!.ino == f)
        #expect(try s.isEmptyDirectory(d))
        #expect(try s.entryCount(1) == 3)
        #expect(s.check() == [])
        // Names: 255 bytes pass, 256 fail with ENAMETOOLONG; '/' and NUL refused; any other bytes kept exactly.
        let long = String(repeating: "x", count: 255)
        try makeFile(s, long)
        #expect(try lookup(s, 1, long) != nil)
        let tx2 = s.beginTransaction()
        do {
            try tx2.addEntry(directory: 1, name: Array(repeating: 0x61, count: 256), ino: f, type: UInt8(DT_REG))
            Issue.record("256-byte name accepted")
        } catch { #expect(code(error) == ENAMETOOLONG) }
        #expect(throws: StoreError.self) { try tx2.addEntry(directory: 1, name: b("a/b"), ino: f, type: 8) }
        #expect(throws: StoreError.self) { try tx2.addEntry(directory: 1, name: [0x61, 0], ino: f, type: 8) }
        let odd: [UInt8] = [0xff, 0xfe, 0x01, 0x20, 0x0a]
        try tx2.addEntry(directory: 1, name: odd, ino: f, type: UInt8(DT_REG))
        var parent = try s.readInode(1)!
        _ = parent
        try tx2.commit()
        #expect(try odd.withUnsafeBytes { try s.lookup(directory: 1, name: $0) }!.ino == f)
        var found = false
        try s.readDirectory(1, after: 0) { name, _, _, _ in
            if Array(name) == odd { found = true }
            return true
        }
        #expect(found)
        parent = try s.readInode(1)!
        try s.close()
    }

    @Test func manyEntriesAndStableCookies() throws {
        let t = try TempStore(size: 64 << 20)
        let s = try t.open()
        let d = try makeDirectory(s, "big")
        let (ino, gen) = try s.allocateInode()
        var tx = s.beginTransaction()
        try tx.writeInode(ino, DiskInode(mode: 0o100644, nlink: 0, uid: 0, gid: 0, generation: gen))
        try tx.addOrphan(ino)
        try tx.commit()
        // Many entries (hard links to one inode keep the test fast), long and short names.
        var names: [String] = []
        tx = s.beginTransaction()
        for i in 0..<4000 {
            let name = i % 10 == 0 ? String(repeating: "L\(i)-", count: 60).prefix(255).description : "file-\(i)"
            names.append(name)
            try tx.addEntry(directory: d, name: b(name), ino: ino, type: UInt8(DT_REG))
            if tx.blockCount > 200 { try tx.commit(); tx = s.beginTransaction() }
        }
        var inode = try #require(try s.readInode(ino))
        inode.nlink = 4000
        try tx.writeInode(ino, inode)
        try tx.removeOrphan(ino)
        try tx.commit()
        #expect(try s.entryCount(d) == 4000)
        for name in names { #expect(try lookup(s, d, name)?.ino == ino) }
        #expect(try lookup(s, d, "file-4000") == nil)
        let all = try listDirectory(s, d)
        #expect(all.count == 4000)
        #expect(Set(all.map(\.name)) == Set(names))
        #expect(Set(all.map(\.cookie)).count == 4000)
        #expect(all.allSatisfy { $0.cookie >= 16 })
        // Read part, change the directory (insert, remove: splits happen), resume from the cookie.
        let first = try listDirectory(s, d, limit: 1500)
        let firstNames = Set(first.map(\.name))
        var removed = Set<String>()
        tx = s.beginTransaction()
        for i in stride(from: 1, to: 4000, by: 7) {
            try tx.removeEntry(directory: d, name: b(names[i])); removed.insert(names[i])
            if tx.blockCount > 200 { try tx.commit(); tx = s.beginTransaction() }
        }
        for i in 0..<3000 {
            try tx.addEntry(directory: d, name: b("new-\(i)"), ino: ino, type: UInt8(DT_REG))
            if tx.blockCount > 200 { try tx.commit(); tx = s.beginTransaction() }
        }
        inode = try #require(try s.readInode(ino))
        inode.nlink = UInt32(4000 - removed.count + 3000)
        try tx.writeInode(ino, inode)
        try tx.commit()
        let rest = try listDirectory(s, d, after: first.last!.cookie)
        let restNames = rest.map(\.name)
        #expect(Set(restNames).count == restNames.count)           // no duplicates
        #expect(firstNames.isDisjoint(with: restNames))            // nothing seen twice
        // Every name present throughout is seen exactly once.
        let stable = Set(names).subtracting(removed)
        #expect(stable.isSubset(of: firstNames.union(restNames)))
        #expect(Set(restNames).isDisjoint(with: removed))
        #expect(s.check() == [])
        try s.close()
        let s2 = try t.open()
        #expect(try s2.entryCount(d) == UInt64(4000 - removed.count + 3000))
        #expect(try lookup(s2, d, "new-2999")?.ino == ino)
        #expect(s2.check() == [])
        try s2.close()
    }
}
