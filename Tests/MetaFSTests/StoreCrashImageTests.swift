import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

extension StoreTests {
    /// Persisted-image model: a shadow of the store updated only by persist(). Every crash image
    /// (the shadow after each persist, and with only some pages of a persisted range landed) must
    /// recover to a consistent store whose tree is the state before or after the commit in progress.
    @Test func crashImagesRecoverConsistently() throws {
        let t = try TempStore(size: 4 << 20, inodes: 128)
        let size = 4 << 20
        let s = try t.open()
        final class Shadow: @unchecked Sendable {
            var image: [UInt8]
            var images: [(image: [UInt8], commit: Int)] = []
            var commit = 0
            var rng = SystemRandomNumberGenerator()
            init(_ i: [UInt8]) { image = i }
        }
        let shadow = Shadow(t.peek(offset: 0, count: size))
        let base = s.dataPointer(block: s.sb.dataStart) - Int(s.sb.dataStart) * 4096
        s.persistObserver = { off, len in
            let pages = (off / 4096)..<((off + len + 4095) / 4096)
            // A partial crash image: a random subset of this barrier's pages landed.
            if pages.count > 1 {
                var partial = shadow.image
                for p in pages where Bool.random(using: &shadow.rng) {
                    partial.withUnsafeMutableBytes { ($0.baseAddress! + p * 4096).copyMemory(from: base + p * 4096, byteCount: 4096) }
                }
                shadow.images.append((partial, shadow.commit))
            }
            shadow.image.withUnsafeMutableBytes { ($0.baseAddress! + off).copyMemory(from: base + off, byteCount: len) }
            shadow.images.append((shadow.image, shadow.commit))
        }
        // The tree (name → ino, type) under the root after each commit.
        func tree() throws -> [String: UInt64] {
            var out: [String: UInt64] = [:]
            try s.readDirectory(1, after: 0) { name, ino, _, _ in out[String(decoding: name, as: UTF8.self)] = ino; return true }
            return out
        }
        var states: [[String: UInt64]] = [try tree()]
        func committed() throws { states.append(try tree()); shadow.commit += 1 }

        let a = try makeFile(s, "a"); try committed()
        let d = try makeDirectory(s, "d"); try committed()
        let r = try s.allocateBlocks(count: 8, goal: 0)
        var tx = s.beginTransaction()
        try tx.setExtents(a, mapping: [StoreExtent(logical: 0, length: 8, physical: r.start)])
        try tx.setXattrs(a, [(b("user.k"), b("v"))])
        try tx.addEntry(directory: d, name: b("hard"), ino: a, type: UInt8(DT_REG))
        var ai = try #require(try s.readInode(a)); ai.nlink = 2
        try tx.writeInode(a, ai)
        try tx.commit(); try committed()
        // rename "a" → "b"
        tx = s.beginTransaction()
        try tx.removeEntry(directory: 1, name: b("a"))
        try tx.addEntry(directory: 1, name: b("b"), ino: a, type: UInt8(DT_REG))
        try tx.commit(); try committed()
        for i in 0..<20 { try makeFile(s, "f\(i)"); try committed() }   // many small commits
        // unlink "b" and the hard link while "open": orphan; then release frees it.
        tx = s.beginTransaction()
        try tx.removeEntry(directory: 1, name: b("b"))
        try tx.removeEntry(directory: d, name: b("hard"))
        ai = try #require(try s.readInode(a)); ai.nlink = 0
        try tx.writeInode(a, ai)
        try tx.addOrphan(a)
        try tx.commit(); try committed()
        tx = s.beginTransaction()
        try tx.freeInode(a)
        try tx.commit(); try committed()
        s.persistObserver = nil
        try s.close()

        #expect(shadow.images.count > 50)
        var checked = 0
        for (image, commit) in shadow.images {
            // A file per image: a shell spawned by a test running in parallel can hold the last
            // image's descriptor (and its flock) for a moment between its fork and its exec.
            let imagePath = t.dir + "/crash-\(checked).store"
            defer { unlink(imagePath) }
            let fd = Glibc.open(imagePath, O_RDWR | O_CREAT | O_TRUNC, 0o600)
            _ = image.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            Glibc.close(fd)
            do {
                let c = try Store.open(path: imagePath)
                let findings = c.check()
                #expect(findings == [], "image \(checked) (commit \(commit)): \(findings)")
                var names: [String: UInt64] = [:]
                try c.readDirectory(1, after: 0) { name, ino, _, _ in names[String(decoding: name, as: UTF8.self)] = ino; return true }
                // Commits before `commit` are durable; the one in progress may or may not be.
                let allowed = [states[min(commit, states.count - 1)], states[min(commit + 1, states.count - 1)]]
                #expect(allowed.contains(names), "image \(checked) (commit \(commit)): \(names.keys.sorted())")
                try c.close()
            } catch {
                Issue.record("image \(checked) (commit \(commit)) refused: \(msg(error))")
            }
            checked += 1
        }
    }
}
