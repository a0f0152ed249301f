import CFuse
import Glibc
import MetaCache

// Conversions between the file system's value types and the C structures libfuse speaks.

extension Timespec {
    init(_ ts: timespec) {
        self.init(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(truncatingIfNeeded: ts.tv_nsec))
    }
    var timespecValue: timespec { timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds)) }
}

public enum StatConversion {
    /// Fills a `struct stat` from cached inode attributes.

    public static func stat(from a: InodeAttributes, blockSize: Int = 4096) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = UInt(truncatingIfNeeded: a.ino)
        st.st_mode = a.mode
        st.st_nlink = UInt(a.nlink)
        st.st_uid = a.uid
        st.st_gid = a.gid
        st.st_rdev = UInt(truncatingIfNeeded: a.rdev)
        st.st_size = Int(truncatingIfNeeded: a.size)
        st.st_blksize = blockSize
        st.st_blocks = Int(truncatingIfNeeded: a.blocks)
        st.st_atim = a.atime.timespecValue
        st.st_mtim = a.mtime.timespecValue
        st.st_ctim = a.ctime.timespecValue
        return st
    }

    /// The reverse of `stat(from:)` (generation and flags are not in a stat: zero).
    public static func attributes(from st: Glibc.stat) -> InodeAttributes {
        InodeAttributes(ino: UInt64(st.st_ino), mode: st.st_mode, nlink: UInt32(truncatingIfNeeded: st.st_nlink),
                        uid: st.st_uid, gid: st.st_gid, rdev: UInt64(st.st_rdev),
                        size: UInt64(bitPattern: Int64(st.st_size)), blocks: UInt64(bitPattern: Int64(st.st_blocks)),
                        atime: Timespec(st.st_atim), mtime: Timespec(st.st_mtim), ctime: Timespec(st.st_ctim))
    }

    /// A `fuse_entry_param` for an entry reply, with the generation and the configured timeouts.

    public static func entry(from a: InodeAttributes, entryTimeout: Double, attrTimeout: Double) -> fuse_entry_param {
        var e = fuse_entry_param()
        e.ino = a.ino
        e.generation = UInt64(a.generation)
        e.attr = stat(from: a)
        e.entry_timeout = entryTimeout
        e.attr_timeout = attrTimeout
        return e
    }

    /// Decodes setattr's `to_set` bits (FUSE_SET_ATTR_*) and the stat they refer to.
    /// ATIME_NOW / MTIME_NOW become `.now`; fields whose bit is clear stay nil (UTIME_OMIT).
    public static func changes(from st: Glibc.stat, toSet: Int32) -> AttributeChanges {
        var c = AttributeChanges()
        if toSet & FUSE_SET_ATTR_MODE != 0 { c.mode = st.st_mode }
        if toSet & FUSE_SET_ATTR_UID != 0 { c.uid = st.st_uid }
        if toSet & FUSE_SET_ATTR_GID != 0 { c.gid = st.st_gid }
        if toSet & FUSE_SET_ATTR_SIZE != 0 { c.size = UInt64(bitPattern: Int64(st.st_size)) }
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
            c.atime = .now
        } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
            c.atime = .set(Timespec(st.st_atim))
        }
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
            c.mtime = .now
        } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
            c.mtime = .set(Timespec(st.st_mtim))
        }
        if toSet & FUSE_SET_ATTR_CTIME != 0 { c.ctime = Timespec(st.st_ctim) }
        return c
    }

    /// statvfs figures for statfs.
    public static func statvfs(from u: FileSystemUsage) -> Glibc.statvfs {
        var s = Glibc.statvfs()
        s.f_bsize = UInt(u.blockSize)
        s.f_frsize = UInt(u.blockSize)
        s.f_blocks = UInt(u.blocks)
        s.f_bfree = UInt(u.freeBlocks)
        s.f_bavail = UInt(u.freeBlocks)
        s.f_files = UInt(u.files)
        s.f_ffree = UInt(u.freeFiles)
        s.f_favail = UInt(u.freeFiles)
        s.f_namemax = UInt(u.nameMax)
        return s
    }
}
