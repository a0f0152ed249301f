import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

extension StoreTests {
    /// A transaction that creates "crashfile" with an extent and an xattr, stopped at `point`.
    private func crashingCommit(_ t: TempStore, at point: StoreCrashPoint) throws -> (ino: UInt64, blocks: (start: UInt64, count: Int)) {
        let s = try t.open()
        try makeFile(s, "before")
        let (ino, gen) = try s.allocateInode()
        let r = try s.allocateBlocks(count: 4, goal: 0)
        let tx = s.beginTransaction()
        try tx.writeInode(ino, DiskInode(mode: 0o100600, nlink: 1, uid: 3, gid: 4, size: 16384, generation: gen))
        try tx.addEntry(directory: 1, name: b("crashfile"), ino: ino, type: UInt8(DT_REG))
        try tx.setExtents(ino, mapping: [StoreExtent(logical: 0, length: 4, physical: r.start)])
        try tx.setXattrs(ino, [(b("user.k"), b("v"))])
        s.crashPoint = point
        do {
            try tx.commit()
            Issue.record("commit did not stop at the crash point")
        } catch { #expect(msg(error).contains("simulated crash")) }
        s.simulateCrash()
        return (ino, (r.start, r.count))
    }

    @Test func journalReplayAfterCommitRecord() throws {
        let t = try TempStore()
        let (ino, r) = try crashingCommit(t, at: .afterCommitRecord)
        let s = try t.open()
        #expect(s.recovered)
        #expect(s.recoveryNotes.contains { $0.contains("replayed") })
        #expect(try lookup(s, 1, "crashfile")?.ino == ino)
        #expect(try s.readInode(ino)?.size == 16384)
        #expect(try s.readExtents(ino) == [StoreExtent(logical: 0, length: 4, physical: r.start)])
        #expect(try s.readXattrs(ino).first?.value == b("v"))
        #expect(s.check() == [])
        // The allocator was rebuilt from the replayed bitmap: those blocks are not handed out again.
        var taken = Set<UInt64>()
        while let x = try? s.allocateBlocks(count: 100, goal: 0) { for k in 0..<x.count { taken.insert(x.start + UInt64(k)) } }
        #expect(!taken.contains(r.start))
        try s.close()
        let s2 = try t.open()
        #expect(!s2.recovered)
        try s2.close()
    }

    @Test func journalReplayAfterCheckpoint() throws {
        let t = try TempStore()
        let (ino, _) = try crashingCommit(t, at: .afterCheckpoint)
        let s = try t.open()
        #expect(try lookup(s, 1, "crashfile")?.ino == ino)
        #expect(s.check() == [])
        try s.close()
    }

    @Test func tornTransactionIgnored() throws {
        let t = try TempStore()
        let (ino, _) = try crashingCommit(t, at: .beforeCommitRecord)
        let s = try t.open()
        #expect(s.recovered)   // not closed cleanly
        #expect(try lookup(s, 1, "crashfile") == nil)
        #expect(try lookup(s, 1, "before") != nil)
        #expect(try s.readInode(ino) == nil)
        #expect(s.check() == [])
        // The next transactions work and do not resurrect the torn one.
        try makeFile(s, "after")
        try s.close()
        let s2 = try t.open()
        #expect(try lookup(s2, 1, "after") != nil)
        #expect(try lookup(s2, 1, "crashfile") == nil)
        #expect(s2.check() == [])
        try s2.close()
    }

    @Test func damagedJournalRecordRefused() throws {
        let t = try TempStore()
        _ = try crashingCommit(t, at: .afterCommitRecord)
        // Flip a byte in the first block image (journal block 2: header, descriptor, images...).
        let off = 3 * 4096 + 100
        let old = t.peek(offset: off, count: 1)[0]
        t.poke(offset: off, [old ^ 0xFF])
        do {
            _ = try t.open()
            Issue.record("opened a store whose committed journal record is damaged")
        } catch { #expect(msg(error).contains("journal transaction") && msg(error).contains("checksum mismatch")) }
    }

    @Test func orphansFreedAtOpen() throws {
        let t = try TempStore()
        let s = try t.open()
        let f = try makeFile(s, "doomed")
        let kept = try makeFile(s, "kept")
        let r = try s.allocateBlocks(count: 8, goal: 0)
        var tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: 8, physical: r.start)])
        try tx.setXattrs(f, [(b("user.x"), b("y"))])
        try tx.commit()
        let free = s.usage.freeBlocks
        // unlink while open: nlink 0, on the orphan list; "kept" is on the list but still linked.
        tx = s.beginTransaction()
        try tx.removeEntry(directory: 1, name: b("doomed"))
        var inode = try #require(try s.readInode(f))
        inode.nlink = 0
        try tx.writeInode(f, inode)
        try tx.addOrphan(f)
        try tx.addOrphan(kept)
        try tx.commit()
        #expect(s.check() == [])
        s.simulateCrash()
        let s2 = try t.open()
        #expect(s2.recovered)
        #expect(try s2.readInode(f) == nil)
        #expect(try s2.readInode(kept) != nil)
        #expect(s2.usage.freeBlocks == free + 8 + 1)   // data and xattr blocks
        #expect(s2.check() == [])
        try s2.close()
    }

    @Test func damagedSuperblockRefusedWithReason() throws {
        func expectRefused(_ t: TempStore, _ text: String) {
            do {
                let s = try t.open()
                try? s.close()
                Issue.record("damaged store opened (expected \(text))")
            } catch { #expect(msg(error).contains(text), "\(msg(error))") }
        }
        let zeroed = try TempStore()
        zeroed.poke(offset: 0, [UInt8](repeating: 0, count: 4096))
        expectRefused(zeroed, "bad superblock magic")

        let flipped = try TempStore()
        let byte = flipped.peek(offset: 24, count: 1)[0]
        flipped.poke(offset: 24, [byte ^ 0x01])
        expectRefused(flipped, "superblock checksum mismatch")

        let truncated = try TempStore()
        #expect(truncate(truncated.path, 1 << 20) == 0)
        expectRefused(truncated, "store file is truncated: 1048576 bytes, the superblock says 16777216")

        let tiny = try TempStore()
        #expect(truncate(tiny.path, 100) == 0)
        expectRefused(tiny, "too small to hold a superblock")

        let empty = try TempStore()
        #expect(truncate(empty.path, 0) == 0)
        expectRefused(empty, "is empty")

        let other = try TempStore()
        other.poke(offset: 0, b("this is not a store at all"))
        expectRefused(other, "bad superblock magic")

        let journal = try TempStore()
        journal.poke(offset: 4096 + 8, [9])
        expectRefused(journal, "journal header checksum mismatch")

        do { _ = try Store.open(path: "/nonexistent/metafs.store"); Issue.record("opened a missing store") } catch {
            #expect(code(error) == ENOENT && msg(error).contains("does not exist"))
        }
        // A store can be open once.
        let busy = try TempStore()
        let s = try busy.open()
        expectRefused(busy, "in use")
        try s.close()
    }

    @Test func checkReportsInjectedInconsistencies() throws {
        let t = try TempStore()
        let s = try t.open()
        let f = try makeFile(s, "f")
        let r = try s.allocateBlocks(count: 2, goal: 0)
        var tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: 2, physical: r.start)])
        try tx.commit()
        #expect(s.check() == [])
        // Wrong link count, written through a transaction.
        tx = s.beginTransaction()
        var inode = try #require(try s.readInode(f))
        inode.nlink = 3
        try tx.writeInode(f, inode)
        try tx.commit()
        let findings = s.check()
        #expect(findings.contains { $0.contains("inode \(f) has link count 3, but 1 directory entries") })
        tx = s.beginTransaction()
        inode.nlink = 1
        try tx.writeInode(f, inode)
        try tx.commit()
        #expect(s.check() == [])
        try s.close()
        // Clear the bitmap bit of a block the file owns, behind the store's back: refused at open.
        let sbBytes = t.peek(offset: 0, count: 256)
        let bbStart = sbBytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 72, as: UInt64.self) }
        let off = Int(bbStart) * 4096 + Int(r.start / 8)
        let byte = t.peek(offset: off, count: 1)[0]
        t.poke(offset: off, [byte & ~(1 << UInt8(r.start % 8))])
        do { _ = try t.open(); Issue.record("opened a store with a damaged bitmap") } catch {
            #expect(msg(error) == "block bitmap block 0 checksum mismatch")
        }
        t.poke(offset: off, [byte])
        // The same through a (buggy) transaction: the checksums agree, check() finds it.
        let s2 = try t.open()
        tx = s2.beginTransaction()
        try tx.setBlockBit(r.start, false)
        try tx.setBlockBit(r.start + 5, true)
        try tx.commit()
        let f2 = s2.check()
        #expect(f2.contains { $0.contains("block \(r.start) is owned by inode \(f) but marked free") }, "\(f2)")
        #expect(f2.contains { $0.contains("block \(r.start + 5) is marked in use but no inode owns it") }, "\(f2)")
        tx = s2.beginTransaction()
        try tx.setBlockBit(r.start, true)
        try tx.setBlockBit(r.start + 5, false)
        try tx.commit()
        #expect(s2.check() == [])
        try s2.close()
        // Damage an inode's checksum.
        let itStart = sbBytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 88, as: UInt64.self) }
        let ioff = Int(itStart) * 4096 + Int(f) * 256 + 24
        t.poke(offset: ioff, [0x55])
        let s3 = try t.open()
        let f3 = s3.check()
        #expect(f3.contains { $0.contains("inode \(f) checksum mismatch") }, "\(f3)")
        #expect(throws: StoreError.self) { try s3.readInode(f) }
        try s3.close()
    }

    @Test func concurrentReadsDuringCommits() throws {
        let t = try TempStore(size: 32 << 20)
        let s = try t.open()
        let d = try makeDirectory(s, "d")
        for i in 0..<50 { try makeFile(s, in: d, "stable-\(i)") }
        let stop = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
        stop.initialize(to: false)
        defer { stop.deallocate() }
        let failures = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        failures.initialize(repeating: 0, count: 4)
        defer { failures.deallocate() }
        var threads: [pthread_t] = []
        final class Ctx { let s: Store; let d: UInt64; let stop: UnsafeMutablePointer<Bool>; let fail: UnsafeMutablePointer<Int>
            init(_ s: Store, _ d: UInt64, _ stop: UnsafeMutablePointer<Bool>, _ fail: UnsafeMutablePointer<Int>) { self.s = s; self.d = d; self.stop = stop; self.fail = fail } }
        for k in 0..<3 {
            let ctx = Unmanaged.passRetained(Ctx(s, d, stop, failures + k)).toOpaque()
            var th = pthread_t()
            pthread_create(&th, nil, { arg in
                let c = Unmanaged<Ctx>.fromOpaque(arg!).takeRetainedValue()
                var i = 0
                while !UnsafeMutablePointer<Bool>(c.stop).pointee {
                    let name = b("stable-\(i % 50)")
                    let r = try? name.withUnsafeBytes { try c.s.lookup(directory: c.d, name: $0) }
                    if r == nil || r! == nil { c.fail.pointee += 1 }
                    var n = 0
                    do { try c.s.readDirectory(c.d, after: 0) { _, _, _, _ in n += 1; return true } } catch { c.fail.pointee += 1 }
                    if n < 50 { c.fail.pointee += 1 }
                    i += 1
                }
                return nil
            }, ctx)
            threads.append(th)
        }
        for i in 0..<300 { try makeFile(s, in: d, "churn-\(i)") }
        let tx = s.beginTransaction()
        for i in 0..<300 { try tx.removeEntry(directory: d, name: b("churn-\(i)")) }
        try tx.commit()
        stop.pointee = true
        for th in threads { pthread_join(th, nil) }
        #expect(failures[0] + failures[1] + failures[2] == 0)
        try s.close()
    }

    @Test func failedOperationLeavesTransactionIntact() throws {
        let t = try TempStore(size: 4 << 20, inodes: 64)
        let s = try t.open()
        let f = try makeFile(s, "f")
        let tx = s.beginTransaction()
        try tx.addEntry(directory: 1, name: b("g"), ino: f, type: UInt8(DT_REG))
        let count = tx.blockCount
        #expect(throws: StoreError.self) { try tx.addEntry(directory: f, name: b("x"), ino: f, type: 8) }   // not a dir
        #expect(throws: StoreError.self) { try tx.setXattrs(f, [(b("user.a"), Array(repeating: 0, count: 9000))]) }
        #expect(tx.blockCount == count)
        var inode = try #require(try s.readInode(f))
        inode.nlink = 2
        try tx.writeInode(f, inode)
        try tx.commit()
        #expect(try lookup(s, 1, "g")?.ino == f)
        #expect(s.check() == [])
        // An aborted transaction leaves nothing behind and frees its metadata blocks.
        let free = s.usage.freeBlocks
        let d = try makeDirectory(s, "d")
        let tx2 = s.beginTransaction()
        try tx2.addEntry(directory: d, name: b("a"), ino: f, type: 8)   // allocates a leaf
        tx2.abort()
        #expect(try lookup(s, d, "a") == nil)
        #expect(s.usage.freeBlocks == free)
        #expect(s.check() == [])
        try s.close()
    }
}
