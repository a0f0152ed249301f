import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

/// A store in a fresh temporary directory, removed at deinit.
final class TempStore {
    let dir: String
    let path: String
    init(size: UInt64 = 16 << 20, inodes: UInt64? = nil) throws {
        var template = Array("/tmp/metafs-store-test-XXXXXX".utf8CString)
        let d = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        dir = String(cString: d!)
        path = dir + "/test.store"
        try Store.create(path: path, size: size, inodeCount: inodes, rootUID: 1000, rootGID: 100)
    }
    deinit { try? FileManager.default.removeItem(atPath: dir) }
    func open() throws -> Store { try Store.open(path: path) }

    /// Overwrite bytes of the (closed) store file.
    func poke(offset: Int, _ bytes: [UInt8]) {
        let fd = Glibc.open(path, O_RDWR)
        precondition(fd >= 0)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
        Glibc.close(fd)
    }
    func peek(offset: Int, count: Int) -> [UInt8] {
        let fd = Glibc.open(path, O_RDONLY)
        precondition(fd >= 0)
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
        Glibc.close(fd)
        return out
    }
}

func b(_ s: String) -> [UInt8] { Array(s.utf8) }

func now() -> Timespec { Timespec(seconds: 1_700_000_000, nanoseconds: 123_456_789) }

/// Create a regular file (or other non-directory) named `name` in `dir`; returns its inode number.
@discardableResult
func makeFile(_ s: Store, in dir: UInt64 = 1, _ name: String, mode: UInt32 = 0o100644) throws -> UInt64 {
    let (ino, gen) = try s.allocateInode()
    let tx = s.beginTransaction()
    try tx.writeInode(ino, DiskInode(mode: mode, nlink: 1, uid: 1, gid: 2, atime: now(), mtime: now(), ctime: now(), generation: gen))
    try tx.addEntry(directory: dir, name: b(name), ino: ino, type: UInt8((mode >> 12) & 0xF))
    try tx.commit()
    return ino
}

/// mkdir: a directory entry, the child's nlink 2 and the parent's nlink + 1.
@discardableResult
func makeDirectory(_ s: Store, in dir: UInt64 = 1, _ name: String) throws -> UInt64 {
    let (ino, gen) = try s.allocateInode()
    let tx = s.beginTransaction()
    try tx.writeInode(ino, DiskInode(mode: 0o040755, nlink: 2, uid: 1, gid: 2, generation: gen))
    try tx.addEntry(directory: dir, name: b(name), ino: ino, type: UInt8(DT_DIR))
    var parent = try #require(try s.readInode(dir))
    parent.nlink += 1
    try tx.writeInode(dir, parent)
    try tx.commit()
    return ino
}

func lookup(_ s: Store, _ dir: UInt64, _ name: String) throws -> (ino: UInt64, type: UInt8)? {
    let n = b(name)
    return try n.withUnsafeBytes { try s.lookup(directory: dir, name: $0) }
}

func listDirectory(_ s: Store, _ dir: UInt64, after cookie: UInt64 = 0, limit: Int = .max) throws -> [(name: String, ino: UInt64, cookie: UInt64)] {
    var out: [(name: String, ino: UInt64, cookie: UInt64)] = []
    try s.readDirectory(dir, after: cookie) { name, ino, _, c in
        out.append((String(decoding: name, as: UTF8.self), ino, c))
        return out.count < limit
    }
    return out
}

@Suite("StoreTests") struct StoreTests {}

func msg(_ e: any Error) -> String { (e as? StoreError)?.message ?? "\(e)" }
func code(_ e: any Error) -> Int32 { (e as? StoreError)?.code ?? -1 }
