import MetaCache
import Glibc

// The value types the file-system layer exchanges with the FUSE layer and the control directory.

/// An errno value returned to the kernel. `throws(FSError)` keeps errors allocation-free.
public struct FSError: Error, Equatable, CustomStringConvertible {
    public let code: Int32
    /// Said to a person (mount errors); the kernel only sees `code`.
    public let message: String?
    public init(_ code: Int32, message: String? = nil) {
        self.code = code
        self.message = message
    }
    public var description: String { message ?? String(cString: strerror(code)) }
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
    /// The anonymous part of the RSS (slabs, tables, heap): what the cache budget is about.
    public var rssAnonymousBytes: UInt64
    /// The file-backed part: pages of the mapped store.
    public var rssFileBytes: UInt64
}


/// Linux constants the file-system layer decodes (not all of them reach Swift through Glibc).
enum Linux {
    static let seekData: Int32 = 3          // SEEK_DATA
    static let seekHole: Int32 = 4          // SEEK_HOLE
    static let fallocKeepSize: Int32 = 1    // FALLOC_FL_KEEP_SIZE
    static let fallocPunchHole: Int32 = 2   // FALLOC_FL_PUNCH_HOLE
    static let xattrCreate: Int32 = 1       // XATTR_CREATE
    static let xattrReplace: Int32 = 2      // XATTR_REPLACE
    static let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE
    static let renameExchange: UInt32 = 2   // RENAME_EXCHANGE
}

/// A line on the daemon's standard error (its log).
func logError(_ message: String) {
    let line = "metafs: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
