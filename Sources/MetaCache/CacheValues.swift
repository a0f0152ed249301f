// The value types MetaCache hands across its API. The cached objects themselves are fixed-size
// records in slab memory; these are the copies callers read and write.

/// A POSIX time with nanoseconds.
public struct Timespec: Equatable, Hashable, Sendable, Codable {
    public var seconds: Int64
    public var nanoseconds: UInt32
    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
    public static let zero = Timespec(seconds: 0, nanoseconds: 0)
}

/// What a stat needs, as the inode cache keeps it.
public struct InodeAttributes: Equatable, Sendable {
    public var ino: UInt64
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
    public init(ino: UInt64, mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, rdev: UInt64 = 0,
                size: UInt64 = 0, blocks: UInt64 = 0, atime: Timespec = .zero, mtime: Timespec = .zero,
                ctime: Timespec = .zero, generation: UInt32 = 0, flags: UInt32 = 0) {
        self.ino = ino; self.mode = mode; self.nlink = nlink; self.uid = uid; self.gid = gid
        self.rdev = rdev; self.size = size; self.blocks = blocks
        self.atime = atime; self.mtime = mtime; self.ctime = ctime
        self.generation = generation; self.flags = flags
    }
    /// The directory-entry type (DT_*), which is the S_IFMT bits shifted down.
    public var fileType: UInt8 { UInt8(truncatingIfNeeded: (mode >> 12) & 0xF) }
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
}

/// Result of a dentry lookup.
public enum DentryLookup: Equatable, Sendable {
    /// Nothing cached for this name: ask the store.
    case miss
    /// Cached knowledge that the name does not exist.
    case negative
    /// The name exists: its inode number and DT_* type.
    case positive(ino: UInt64, type: UInt8)
}

/// A dentry whose change has not reached the store. `ino == 0` records a removal.
public struct DirtyDentry: Equatable, Sendable {
    public var parent: UInt64
    public var name: [UInt8]
    public var ino: UInt64
    public var type: UInt8
    public init(parent: UInt64, name: [UInt8], ino: UInt64, type: UInt8) {
        self.parent = parent; self.name = name; self.ino = ino; self.type = type
    }
}

/// Status of a cached extent, as ext4's extent status tree keeps it.
public enum ExtentStatus: UInt8, Sendable {
    case written = 0
    case unwritten = 1
    case hole = 2
}

/// A mapping of `length` file blocks from `logical` to store blocks from `physical`
/// (`physical` is meaningless for holes).
public struct ExtentMapping: Equatable, Sendable {
    public var logical: UInt64
    public var length: UInt32
    public var physical: UInt64
    public var status: ExtentStatus
    public init(logical: UInt64, length: UInt32, physical: UInt64, status: ExtentStatus) {
        self.logical = logical; self.length = length; self.physical = physical; self.status = status
    }
    public var end: UInt64 { logical + UInt64(length) }
}

/// One cache's figures, as /proc/slabinfo and stats.json show them.
public struct CacheStatistics: Equatable, Sendable, Codable {
    public var name: String
    public var activeObjects: Int
    public var totalObjects: Int
    public var objectSize: Int
    public var objectsPerSlab: Int
    public var pagesPerSlab: Int
    public var activeSlabs: Int
    public var totalSlabs: Int
    public var hits: UInt64
    public var misses: UInt64
    public var allocations: UInt64
    public var frees: UInt64
    public var negative: Int
    public var dirty: Int
    public var pinned: Int
    /// Bytes of slab memory held from the OS.
    public var slabBytes: Int
    public init(name: String, activeObjects: Int = 0, totalObjects: Int = 0, objectSize: Int = 0,
                objectsPerSlab: Int = 0, pagesPerSlab: Int = 0, activeSlabs: Int = 0, totalSlabs: Int = 0,
                hits: UInt64 = 0, misses: UInt64 = 0, allocations: UInt64 = 0, frees: UInt64 = 0,
                negative: Int = 0, dirty: Int = 0, pinned: Int = 0, slabBytes: Int = 0) {
        self.name = name; self.activeObjects = activeObjects; self.totalObjects = totalObjects
        self.objectSize = objectSize; self.objectsPerSlab = objectsPerSlab; self.pagesPerSlab = pagesPerSlab
        self.activeSlabs = activeSlabs; self.totalSlabs = totalSlabs; self.hits = hits; self.misses = misses
        self.allocations = allocations; self.frees = frees; self.negative = negative; self.dirty = dirty
        self.pinned = pinned; self.slabBytes = slabBytes
    }
}
