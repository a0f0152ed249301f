import Glibc
import MetaCache

/// A read-only view of metadata blocks: the committed store (home locations) or a transaction's
/// private images layered over it.
protocol MetaView {
    var sb: Superblock { get }
    func block(_ b: UInt64) -> UnsafeRawPointer
    /// True for a transaction's private image (not sealed until commit).
    func isPrivate(_ b: UInt64) -> Bool
    /// Whether reads check block checksums (magic, owner and bounds are always checked).
    var verifyChecksums: Bool { get }
}

/// The committed metadata in the mapping. Callers hold the store's read lock (or the transaction
/// gate, which excludes checkpoints).
struct HomeView: MetaView {
    let sb: Superblock
    let mapping: Mapping
    var verifyChecksums = true
    @inline(__always) func block(_ b: UInt64) -> UnsafeRawPointer { UnsafeRawPointer(mapping.block(b)) }
    @inline(__always) func isPrivate(_ b: UInt64) -> Bool { false }
}

@inline(__always) func ld64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
@inline(__always) func ld32(_ p: UnsafeRawPointer, _ o: Int) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
@inline(__always) func ld16(_ p: UnsafeRawPointer, _ o: Int) -> UInt16 { UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
@inline(__always) func st64(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt64) { p.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt64.self) }
@inline(__always) func st32(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt32) { p.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt32.self) }
@inline(__always) func st16(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt16) { p.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt16.self) }

/// Header shared by the data-area metadata blocks (directory leaf and index, extent overflow, xattr):
/// magic u32, CRC32C u32 of the whole block (this field as zero), owner inode u64.
enum BlockHeader {
    static let size = 32
    static let oMagic = 0, oChecksum = 4, oOwner = 8

    static func seal(_ p: UnsafeMutableRawPointer) {
        st32(p, oChecksum, CRC32C.checksum(p, Layout.blockSize, skippingFieldAt: oChecksum))
    }

    static func initialize(_ p: UnsafeMutableRawPointer, magic: UInt32, owner: UInt64) {
        memset(p, 0, Layout.blockSize)
        st32(p, oMagic, magic)
        st64(p, oOwner, owner)
    }

    /// Validate magic, owner and checksum of a metadata block; the error names the block.
    static func verify(_ p: UnsafeRawPointer, block: UInt64, magic: UInt32, owner: UInt64, what: String, checksum: Bool = true) throws(StoreError) {
        let m = ld32(p, oMagic)
        guard m == magic else { throw .corrupt("\(what) block \(block) of inode \(owner): bad magic 0x\(String(m, radix: 16))") }
        let o = ld64(p, oOwner)
        guard o == owner else { throw .corrupt("\(what) block \(block) belongs to inode \(o), not inode \(owner)") }
        let stored = ld32(p, oChecksum)
        guard !checksum || stored == CRC32C.checksum(p, Layout.blockSize, skippingFieldAt: oChecksum) else {
            throw .corrupt("\(what) block \(block) of inode \(owner): checksum mismatch")
        }
    }
}

/// The 256-byte on-store inode.
///
///     0 mode u32     4 nlink u32    8 uid u32     12 gid u32    16 rdev u64    24 size u64
///    32 blocks u64  40 atime s     48 mtime s     56 ctime s    64/68/72 a/m/ctime ns u32
///    76 generation  80 flags       84 iflags (in use, orphan)    88 orphan next u64
///    96 xattr block 104 extent count u32   108 symlink length u32  112 extent overflow block
///   120 parent (directories)  128 dir depth u32  132 dir leaves u32  136 dir entries u64
///   144 dir root leaf  152..<248 inline area (4 extents, or a symlink target up to 96 bytes, or
///   the symlink block number)  248 symlink block CRC  252 CRC32C of the inode
struct RawInode: Equatable {
    var disk: DiskInode
    var iflags: UInt32 = 0
    var orphanNext: UInt64 = 0
    var xattrBlock: UInt64 = 0
    var extentCount: UInt32 = 0
    var symlinkLength: UInt32 = 0
    var extentOverflow: UInt64 = 0
    var parent: UInt64 = 0
    var dirDepth: UInt32 = 0
    var dirLeaves: UInt32 = 0
    var dirEntries: UInt64 = 0
    var dirRoot: UInt64 = 0
    var aux: UInt32 = 0

    static let inUse: UInt32 = 1
    static let orphan: UInt32 = 2

    static let oInline = 152, inlineBytes = 96, inlineExtents = 4, oAux = 248, oChecksum = 252

    var isInUse: Bool { iflags & RawInode.inUse != 0 }
    var isOrphan: Bool { iflags & RawInode.orphan != 0 }
    var generation: UInt32 { disk.generation }

    static func decode(_ p: UnsafeRawPointer) -> RawInode {
        let d = DiskInode(mode: ld32(p, 0), nlink: ld32(p, 4), uid: ld32(p, 8), gid: ld32(p, 12), rdev: ld64(p, 16),
                          size: ld64(p, 24), blocks: ld64(p, 32),
                          atime: Timespec(seconds: Int64(bitPattern: ld64(p, 40)), nanoseconds: ld32(p, 64)),
                          mtime: Timespec(seconds: Int64(bitPattern: ld64(p, 48)), nanoseconds: ld32(p, 68)),
                          ctime: Timespec(seconds: Int64(bitPattern: ld64(p, 56)), nanoseconds: ld32(p, 72)),
                          generation: ld32(p, 76), flags: ld32(p, 80))
        return RawInode(disk: d, iflags: ld32(p, 84), orphanNext: ld64(p, 88), xattrBlock: ld64(p, 96),
                        extentCount: ld32(p, 104), symlinkLength: ld32(p, 108), extentOverflow: ld64(p, 112),
                        parent: ld64(p, 120), dirDepth: ld32(p, 128), dirLeaves: ld32(p, 132),
                        dirEntries: ld64(p, 136), dirRoot: ld64(p, 144), aux: ld32(p, oAux))
    }

    /// Write the scalar fields (the inline area is left as is) and reseal the inode.
    func encode(_ p: UnsafeMutableRawPointer) {
        st32(p, 0, disk.mode); st32(p, 4, disk.nlink); st32(p, 8, disk.uid); st32(p, 12, disk.gid)
        st64(p, 16, disk.rdev); st64(p, 24, disk.size); st64(p, 32, disk.blocks)
        st64(p, 40, UInt64(bitPattern: disk.atime.seconds)); st64(p, 48, UInt64(bitPattern: disk.mtime.seconds))
        st64(p, 56, UInt64(bitPattern: disk.ctime.seconds))
        st32(p, 64, disk.atime.nanoseconds); st32(p, 68, disk.mtime.nanoseconds); st32(p, 72, disk.ctime.nanoseconds)
        st32(p, 76, disk.generation); st32(p, 80, disk.flags); st32(p, 84, iflags); st64(p, 88, orphanNext)
        st64(p, 96, xattrBlock); st32(p, 104, extentCount); st32(p, 108, symlinkLength); st64(p, 112, extentOverflow)
        st64(p, 120, parent); st32(p, 128, dirDepth); st32(p, 132, dirLeaves); st64(p, 136, dirEntries)
        st64(p, 144, dirRoot); st32(p, RawInode.oAux, aux)
        RawInode.seal(p)
    }

    static func seal(_ p: UnsafeMutableRawPointer) {
        st32(p, oChecksum, CRC32C.checksum(p, Layout.inodeSize, skippingFieldAt: oChecksum))
    }

    static func checksumOK(_ p: UnsafeRawPointer) -> Bool {
        ld32(p, oChecksum) == CRC32C.checksum(p, Layout.inodeSize, skippingFieldAt: oChecksum)
    }
}

extension MetaView {
    @inline(__always) func inodeLocation(_ ino: UInt64) -> (block: UInt64, offset: Int) {
        (sb.inodeTableStart + ino / UInt64(Layout.inodesPerBlock), Int(ino % UInt64(Layout.inodesPerBlock)) * Layout.inodeSize)
    }

    func inodePointer(_ ino: UInt64) -> UnsafeRawPointer {
        let (b, o) = inodeLocation(ino)
        return block(b) + o
    }

    func checkIno(_ ino: UInt64) throws(StoreError) {
        guard ino >= 1, ino < sb.inodeCount else { throw StoreError(EINVAL, "inode number \(ino) is out of range (1..<\(sb.inodeCount))") }
    }

    /// The inode if allocated (in use), nil otherwise. Verifies the inode's checksum.
    func rawInode(_ ino: UInt64) throws(StoreError) -> RawInode? {
        try checkIno(ino)
        let p = inodePointer(ino)
        let iflags = ld32(p, 84)
        if iflags & RawInode.inUse == 0 { return nil }
        guard RawInode.checksumOK(p) else { throw .corrupt("inode \(ino) checksum mismatch") }
        return RawInode.decode(p)
    }

    /// An allocated inode, or ENOENT naming it.
    func inode(_ ino: UInt64) throws(StoreError) -> RawInode {
        guard let i = try rawInode(ino) else { throw StoreError(ENOENT, "inode \(ino) is not allocated") }
        return i
    }

    /// Generation kept in a slot (also after the inode is freed).
    func slotGeneration(_ ino: UInt64) -> UInt32 { ld32(inodePointer(ino), 76) }

    func bitmapBit(start: UInt64, _ n: UInt64) -> Bool {
        let p = block(start + n / Layout.bitsPerBlock)
        let bit = n % Layout.bitsPerBlock
        return p.load(fromByteOffset: Int(bit / 8), as: UInt8.self) & (1 << UInt8(bit % 8)) != 0
    }
    func blockInUse(_ b: UInt64) -> Bool { bitmapBit(start: sb.blockBitmapStart, b) }
    func inodeInUse(_ ino: UInt64) -> Bool { bitmapBit(start: sb.inodeBitmapStart, ino) }
}
