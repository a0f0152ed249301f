import MetaCache
import Glibc

// API SKELETON (being implemented by the integrator; signatures are the contract the FUSE layer
// codes against). Every method is thread-safe: libfuse calls them from several worker threads.

/// An errno value returned to the kernel. `throws(FSError)` keeps errors allocation-free.
public struct FSError: Error, Equatable, CustomStringConvertible {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
}

/// Who is making the request (from fuse_req_ctx).
public struct Caller: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    public init(uid: UInt32, gid: UInt32, pid: Int32) { self.uid = uid; self.gid = gid; self.pid = pid }
}

/// A time as setattr receives it (UTIME_NOW / UTIME_OMIT already decoded: nil = omit).
public enum TimeChange: Sendable {
    case now
    case set(Timespec)
}

/// The fields a setattr call changes; nil means "leave as is".
public struct AttributeChanges: Sendable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: TimeChange?
    public var mtime: TimeChange?
    public var ctime: Timespec?
    public init() {}
}

/// statfs(2) figures.
public struct FileSystemUsage: Sendable {
    public var blockSize: UInt64
    public var blocks: UInt64
    public var freeBlocks: UInt64
    public var files: UInt64
    public var freeFiles: UInt64
    public var nameMax: UInt64
}

/// Mount-time behaviour of the file system layer.
public struct FileSystemOptions: Sendable {
    /// Seconds between background commits of dirty metadata.
    public var flushInterval: Double = 5
    public init() {}
}

/// Everything the control directory shows, gathered in one call.
public struct FileSystemStatistics: Sendable {
    public var caches: [CacheStatistics]
    public var cacheBytes: UInt64
    public var storeBytes: UInt64
    public var storeUsedBytes: UInt64
    public var storeBlocks: UInt64
    public var storeFreeBlocks: UInt64
    public var storeInodes: UInt64
    public var storeFreeInodes: UInt64
    public var commits: UInt64
    public var committedObjects: UInt64
    public var knownInodes: UInt64
    public var openFiles: UInt64
    public var rssBytes: UInt64
}

/// The POSIX file system: every call goes through MetaCache, and dirty metadata is committed to the
/// store by a flusher. (Method bodies are being written; the signatures are fixed.)
public final class FileSystem: @unchecked Sendable {
    public let cache: MetaCache

    public init(storePath: String, cache: MetaCache, options: FileSystemOptions) throws(FSError) { fatalError("unimplemented") }

    /// Names are 1...255 bytes without NUL. Every call that returns an entry to the kernel
    /// (lookup, mknod, mkdir, symlink, link, create) counts one kernel lookup of that inode.
    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes { fatalError() }
    public func forget(_ ino: UInt64, count: UInt64) { fatalError() }
    public func getattr(_ ino: UInt64) throws(FSError) -> InodeAttributes { fatalError() }
    public func setattr(_ ino: UInt64, _ changes: AttributeChanges, caller: Caller) throws(FSError) -> InodeAttributes { fatalError() }
    public func readlink(_ ino: UInt64) throws(FSError) -> [UInt8] { fatalError() }
    public func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64, caller: Caller) throws(FSError) -> InodeAttributes { fatalError() }
    public func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, caller: Caller) throws(FSError) -> InodeAttributes { fatalError() }
    public func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) { fatalError() }
    public func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) { fatalError() }
    public func symlink(target: UnsafeRawBufferPointer, parent: UInt64, name: UnsafeRawBufferPointer, caller: Caller) throws(FSError) -> InodeAttributes { fatalError() }
    /// flags: 0, RENAME_NOREPLACE (1) or RENAME_EXCHANGE (2).
    public func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64, newName: UnsafeRawBufferPointer, flags: UInt32) throws(FSError) { fatalError() }
    public func link(_ ino: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes { fatalError() }
    /// Returns a file handle. O_TRUNC in flags truncates.
    public func open(_ ino: UInt64, flags: Int32) throws(FSError) -> UInt64 { fatalError() }
    public func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32, caller: Caller) throws(FSError) -> (InodeAttributes, UInt64) { fatalError() }
    /// Reads up to buffer.count bytes at offset; returns the count (0 at end of file).
    public func read(_ ino: UInt64, fh: UInt64, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int { fatalError() }
    public func write(_ ino: UInt64, fh: UInt64, offset: UInt64, from data: UnsafeRawBufferPointer) throws(FSError) -> Int { fatalError() }
    public func flush(_ ino: UInt64, fh: UInt64) throws(FSError) { fatalError() }
    public func release(_ ino: UInt64, fh: UInt64) { fatalError() }
    public func fsync(_ ino: UInt64, datasync: Bool) throws(FSError) { fatalError() }
    public func opendir(_ ino: UInt64) throws(FSError) -> UInt64 { fatalError() }
    /// Emits entries after `offset` ("." and ".." first); emit returns false when the reply buffer is
    /// full (that entry was not taken). With `plus`, attributes are passed and each taken entry other
    /// than "." and ".." counts one kernel lookup.
    public func readdir(_ ino: UInt64, fh: UInt64, offset: UInt64, plus: Bool,
                        _ emit: (_ name: UnsafeRawBufferPointer, _ attributes: InodeAttributes, _ nextOffset: UInt64) -> Bool) throws(FSError) { fatalError() }
    public func releasedir(_ ino: UInt64, fh: UInt64) { fatalError() }
    public func fsyncdir(_ ino: UInt64, datasync: Bool) throws(FSError) { fatalError() }
    public func statfs() -> FileSystemUsage { fatalError() }
    public func fallocate(_ ino: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError) { fatalError() }
    /// flags: XATTR_CREATE (1) / XATTR_REPLACE (2).
    public func setxattr(_ ino: UInt64, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError) { fatalError() }
    public func getxattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> [UInt8] { fatalError() }
    /// Names, each followed by NUL.
    public func listxattr(_ ino: UInt64) throws(FSError) -> [UInt8] { fatalError() }
    public func removexattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) { fatalError() }
    /// SEEK_SET/CUR/END are done by the kernel; this gets SEEK_DATA (3) and SEEK_HOLE (4).
    public func lseek(_ ino: UInt64, fh: UInt64, offset: Int64, whence: Int32) throws(FSError) -> Int64 { fatalError() }
    /// Commit every dirty object (syncfs, `sync` in control).
    public func sync() throws(FSError) { fatalError() }
    /// `drop_caches` in control: commit, then evict every clean unpinned object.
    public func dropCaches() -> (objects: Int, pages: Int) { fatalError() }
    public func statistics() -> FileSystemStatistics { fatalError() }
    /// Stop the flusher, commit everything, close the store (unmount).
    public func shutdown() { fatalError() }
}
