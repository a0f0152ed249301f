import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

/// The file-system layer driven directly (no mount): POSIX results, the caches on the way, and
/// what reaches the store across a shutdown and reopen.
@Suite struct FileSystemTests {
    /// A fresh store in a temporary directory with a FileSystem on it; `reopen` shuts down and
    /// opens the store again with empty caches.
    final class Fixture {
        let directory: URL
        let storePath: String
        var fs: FileSystem
        let caller = Caller(uid: 0, gid: 0, pid: 1)

        init(size: UInt64 = 64 << 20) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("metafs-fs-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            storePath = directory.appendingPathComponent("test.store").path
            try Store.create(path: storePath, size: size, rootUID: 0, rootGID: 0)
            fs = try Self.open(storePath)
        }

        static func open(_ path: String) throws -> FileSystem {
            var options = FileSystemOptions()
            options.flushInterval = 0
            return try FileSystem(storePath: path, cache: MetaCache(), options: options)
        }

        func reopen() throws {
            fs.shutdown()
            fs = try Self.open(storePath)
        }

        deinit {
            fs.shutdown()
            try? FileManager.default.removeItem(at: directory)
        }

        func mkdir(_ parent: UInt64, _ name: String) throws -> UInt64 {
            try name.withBytes { n throws(FSError) in try fs.mkdir(parent: parent, name: n, mode: 0o755, caller: caller).ino }
        }

        func create(_ parent: UInt64, _ name: String) throws -> (ino: UInt64, fh: UInt64) {
            let (attributes, fh) = try name.withBytes { n throws(FSError) in
                try fs.create(parent: parent, name: n, mode: 0o644, flags: O_RDWR, caller: caller)
            }
            return (attributes.ino, fh)
        }

        func lookup(_ parent: UInt64, _ name: String) throws(FSError) -> InodeAttributes {
            try name.withBytes { n throws(FSError) in try fs.lookup(parent: parent, name: n) }
        }

        /// The errno a call fails with (0 when it succeeds).
        func errno(_ body: () throws -> Void) -> Int32 {
            do {
                try body()
                return 0
            } catch let error as FSError {
                return error.code
            } catch {
                return -1
            }
        }

        func write(_ ino: UInt64, _ fh: UInt64, at offset: UInt64, _ bytes: [UInt8]) throws {
            let n = try bytes.withUnsafeBytes { b throws(FSError) in try fs.write(ino, fh: fh, offset: offset, from: b) }
            #expect(n == bytes.count)
        }

        func read(_ ino: UInt64, _ fh: UInt64, at offset: UInt64, count: Int) throws -> [UInt8] {
            var buffer = [UInt8](repeating: 0xAA, count: count)
            let n = try buffer.withUnsafeMutableBytes { b throws(FSError) in try fs.read(ino, fh: fh, offset: offset, into: b) }
            return Array(buffer[0..<n])
        }

        func names(_ ino: UInt64) throws -> [String] {
            var names: [String] = []
            try fs.readdir(ino, fh: 0, offset: 0, plus: false) { name, _, _ in
                names.append(String(decoding: name, as: UTF8.self))
                return true
            }
            return names
        }
    }

    @Test func createLookupAndPersistAcrossReopen() throws {
        let f = try Fixture()
        let dir = try f.mkdir(1, "dir")
        let (file, fh) = try f.create(dir, "file")
        try f.write(file, fh, at: 0, Array("hello metafs".utf8))
        f.fs.release(file, fh: fh)
        #expect(try f.lookup(dir, "file").size == 12)
        #expect(f.errno { _ = try f.lookup(dir, "missing") } == ENOENT)
        try f.reopen()
        let again = try f.lookup(1, "dir")
        #expect(again.isDirectory && again.nlink == 2)
        let attributes = try f.lookup(again.ino, "file")
        #expect(attributes.size == 12 && attributes.nlink == 1)
        let fh2 = try f.fs.open(attributes.ino, flags: O_RDONLY)
        #expect(try f.read(attributes.ino, fh2, at: 0, count: 100) == Array("hello metafs".utf8))
        f.fs.release(attributes.ino, fh: fh2)
    }

    @Test func errorsAsLinuxGivesThem() throws {
        let f = try Fixture()
        let dir = try f.mkdir(1, "d")
        let (file, fh) = try f.create(dir, "f")
        f.fs.release(file, fh: fh)
        #expect(f.errno { _ = try f.mkdir(dir, "f") } == EEXIST)
        #expect(f.errno { _ = try f.create(file, "x") } == ENOTDIR)
        #expect(f.errno { try "d".withBytes { n throws(FSError) in try f.fs.unlink(parent: 1, name: n) } } == EISDIR)
        #expect(f.errno { try "f".withBytes { n throws(FSError) in try f.fs.rmdir(parent: dir, name: n) } } == ENOTDIR)
        #expect(f.errno { try "d".withBytes { n throws(FSError) in try f.fs.rmdir(parent: 1, name: n) } } == ENOTEMPTY)
        let long = String(repeating: "a", count: 256)
        #expect(f.errno { _ = try f.create(dir, long) } == ENAMETOOLONG)
        let max = String(repeating: "b", count: 255)
        let (maxFile, maxFh) = try f.create(dir, max)
        f.fs.release(maxFile, fh: maxFh)
        #expect(try f.lookup(dir, max).ino == maxFile)
    }

    /// rmdir (and rename over a directory) decide emptiness from the store and the dirty
    /// dentries, without committing: names removed since the last commit do not count, names
    /// made since do.
    @Test func emptinessSeesUncommittedNamesWithoutACommit() throws {
        let f = try Fixture()
        func rmdir(_ parent: UInt64, _ name: String) -> Int32 {
            f.errno { try name.withBytes { n throws(FSError) in try f.fs.rmdir(parent: parent, name: n) } }
        }
        func unlink(_ parent: UInt64, _ name: String) throws {
            try name.withBytes { n throws(FSError) in try f.fs.unlink(parent: parent, name: n) }
        }
        func rename(_ from: String, _ to: String, in parent: UInt64) -> Int32 {
            f.errno {
                try from.withBytes { a throws(FSError) in
                    try to.withBytes { b throws(FSError) in try f.fs.rename(parent: parent, name: a, newParent: parent, newName: b, flags: 0) }
                }
            }
        }
        func commits() -> UInt64 { f.fs.statistics().commits }

        // Committed entries, removed one by one.
        let d = try f.mkdir(1, "d")
        for name in ["a", "b"] { let (ino, fh) = try f.create(d, name); f.fs.release(ino, fh: fh) }
        let g = try f.mkdir(1, "g")
        let (y, yfh) = try f.create(g, "y"); f.fs.release(y, fh: yfh)
        let h = try f.mkdir(1, "h")
        let (z, zfh) = try f.create(h, "z"); f.fs.release(z, fh: zfh)
        try f.fs.sync()
        try unlink(d, "a")
        let before = commits()
        #expect(rmdir(1, "d") == ENOTEMPTY, "b is still in the store and not removed")
        try unlink(d, "b")
        #expect(rmdir(1, "d") == 0)
        // A name made since the commit, in a directory made since the commit.
        let e = try f.mkdir(1, "e")
        let (x, xfh) = try f.create(e, "x"); f.fs.release(x, fh: xfh)
        #expect(rmdir(1, "e") == ENOTEMPTY)
        try unlink(e, "x")
        #expect(rmdir(1, "e") == 0)
        // A committed name renamed within its directory: the old name negated, the new one dirty.
        #expect(rename("y", "y2", in: g) == 0)
        #expect(rmdir(1, "g") == ENOTEMPTY)
        // rename over a directory checks the same way.
        _ = try f.mkdir(1, "k")
        #expect(rename("k", "h", in: 1) == ENOTEMPTY)
        try unlink(h, "z")
        #expect(rename("k", "h", in: 1) == 0)
        #expect(commits() == before, "no emptiness check committed")

        try f.reopen()
        #expect(try f.names(1).sorted() == [".", "..", "g", "h"])
        #expect(try f.names(f.lookup(1, "g").ino).sorted() == [".", "..", "y2"])
        #expect(try f.names(f.lookup(1, "h").ino).sorted() == [".", ".."])
    }

    @Test func renameReplaceNoReplaceAndExchange() throws {
        let f = try Fixture()
        let a = try f.create(1, "a"), b = try f.create(1, "b")
        f.fs.release(a.ino, fh: a.fh)
        f.fs.release(b.ino, fh: b.fh)
        let rename = { (from: String, to: String, flags: UInt32) throws(FSError) in
            try from.withBytes { x throws(FSError) in
                try to.withBytes { y throws(FSError) in try f.fs.rename(parent: 1, name: x, newParent: 1, newName: y, flags: flags) }
            }
        }
        #expect(f.errno { try rename("a", "b", 1) } == EEXIST)
        try rename("a", "b", 2)
        #expect(try f.lookup(1, "a").ino == b.ino)
        #expect(try f.lookup(1, "b").ino == a.ino)
        try rename("a", "b", 0)
        #expect(try f.lookup(1, "b").ino == b.ino)
        #expect(f.errno { _ = try f.lookup(1, "a") } == ENOENT)
        let d1 = try f.mkdir(1, "d1"), d2 = try f.mkdir(1, "d2")
        try "d1".withBytes { x throws(FSError) in
            try "moved".withBytes { y throws(FSError) in try f.fs.rename(parent: 1, name: x, newParent: d2, newName: y, flags: 0) }
        }
        #expect(try f.fs.getattr(d2).nlink == 3)
        #expect(try f.fs.getattr(1).nlink == 3)  // ".", "..", d2
        try f.reopen()
        #expect(try f.lookup(d2, "moved").ino == d1)
        #expect(try f.names(d2).sorted() == [".", "..", "moved"])
        #expect(try f.names(1).sorted() == [".", "..", "b", "d2"])
    }

    @Test func sparseFilesHolesAndTruncate() throws {
        let f = try Fixture()
        let (file, fh) = try f.create(1, "sparse")
        try f.write(file, fh, at: 1 << 20, [1, 2, 3])
        #expect(try f.fs.getattr(file).size == (1 << 20) + 3)
        #expect(try f.read(file, fh, at: 4096, count: 8) == [UInt8](repeating: 0, count: 8))
        #expect(try f.fs.getattr(file).blocks == 8)  // one 4 KiB block
        #expect(try f.fs.lseek(file, fh: fh, offset: 0, whence: Linux.seekData) == 1 << 20)
        #expect(try f.fs.lseek(file, fh: fh, offset: 0, whence: Linux.seekHole) == 0)
        var shrink = AttributeChanges()
        shrink.size = 10
        _ = try f.fs.setattr(file, shrink, caller: f.caller)
        #expect(try f.fs.getattr(file).blocks == 0)
        try f.write(file, fh, at: 0, Array(repeating: 7, count: 5000))
        shrink.size = 4097
        _ = try f.fs.setattr(file, shrink, caller: f.caller)
        var grow = AttributeChanges()
        grow.size = 8192
        _ = try f.fs.setattr(file, grow, caller: f.caller)
        let data = try f.read(file, fh, at: 4090, count: 20)
        #expect(data == Array(repeating: 7, count: 7) + Array(repeating: 0, count: 13))
        f.fs.release(file, fh: fh)
        try f.reopen()
        let fh2 = try f.fs.open(file, flags: O_RDONLY)
        #expect(try f.read(file, fh2, at: 4090, count: 20) == data)
        f.fs.release(file, fh: fh2)
    }

    @Test func unlinkedOpenFileLivesUntilReleaseAndForget() throws {
        let f = try Fixture()
        let (file, fh) = try f.create(1, "tmp")
        try f.write(file, fh, at: 0, [9, 9, 9])
        try "tmp".withBytes { n throws(FSError) in try f.fs.unlink(parent: 1, name: n) }
        #expect(f.errno { _ = try f.lookup(1, "tmp") } == ENOENT)
        try f.fs.sync()
        #expect(try f.read(file, fh, at: 0, count: 3) == [9, 9, 9])
        let before = f.fs.statfs().freeFiles
        f.fs.release(file, fh: fh)
        f.fs.forget(file, count: 1)
        try f.fs.sync()
        #expect(f.fs.statfs().freeFiles == before + 1)
    }

    @Test func xattrsSymlinksAndHardLinks() throws {
        let f = try Fixture()
        let (file, fh) = try f.create(1, "f")
        f.fs.release(file, fh: fh)
        try "user.k".withBytes { n throws(FSError) in
            try "v1".withBytes { v throws(FSError) in try f.fs.setxattr(file, name: n, value: v, flags: 0) }
        }
        #expect(f.errno {
            try "user.k".withBytes { n throws(FSError) in
                try "v2".withBytes { v throws(FSError) in try f.fs.setxattr(file, name: n, value: v, flags: Linux.xattrCreate) }
            }
        } == EEXIST)
        let target = try "target/path".withBytes { t throws(FSError) in
            try "link".withBytes { n throws(FSError) in try f.fs.symlink(target: t, parent: 1, name: n, caller: f.caller) }
        }
        let hard = try "hard".withBytes { n throws(FSError) in try f.fs.link(file, newParent: 1, newName: n) }
        #expect(hard.nlink == 2)
        try f.reopen()
        #expect(try "user.k".withBytes { n throws(FSError) in try f.fs.getxattr(file, name: n) } == Array("v1".utf8))
        #expect(try f.fs.listxattr(file) == Array("user.k\0".utf8))
        #expect(try f.fs.readlink(target.ino) == Array("target/path".utf8))
        #expect(try f.lookup(1, "hard").ino == file)
        #expect(try f.fs.getattr(file).nlink == 2)
    }

    @Test func lookupsGoThroughTheCachesAndDropCachesEmptiesThem() throws {
        let f = try Fixture()
        let dir = try f.mkdir(1, "many")
        for i in 0..<500 {
            let (ino, fh) = try f.create(dir, "file-\(i)")
            f.fs.release(ino, fh: fh)
        }
        try f.fs.sync()
        let dropped = f.fs.dropCaches()
        #expect(dropped.objects > 500)
        let before = f.fs.cache.statistics()
        for i in 0..<500 { _ = try f.lookup(dir, "file-\(i)") }
        let after = f.fs.cache.statistics()
        func active(_ stats: [CacheStatistics], _ prefix: String) -> Int {
            stats.filter { $0.name.contains(prefix) }.reduce(0) { $0 + $1.activeObjects }
        }
        #expect(active(after, "dentry") >= active(before, "dentry") + 500)
        #expect(active(after, "inode") >= active(before, "inode") + 500)
        #expect(try f.fs.check().isEmpty)
    }
}

extension String {
    /// The string's UTF-8 bytes as a name for the FileSystem API.
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var copy = self
        let result: Result<R, E> = copy.withUTF8 { bytes in
            do throws(E) {
                return .success(try body(UnsafeRawBufferPointer(bytes)))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
