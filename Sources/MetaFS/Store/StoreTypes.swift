import Glibc
import MetaCache

/// An error from the store: a message naming what is wrong and the errno the kernel gets.
public struct StoreError: Error, Equatable, CustomStringConvertible, Sendable {
    /// errno for the kernel (ENOSPC, ENOENT, EIO, EINVAL, ...).
    public let code: Int32
    /// What is wrong, e.g. "bad superblock magic".
    public let message: String
    public init(_ code: Int32, _ message: String) { self.code = code; self.message = message }
    /// The same as `code`.
    public var errno: Int32 { code }
    public var description: String { message }

    static func io(_ message: String) -> StoreError { StoreError(EIO, message) }
    static func corrupt(_ message: String) -> StoreError { StoreError(EIO, message) }
    static func invalid(_ message: String) -> StoreError { StoreError(EINVAL, message) }
    static func noSpace(_ message: String) -> StoreError { StoreError(ENOSPC, message) }
    static func system(_ what: String, _ err: Int32 = Glibc.errno) -> StoreError {
        StoreError(err, "\(what): \(String(cString: strerror(err)))")
    }
}

/// The persistent fields of an inode, as the file-system layer reads and writes them. The store
/// keeps more per inode (extent map, xattr block, symlink target, orphan link, directory index),
/// which `writeInode` preserves.
public struct DiskInode: Equatable, Sendable {
    public var mode: UInt32
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt64
    public var size: UInt64
    /// In 512-byte units, as st_blocks.
    public var blocks: UInt64
    public var atime: Timespec
    public var mtime: Timespec
    public var ctime: Timespec
    public var generation: UInt32
    public var flags: UInt32
    public init(mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, rdev: UInt64 = 0, size: UInt64 = 0,
                blocks: UInt64 = 0, atime: Timespec = .zero, mtime: Timespec = .zero, ctime: Timespec = .zero,
                generation: UInt32 = 0, flags: UInt32 = 0) {
        self.mode = mode; self.nlink = nlink; self.uid = uid; self.gid = gid; self.rdev = rdev
        self.size = size; self.blocks = blocks; self.atime = atime; self.mtime = mtime; self.ctime = ctime
        self.generation = generation; self.flags = flags
    }
    /// DT_* type (S_IFMT >> 12).
    public var fileType: UInt8 { UInt8(truncatingIfNeeded: (mode >> 12) & 0xF) }
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
}

/// `length` file blocks from `logical` mapped to store blocks from `physical`.
public struct StoreExtent: Equatable, Sendable {
    public var logical: UInt64
    public var length: UInt32
    public var physical: UInt64
    /// Allocated but not written (reads as zeros), as fallocate leaves it.
    public var unwritten: Bool
    public init(logical: UInt64, length: UInt32, physical: UInt64, unwritten: Bool = false) {
        self.logical = logical; self.length = length; self.physical = physical; self.unwritten = unwritten
    }
    public var end: UInt64 { logical + UInt64(length) }
    public var physicalEnd: UInt64 { physical + UInt64(length) }
}

/// Sizes and use of the store (statfs, stats.json).
public struct StoreUsage: Equatable, Sendable {
    public var blockSize: Int
    public var storeBytes: UInt64
    /// All blocks of the store file, metadata regions included.
    public var totalBlocks: UInt64
    /// Blocks of the data area (file data, directories, extent/xattr/symlink blocks).
    public var dataBlocks: UInt64
    /// Free data blocks (not reserved, not in use).
    public var freeBlocks: UInt64
    public var totalInodes: UInt64
    public var freeInodes: UInt64
    public var journalBlocks: UInt64
    /// Transactions committed since open.
    public var commits: UInt64
    /// Metadata blocks written through the journal since open.
    public var journaledBlocks: UInt64
    /// persist() calls and bytes since open.
    public var persists: UInt64
    public var persistedBytes: UInt64
    /// The largest transaction, in metadata blocks, that fits the journal.
    public var maxTransactionBlocks: Int
    /// True when open found the store not cleanly closed (journal replayed / orphans processed).
    public var recovered: Bool
    public var usedBytes: UInt64 { (totalBlocks - freeBlocks) * UInt64(blockSize) }
}
