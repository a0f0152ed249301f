import Foundation
import Glibc
import MetaCache
@testable import MetaFS

/// A small in-memory POSIX file system behind the FUSE layer, for live-mount tests of the FUSE
/// glue and the control directory without the store. One lock; sparse 4 KiB blocks; ext4-like
/// errors for the cases the shell tests exercise. Not a reference implementation of FileSystem.
final class MountMemoryBackend: FileSystemBackend, @unchecked Sendable {
    let cache = MetaCache()
    private let lock = NSLock()
    private static let blockSize = 4096

    private struct Node {
        var attr: InodeAttributes
        var parent: UInt64 = 0
        var entries: [[UInt8]: UInt64] = [:]
        var order: [(cookie: UInt64, name: [UInt8])] = []
        var nextCookie: UInt64 = 3
        var blocks: [UInt64: [UInt8]] = [:]
        var target: [UInt8] = []
        var xattrs: [[UInt8]: [UInt8]] = [:]
        var isDir: Bool { attr.mode & 0o170000 == 0o040000 }
    }

    private var nodes: [UInt64: Node] = [:]
    private var nextIno: UInt64 = 2
    private var lookups: [UInt64: UInt64] = [:]
    private var opens: [UInt64: Int] = [:]
    private var nextFH: UInt64 = 1
    private(set) var syncCount = 0
    private(set) var dropCount = 0

    init() {
        let now = Self.now()
        nodes[1] = Node(attr: InodeAttributes(ino: 1, mode: 0o040755, nlink: 2, uid: 0, gid: 0, atime: now, mtime: now, ctime: now, generation: 1), parent: 1)
    }

    static func now() -> Timespec {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Timespec(seconds: Int64(t.tv_sec), nanoseconds: UInt32(t.tv_nsec))
    }

    private func locked<T>(_ body: () throws(FSError) -> T) throws(FSError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private func node(_ ino: UInt64) throws(FSError) -> Node {
        guard let n = nodes[ino] else { throw FSError(ENOENT) }
        return n
    }

    private func dir(_ ino: UInt64) throws(FSError) -> Node {
        let n = try node(ino)
        guard n.isDir else { throw FSError(ENOTDIR) }
        return n
    }

    private func withAttributes(_ n: Node) -> InodeAttributes {
        var a = n.attr
        a.blocks = UInt64(n.blocks.count * (Self.blockSize / 512))
        if n.isDir { a.size = UInt64(4096) }
        return a
    }

    private func addEntry(_ parent: UInt64, _ name: [UInt8], _ ino: UInt64) {
        nodes[parent]!.entries[name] = ino
        let c = nodes[parent]!.nextCookie
        nodes[parent]!.nextCookie += 1
        nodes[parent]!.order.append((c, name))
        let now = Self.now()
        nodes[parent]!.attr.mtime = now
        nodes[parent]!.attr.ctime = now
    }

    private func removeEntry(_ parent: UInt64, _ name: [UInt8]) {
        nodes[parent]!.entries[name] = nil
        nodes[parent]!.order.removeAll { $0.name == name }
        let now = Self.now()
        nodes[parent]!.attr.mtime = now
        nodes[parent]!.attr.ctime = now
    }

    private func maybeFree(_ ino: UInt64) {
        guard let n = nodes[ino], n.attr.nlink == 0, (lookups[ino] ?? 0) == 0, (opens[ino] ?? 0) == 0 else { return }
        nodes[ino] = nil
    }

    private func newNode(parent: UInt64, name: [UInt8], mode: UInt32, rdev: UInt64 = 0, caller: Caller) throws(FSError) -> InodeAttributes {
        let p = try dir(parent)
        guard p.entries[name] == nil else { throw FSError(EEXIST) }
        let ino = nextIno
        nextIno += 1
        let now = Self.now()
        let isDir = mode & 0o170000 == 0o040000
        var gid = caller.gid
        var mode = mode
        if p.attr.mode & 0o2000 != 0 { gid = p.attr.gid; if isDir { mode |= 0o2000 } }
        var n = Node(attr: InodeAttributes(ino: ino, mode: mode, nlink: isDir ? 2 : 1, uid: caller.uid, gid: gid, rdev: rdev,
                                           atime: now, mtime: now, ctime: now, generation: 1))
        n.parent = parent
        nodes[ino] = n
        addEntry(parent, name, ino)
        if isDir { nodes[parent]!.attr.nlink += 1 }
        lookups[ino, default: 0] += 1
        return withAttributes(nodes[ino]!)
    }

    // MARK: FileSystemBackend

    func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in
            let p = try dir(parent)
            let ino: UInt64
            if name.elementsEqual([0x2E]) { ino = parent } else if name.elementsEqual([0x2E, 0x2E]) { ino = p.parent } else {
                guard let i = p.entries[Array(name)] else { throw FSError(ENOENT) }
                ino = i
            }
            lookups[ino, default: 0] += 1
            return withAttributes(try node(ino))
        }
    }

    func forget(_ ino: UInt64, count: UInt64) {
        lock.lock(); defer { lock.unlock() }
        let c = lookups[ino] ?? 0
        lookups[ino] = c > count ? c - count : nil
        maybeFree(ino)
    }

    func getattr(_ ino: UInt64) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in withAttributes(try node(ino)) }
    }

    func setattr(_ ino: UInt64, _ c: AttributeChanges, caller: Caller) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in
            var n = try node(ino)
            let now = Self.now()
            if let m = c.mode { n.attr.mode = (n.attr.mode & 0o170000) | (m & 0o7777) }
            if let u = c.uid { n.attr.uid = u }
            if let g = c.gid { n.attr.gid = g }
            if let s = c.size {
                guard !n.isDir else { throw FSError(EISDIR) }
                let bs = UInt64(Self.blockSize)
                let keep = (s + bs - 1) / bs
                n.blocks = n.blocks.filter { $0.key < keep }
                if s % bs != 0, var last = n.blocks[s / bs] {
                    for i in Int(s % bs)..<Self.blockSize { last[i] = 0 }
                    n.blocks[s / bs] = last
                }
                n.attr.size = s
                n.attr.mtime = now
            }
            switch c.atime { case .now: n.attr.atime = now; case .set(let t): n.attr.atime = t; case nil: break }
            switch c.mtime { case .now: n.attr.mtime = now; case .set(let t): n.attr.mtime = t; case nil: break }
            n.attr.ctime = c.ctime ?? now
            nodes[ino] = n
            return withAttributes(n)
        }
    }

    func readlink(_ ino: UInt64) throws(FSError) -> [UInt8] {
        try locked { () throws(FSError) -> [UInt8] in
            let n = try node(ino)
            guard n.attr.mode & 0o170000 == 0o120000 else { throw FSError(EINVAL) }
            return n.target
        }
    }

    func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64, caller: Caller) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in try newNode(parent: parent, name: Array(name), mode: mode, rdev: rdev, caller: caller) }
    }

    func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, caller: Caller) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in
            try newNode(parent: parent, name: Array(name), mode: 0o040000 | (mode & 0o7777), caller: caller)
        }
    }

    func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try locked { () throws(FSError) in
            let p = try dir(parent)
            guard let ino = p.entries[Array(name)] else { throw FSError(ENOENT) }
            guard !(try node(ino)).isDir else { throw FSError(EISDIR) }
            removeEntry(parent, Array(name))
            nodes[ino]!.attr.nlink -= 1
            nodes[ino]!.attr.ctime = Self.now()
            maybeFree(ino)
        }
    }

    func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try locked { () throws(FSError) in
            let p = try dir(parent)
            guard let ino = p.entries[Array(name)] else { throw FSError(ENOENT) }
            let n = try node(ino)
            guard n.isDir else { throw FSError(ENOTDIR) }
            guard n.entries.isEmpty else { throw FSError(ENOTEMPTY) }
            removeEntry(parent, Array(name))
            nodes[parent]!.attr.nlink -= 1
            nodes[ino]!.attr.nlink = 0
            maybeFree(ino)
        }
    }

    func symlink(target: UnsafeRawBufferPointer, parent: UInt64, name: UnsafeRawBufferPointer, caller: Caller) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in
            guard target.count <= 4095 else { throw FSError(ENAMETOOLONG) }
            var a = try newNode(parent: parent, name: Array(name), mode: 0o120777, caller: caller)
            nodes[a.ino]!.target = Array(target)
            nodes[a.ino]!.attr.size = UInt64(target.count)
            a.size = UInt64(target.count)
            return a
        }
    }

    private func isAncestor(_ a: UInt64, of b: UInt64) -> Bool {
        var x = b
        while true {
            if x == a { return true }
            guard x != 1, let p = nodes[x]?.parent else { return false }
            x = p
        }
    }

    func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64, newName: UnsafeRawBufferPointer, flags: UInt32) throws(FSError) {
        try locked { () throws(FSError) in
            let sp = try dir(parent), dp = try dir(newParent)
            let sname = Array(name), dname = Array(newName)
            guard let sino = sp.entries[sname] else { throw FSError(ENOENT) }
            let src = try node(sino)
            if src.isDir, isAncestor(sino, of: newParent) { throw FSError(EINVAL) }
            let dino = dp.entries[dname]
            if flags & 2 != 0 {   // RENAME_EXCHANGE
                guard let dino else { throw FSError(ENOENT) }
                let dst = try node(dino)
                if dst.isDir, isAncestor(dino, of: parent) { throw FSError(EINVAL) }
                nodes[parent]!.entries[sname] = dino
                nodes[newParent]!.entries[dname] = sino
                nodes[sino]!.parent = newParent
                nodes[dino]!.parent = parent
                if src.isDir != dst.isDir, parent != newParent {
                    if src.isDir { nodes[parent]!.attr.nlink -= 1; nodes[newParent]!.attr.nlink += 1 } else { nodes[parent]!.attr.nlink += 1; nodes[newParent]!.attr.nlink -= 1 }
                }
                return
            }
            if let dino {
                if flags & 1 != 0 { throw FSError(EEXIST) }
                if dino == sino { return }
                let dst = try node(dino)
                if src.isDir {
                    guard dst.isDir else { throw FSError(ENOTDIR) }
                    guard dst.entries.isEmpty else { throw FSError(ENOTEMPTY) }
                    nodes[newParent]!.attr.nlink -= 1
                    nodes[dino]!.attr.nlink = 0
                } else {
                    guard !dst.isDir else { throw FSError(EISDIR) }
                    nodes[dino]!.attr.nlink -= 1
                }
                removeEntry(newParent, dname)
                maybeFree(dino)
            }
            removeEntry(parent, sname)
            addEntry(newParent, dname, sino)
            nodes[sino]!.parent = newParent
            nodes[sino]!.attr.ctime = Self.now()
            if src.isDir { nodes[parent]!.attr.nlink -= 1; nodes[newParent]!.attr.nlink += 1 }
        }
    }

    func link(_ ino: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes {
        try locked { () throws(FSError) -> InodeAttributes in
            let n = try node(ino)
            guard !n.isDir else { throw FSError(EPERM) }
            let p = try dir(newParent)
            guard p.entries[Array(newName)] == nil else { throw FSError(EEXIST) }
            addEntry(newParent, Array(newName), ino)
            nodes[ino]!.attr.nlink += 1
            nodes[ino]!.attr.ctime = Self.now()
            lookups[ino, default: 0] += 1
            return withAttributes(nodes[ino]!)
        }
    }

    func open(_ ino: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        try locked { () throws(FSError) -> UInt64 in
            let n = try node(ino)
            if flags & O_TRUNC != 0, !n.isDir, flags & O_ACCMODE != O_RDONLY {
                nodes[ino]!.blocks = [:]
                nodes[ino]!.attr.size = 0
                nodes[ino]!.attr.mtime = Self.now()
                nodes[ino]!.attr.ctime = nodes[ino]!.attr.mtime
            }
            opens[ino, default: 0] += 1
            nextFH += 1
            return nextFH
        }
    }

    func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32, caller: Caller) throws(FSError) -> (InodeAttributes, UInt64) {
        try locked { () throws(FSError) -> (InodeAttributes, UInt64) in
            let a = try newNode(parent: parent, name: Array(name), mode: 0o100000 | (mode & 0o7777), caller: caller)
            opens[a.ino, default: 0] += 1
            nextFH += 1
            return (a, nextFH)
        }
    }

    func read(_ ino: UInt64, fh: UInt64, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int {
        try locked { () throws(FSError) -> Int in
            let n = try node(ino)
            guard !n.isDir else { throw FSError(EISDIR) }
            guard offset < n.attr.size else { return 0 }
            let count = Int(min(UInt64(buffer.count), n.attr.size - offset))
            var done = 0
            let bs = UInt64(Self.blockSize)
            while done < count {
                let pos = offset + UInt64(done)
                let b = pos / bs, o = Int(pos % bs)
                let len = min(count - done, Self.blockSize - o)
                let dst = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + len)])
                if let block = n.blocks[b] {
                    block.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[o..<(o + len)])) }
                } else {
                    dst.initializeMemory(as: UInt8.self, repeating: 0)
                }
                done += len
            }
            return count
        }
    }

    func write(_ ino: UInt64, fh: UInt64, offset: UInt64, from data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try locked { () throws(FSError) -> Int in
            guard nodes[ino] != nil else { throw FSError(ENOENT) }
            let bs = UInt64(Self.blockSize)
            var done = 0
            while done < data.count {
                let pos = offset + UInt64(done)
                let b = pos / bs, o = Int(pos % bs)
                let len = min(data.count - done, Self.blockSize - o)
                var block = nodes[ino]!.blocks[b] ?? [UInt8](repeating: 0, count: Self.blockSize)
                block.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[o..<(o + len)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: data[done..<(done + len)])) }
                nodes[ino]!.blocks[b] = block
                done += len
            }
            let now = Self.now()
            nodes[ino]!.attr.size = max(nodes[ino]!.attr.size, offset + UInt64(data.count))
            nodes[ino]!.attr.mtime = now
            nodes[ino]!.attr.ctime = now
            nodes[ino]!.attr.mode &= ~UInt32(0o6000)   // writes clear setuid/setgid
            return data.count
        }
    }

    func flush(_ ino: UInt64, fh: UInt64) throws(FSError) {}

    func release(_ ino: UInt64, fh: UInt64) {
        lock.lock(); defer { lock.unlock() }
        let c = opens[ino] ?? 0
        opens[ino] = c > 1 ? c - 1 : nil
        maybeFree(ino)
    }

    func fsync(_ ino: UInt64, datasync: Bool) throws(FSError) {}
    func opendir(_ ino: UInt64) throws(FSError) -> UInt64 { try locked { () throws(FSError) -> UInt64 in _ = try dir(ino); return 0 } }

    func readdir(_ ino: UInt64, fh: UInt64, offset: UInt64, plus: Bool,
                 _ emit: (_ name: UnsafeRawBufferPointer, _ attributes: InodeAttributes, _ nextOffset: UInt64) -> Bool) throws(FSError) {
        try locked { () throws(FSError) in
            let d = try dir(ino)
            if offset < 1 {
                let ok = [UInt8](".".utf8).withUnsafeBytes { emit($0, withAttributes(d), 1) }
                if !ok { return }
            }
            if offset < 2 {
                let p = try node(d.parent)
                let ok = [UInt8]("..".utf8).withUnsafeBytes { emit($0, withAttributes(p), 2) }
                if !ok { return }
            }
            for e in d.order where e.cookie > offset {
                guard let child = d.entries[e.name], let n = nodes[child] else { continue }
                let ok = e.name.withUnsafeBytes { emit($0, withAttributes(n), e.cookie) }
                if !ok { return }
                if plus { lookups[child, default: 0] += 1 }
            }
        }
    }

    func releasedir(_ ino: UInt64, fh: UInt64) {}
    func fsyncdir(_ ino: UInt64, datasync: Bool) throws(FSError) {}

    func statfs() -> FileSystemUsage {
        lock.lock(); defer { lock.unlock() }
        let used = nodes.values.reduce(0) { $0 + UInt64($1.blocks.count) }
        return FileSystemUsage(blockSize: 4096, blocks: 1 << 20, freeBlocks: (1 << 20) - used, files: 1 << 20,
                               freeFiles: (1 << 20) - UInt64(nodes.count), nameMax: 255)
    }

    func fallocate(_ ino: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError) {
        try locked { () throws(FSError) in
            guard mode == 0 || mode == 1 else { throw FSError(EOPNOTSUPP) }   // 1: FALLOC_FL_KEEP_SIZE
            let bs = UInt64(Self.blockSize)
            for b in (offset / bs)..<((offset + length + bs - 1) / bs) where nodes[ino]!.blocks[b] == nil {
                nodes[ino]!.blocks[b] = [UInt8](repeating: 0, count: Self.blockSize)
            }
            if mode == 0 { nodes[ino]!.attr.size = max(nodes[ino]!.attr.size, offset + length) }
        }
    }

    func setxattr(_ ino: UInt64, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError) {
        try locked { () throws(FSError) in
            let n = try node(ino)
            let exists = n.xattrs[Array(name)] != nil
            if flags & 1 != 0 && exists { throw FSError(EEXIST) }
            if flags & 2 != 0 && !exists { throw FSError(ENODATA) }
            nodes[ino]!.xattrs[Array(name)] = Array(value)
            nodes[ino]!.attr.ctime = Self.now()
        }
    }

    func getxattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> [UInt8] {
        try locked { () throws(FSError) -> [UInt8] in
            guard let v = try node(ino).xattrs[Array(name)] else { throw FSError(ENODATA) }
            return v
        }
    }

    func listxattr(_ ino: UInt64) throws(FSError) -> [UInt8] {
        try locked { () throws(FSError) -> [UInt8] in
            try node(ino).xattrs.keys.sorted { $0.lexicographicallyPrecedes($1) }.flatMap { $0 + [0] }
        }
    }

    func removexattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try locked { () throws(FSError) in
            guard try node(ino).xattrs[Array(name)] != nil else { throw FSError(ENODATA) }
            nodes[ino]!.xattrs[Array(name)] = nil
        }
    }

    func lseek(_ ino: UInt64, fh: UInt64, offset: Int64, whence: Int32) throws(FSError) -> Int64 {
        try locked { () throws(FSError) -> Int64 in
            let n = try node(ino)
            let size = Int64(n.attr.size)
            guard offset >= 0, offset < size else { throw FSError(ENXIO) }
            let bs = Int64(Self.blockSize)
            var b = offset / bs
            if whence == 3 {   // SEEK_DATA
                while b * bs < size { if n.blocks[UInt64(b)] != nil { return max(offset, b * bs) }; b += 1 }
                throw FSError(ENXIO)
            } else if whence == 4 {   // SEEK_HOLE
                while b * bs < size { if n.blocks[UInt64(b)] == nil { return max(offset, b * bs) }; b += 1 }
                return size
            }
            throw FSError(EINVAL)
        }
    }

    func sync() throws(FSError) { lock.lock(); syncCount += 1; lock.unlock() }
    func dropCaches() -> (objects: Int, pages: Int) { lock.lock(); dropCount += 1; lock.unlock(); return (0, 0) }

    func statistics() -> FileSystemStatistics {
        lock.lock(); defer { lock.unlock() }
        let used = UInt64(nodes.values.reduce(0) { $0 + $1.blocks.count })
        return FileSystemStatistics(caches: cache.statistics(), cacheBytes: 0, storeBytes: 4 << 30, storeUsedBytes: used * 4096,
                                    storeBlocks: 1 << 20, storeFreeBlocks: (1 << 20) - used, storeInodes: 1 << 20,
                                    storeFreeInodes: (1 << 20) - UInt64(nodes.count), commits: UInt64(syncCount), committedObjects: 0,
                                    knownInodes: UInt64(lookups.count), openFiles: UInt64(opens.values.reduce(0, +)), rssBytes: 0)
    }

    func shutdown() {}
}
