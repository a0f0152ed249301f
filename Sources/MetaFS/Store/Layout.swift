import Glibc

// On-store layout (all integers little-endian, block size 4096):
//
//   block 0                superblock (geometry, clean flag, orphan list head, CRC32C)
//   journal                header block + redo records (descriptor, block images, commit)
//   inode bitmap           1 bit per inode (ino 0 reserved)
//   block bitmap           1 bit per block of the whole store (metadata regions marked used)
//   inode table            256-byte inodes; ino N at byte N*256 of the table
//   data area              file data, directory leaves/index, extent overflow, xattr, symlink blocks

enum Layout {
    static let blockSize = 4096
    static let blockShift = 12
    static let inodeSize = 256
    static let inodesPerBlock = blockSize / inodeSize
    static let bitsPerBlock = UInt64(blockSize * 8)
    static let magic: UInt64 = 0x3152_4F54_5346_544D   // "MTFSTOR1"
    /// 2: the superblock checksum leaves out the two fields written in place at mount and unmount
    /// (state, mount count), so a torn write of them never makes the superblock unreadable; the
    /// journal header block keeps a backup of the superblock's geometry.
    static let version: UInt32 = 2
    static let minimumStoreBytes: UInt64 = 2 << 20
    static let minimumJournalBlocks: UInt64 = 256      // 1 MiB
    static let maximumJournalBlocks: UInt64 = 65536    // 256 MiB
    static let rootIno: UInt64 = 1

    static let stateClean: UInt32 = 1
    static let stateMounted: UInt32 = 2

    // Metadata block magics (first 4 bytes of a block; CRC32C of the block in bytes 4..<8).
    static let dirLeafMagic: UInt32 = 0x4C44_464D      // "MFDL"
    static let dirIndexMagic: UInt32 = 0x4944_464D     // "MFDI"
    static let extentMagic: UInt32 = 0x5845_464D       // "MFEX"
    static let xattrMagic: UInt32 = 0x4158_464D        // "MFXA"
    static let journalHeaderMagic: UInt32 = 0x484A_464D   // "MFJH"
    static let journalDescriptorMagic: UInt32 = 0x444A_464D // "MFJD"
    static let journalCommitMagic: UInt32 = 0x434A_464D // "MFJC"
}

/// The superblock: where every region is, plus the few mutable fields.
struct Superblock: Equatable {
    var fileSize: UInt64
    var totalBlocks: UInt64
    var inodeCount: UInt64
    var journalStart: UInt64
    var journalBlocks: UInt64
    var inodeBitmapStart: UInt64
    var inodeBitmapBlocks: UInt64
    var blockBitmapStart: UInt64
    var blockBitmapBlocks: UInt64
    var inodeTableStart: UInt64
    var inodeTableBlocks: UInt64
    var dataStart: UInt64
    var state: UInt32
    var orphanHead: UInt64
    var createdSeconds: Int64
    var mountCount: UInt64

    // Field offsets.
    static let oMagic = 0, oVersion = 8, oBlockSize = 12, oFileSize = 16, oTotalBlocks = 24, oInodeCount = 32
    static let oJournalStart = 40, oJournalBlocks = 48, oIBStart = 56, oIBBlocks = 64, oBBStart = 72
    static let oBBBlocks = 80, oITStart = 88, oITBlocks = 96, oDataStart = 104, oState = 112, oChecksum = 116
    static let oOrphanHead = 120, oCreated = 128, oMountCount = 136
    static let headerBytes = 256
    /// The checksum covers the whole block, including the bitmap checksum table, except the state
    /// and mount count: those are written in place (not journaled) at open and close, each with one
    /// aligned store, so any subset of them landing leaves a valid superblock.
    static let checkedBytes = Layout.blockSize
    /// Where the backup of the first `headerBytes` bytes (geometry) lives in the journal header block.
    static let oBackup = 2048
    /// CRC32C of each bitmap block (inode bitmap, then block bitmap), from byte 512: 896 entries,
    /// enough for stores up to ~89 GiB; bitmap blocks past the table are not checksummed.
    static let oBitmapCRCs = 512
    static let maxBitmapCRCs = (Layout.blockSize - oBitmapCRCs) / 4

    /// Geometry for a new store of `size` bytes.
    static func geometry(size: UInt64, inodeCount requested: UInt64?) throws(StoreError) -> Superblock {
        let bs = UInt64(Layout.blockSize)
        guard size >= Layout.minimumStoreBytes else {
            throw .invalid("store size \(size) bytes is below the minimum of \(Layout.minimumStoreBytes) bytes")
        }
        let total = size / bs
        var inodes = requested ?? max(64, size / 16384)
        inodes = max(inodes, 16)
        inodes = (inodes + 15) / 16 * 16
        guard inodes < UInt64(UInt32.max) else { throw .invalid("inode count \(inodes) is above the limit of 2^32") }
        let journal = min(max(total / 32, Layout.minimumJournalBlocks), Layout.maximumJournalBlocks)
        let ibBlocks = (inodes + Layout.bitsPerBlock - 1) / Layout.bitsPerBlock
        let bbBlocks = (total + Layout.bitsPerBlock - 1) / Layout.bitsPerBlock
        let itBlocks = inodes / UInt64(Layout.inodesPerBlock)
        let sb = Superblock(fileSize: total * bs, totalBlocks: total, inodeCount: inodes,
                            journalStart: 1, journalBlocks: journal,
                            inodeBitmapStart: 1 + journal, inodeBitmapBlocks: ibBlocks,
                            blockBitmapStart: 1 + journal + ibBlocks, blockBitmapBlocks: bbBlocks,
                            inodeTableStart: 1 + journal + ibBlocks + bbBlocks, inodeTableBlocks: itBlocks,
                            dataStart: 1 + journal + ibBlocks + bbBlocks + itBlocks,
                            state: Layout.stateClean, orphanHead: 0, createdSeconds: Int64(time(nil)), mountCount: 0)
        guard sb.dataStart + 16 <= total else {
            throw .invalid("store of \(size) bytes leaves no data blocks after \(sb.dataStart) metadata blocks (\(inodes) inodes); use fewer inodes or a larger store")
        }
        return sb
    }

    func encode(into p: UnsafeMutableRawPointer) {
        encodeHeader(into: p)
        Superblock.seal(p)
    }

    /// The header fields only (no checksum).
    func encodeHeader(into p: UnsafeMutableRawPointer) {
        memset(p, 0, Superblock.headerBytes)
        p.storeBytes(of: Layout.magic.littleEndian, toByteOffset: Self.oMagic, as: UInt64.self)
        p.storeBytes(of: Layout.version.littleEndian, toByteOffset: Self.oVersion, as: UInt32.self)
        p.storeBytes(of: UInt32(Layout.blockSize).littleEndian, toByteOffset: Self.oBlockSize, as: UInt32.self)
        p.storeBytes(of: fileSize.littleEndian, toByteOffset: Self.oFileSize, as: UInt64.self)
        p.storeBytes(of: totalBlocks.littleEndian, toByteOffset: Self.oTotalBlocks, as: UInt64.self)
        p.storeBytes(of: inodeCount.littleEndian, toByteOffset: Self.oInodeCount, as: UInt64.self)
        p.storeBytes(of: journalStart.littleEndian, toByteOffset: Self.oJournalStart, as: UInt64.self)
        p.storeBytes(of: journalBlocks.littleEndian, toByteOffset: Self.oJournalBlocks, as: UInt64.self)
        p.storeBytes(of: inodeBitmapStart.littleEndian, toByteOffset: Self.oIBStart, as: UInt64.self)
        p.storeBytes(of: inodeBitmapBlocks.littleEndian, toByteOffset: Self.oIBBlocks, as: UInt64.self)
        p.storeBytes(of: blockBitmapStart.littleEndian, toByteOffset: Self.oBBStart, as: UInt64.self)
        p.storeBytes(of: blockBitmapBlocks.littleEndian, toByteOffset: Self.oBBBlocks, as: UInt64.self)
        p.storeBytes(of: inodeTableStart.littleEndian, toByteOffset: Self.oITStart, as: UInt64.self)
        p.storeBytes(of: inodeTableBlocks.littleEndian, toByteOffset: Self.oITBlocks, as: UInt64.self)
        p.storeBytes(of: dataStart.littleEndian, toByteOffset: Self.oDataStart, as: UInt64.self)
        p.storeBytes(of: state.littleEndian, toByteOffset: Self.oState, as: UInt32.self)
        p.storeBytes(of: orphanHead.littleEndian, toByteOffset: Self.oOrphanHead, as: UInt64.self)
        p.storeBytes(of: createdSeconds.littleEndian, toByteOffset: Self.oCreated, as: Int64.self)
        p.storeBytes(of: mountCount.littleEndian, toByteOffset: Self.oMountCount, as: UInt64.self)
    }

    /// Recompute the checksum of a superblock image in place.
    static func seal(_ p: UnsafeMutableRawPointer) {
        let c = checksum(p)
        p.storeBytes(of: c.littleEndian, toByteOffset: oChecksum, as: UInt32.self)
    }

    /// CRC32C of a superblock image with the checksum, state and mount count taken as zero.
    static func checksum(_ p: UnsafeRawPointer) -> UInt32 {
        withUnsafeTemporaryAllocation(byteCount: checkedBytes, alignment: 64) { buf in
            let q = buf.baseAddress!
            q.copyMemory(from: p, byteCount: checkedBytes)
            st32(q, oState, 0); st32(q, oChecksum, 0); st64(q, oMountCount, 0)
            return CRC32C.checksum(q, checkedBytes)
        }
    }

    /// Keep a copy of the geometry (state clean, no orphans) in the journal header block `jp`, with
    /// its own CRC32C after it. Only `metafs fsck --repair` reads it (a zeroed or damaged superblock).
    func writeBackup(into jp: UnsafeMutableRawPointer) {
        var copy = self
        copy.state = Layout.stateClean; copy.orphanHead = 0; copy.mountCount = 0
        let q = jp + Superblock.oBackup
        copy.encodeHeader(into: q)
        st32(q, Superblock.headerBytes, CRC32C.checksum(q, Superblock.headerBytes))
    }

    /// The geometry backup in the journal header block, if it is intact.
    static func readBackup(_ jp: UnsafeRawPointer, fileSize: UInt64) throws(StoreError) -> Superblock {
        let q = jp + oBackup
        guard ld32(q, headerBytes) == CRC32C.checksum(q, headerBytes) else {
            throw .corrupt("the superblock backup in the journal header block is damaged too")
        }
        // The backup holds only the header: rebuild a full block to decode it.
        return try withUnsafeTemporaryAllocation(byteCount: Layout.blockSize, alignment: 64) { (buf) throws(StoreError) -> Superblock in
            let p = buf.baseAddress!
            memset(p, 0, Layout.blockSize)
            p.copyMemory(from: q, byteCount: headerBytes)
            seal(p)
            return try decode(UnsafeRawPointer(p), fileSize: fileSize)
        }
    }

    /// Decode and validate a superblock image; `fileSize` is the store file's actual size.
    static func decode(_ p: UnsafeRawPointer, fileSize actual: UInt64) throws(StoreError) -> Superblock {
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        let magic = u64(oMagic)
        if magic == 0 { throw .corrupt("bad superblock magic (superblock is zeroed)") }
        guard magic == Layout.magic else {
            throw .corrupt("bad superblock magic 0x\(String(magic, radix: 16)) (not a metafs store)")
        }
        let version = u32(oVersion)
        guard version == Layout.version else { throw .corrupt("unsupported store version \(version) (expected \(Layout.version))") }
        let stored = u32(oChecksum)
        let computed = checksum(p)
        guard stored == computed else {
            throw .corrupt("superblock checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        let bs = u32(oBlockSize)
        guard bs == UInt32(Layout.blockSize) else { throw .corrupt("superblock block size \(bs) is not \(Layout.blockSize)") }
        let sb = Superblock(fileSize: u64(oFileSize), totalBlocks: u64(oTotalBlocks), inodeCount: u64(oInodeCount),
                            journalStart: u64(oJournalStart), journalBlocks: u64(oJournalBlocks),
                            inodeBitmapStart: u64(oIBStart), inodeBitmapBlocks: u64(oIBBlocks),
                            blockBitmapStart: u64(oBBStart), blockBitmapBlocks: u64(oBBBlocks),
                            inodeTableStart: u64(oITStart), inodeTableBlocks: u64(oITBlocks),
                            dataStart: u64(oDataStart), state: u32(oState), orphanHead: u64(oOrphanHead),
                            createdSeconds: Int64(bitPattern: u64(oCreated)), mountCount: u64(oMountCount))
        if actual != sb.fileSize {
            throw .corrupt(actual < sb.fileSize ? "store file is truncated: \(actual) bytes, the superblock says \(sb.fileSize)"
                                                : "store file is \(actual) bytes, the superblock says \(sb.fileSize)")
        }
        try sb.validateGeometry()
        guard sb.state == Layout.stateClean || sb.state == Layout.stateMounted else {
            throw .corrupt("superblock state field holds an impossible value \(sb.state)")
        }
        return sb
    }

    /// The geometry of a superblock whose checksum does not match (a torn in-place write, to be
    /// repaired by the journal): the static fields, if they are consistent with the file.
    static func decodeUnverified(_ p: UnsafeRawPointer, fileSize actual: UInt64) -> Superblock? {
        func u64(_ o: Int) -> UInt64 { ld64(p, o) }
        guard u64(oMagic) == Layout.magic, ld32(p, oVersion) == Layout.version, ld32(p, oBlockSize) == UInt32(Layout.blockSize) else { return nil }
        let sb = Superblock(fileSize: u64(oFileSize), totalBlocks: u64(oTotalBlocks), inodeCount: u64(oInodeCount),
                            journalStart: u64(oJournalStart), journalBlocks: u64(oJournalBlocks),
                            inodeBitmapStart: u64(oIBStart), inodeBitmapBlocks: u64(oIBBlocks),
                            blockBitmapStart: u64(oBBStart), blockBitmapBlocks: u64(oBBBlocks),
                            inodeTableStart: u64(oITStart), inodeTableBlocks: u64(oITBlocks),
                            dataStart: u64(oDataStart), state: Layout.stateMounted, orphanHead: 0,
                            createdSeconds: Int64(bitPattern: u64(oCreated)), mountCount: 0)
        guard sb.fileSize == actual, (try? sb.validateGeometry()) != nil else { return nil }
        return sb
    }

    func validateGeometry() throws(StoreError) {
        let bs = UInt64(Layout.blockSize)
        let (bytes, overflow) = totalBlocks.multipliedReportingOverflow(by: bs)
        guard !overflow, bytes == fileSize else { throw .corrupt("superblock geometry: \(totalBlocks) blocks do not make \(fileSize) bytes") }
        guard inodeCount >= 16, inodeCount % 16 == 0, inodeCount < UInt64(UInt32.max) else {
            throw .corrupt("superblock geometry: bad inode count \(inodeCount)")
        }
        guard journalStart == 1, journalBlocks >= Layout.minimumJournalBlocks, journalBlocks <= Layout.maximumJournalBlocks else {
            throw .corrupt("superblock geometry: bad journal \(journalStart)+\(journalBlocks)")
        }
        guard inodeBitmapStart == journalStart + journalBlocks,
              inodeBitmapBlocks == (inodeCount + Layout.bitsPerBlock - 1) / Layout.bitsPerBlock,
              blockBitmapStart == inodeBitmapStart + inodeBitmapBlocks,
              blockBitmapBlocks == (totalBlocks + Layout.bitsPerBlock - 1) / Layout.bitsPerBlock,
              inodeTableStart == blockBitmapStart + blockBitmapBlocks,
              inodeTableBlocks == inodeCount / UInt64(Layout.inodesPerBlock),
              dataStart == inodeTableStart + inodeTableBlocks,
              dataStart < totalBlocks else {
            throw .corrupt("superblock geometry: regions are inconsistent")
        }
        guard orphanHead < inodeCount else { throw .corrupt("superblock orphan list head \(orphanHead) is out of range") }
    }

    var bitmapBlocks: UInt64 { inodeBitmapBlocks + blockBitmapBlocks }

    /// The bitmap-checksum slot of block `b`, if it is a checksummed bitmap block.
    func bitmapCRCSlot(_ b: UInt64) -> Int? {
        guard b >= inodeBitmapStart, b < inodeBitmapStart + bitmapBlocks else { return nil }
        let i = Int(b - inodeBitmapStart)
        return i < Superblock.maxBitmapCRCs ? Superblock.oBitmapCRCs + i * 4 : nil
    }

    /// Name the first bitmap block whose checksum does not match the table in the superblock image `sp`.
    func verifyBitmaps(superblock sp: UnsafeRawPointer, block: (UInt64) -> UnsafeRawPointer) throws(StoreError) {
        for b in inodeBitmapStart..<inodeBitmapStart + bitmapBlocks {
            guard let slot = bitmapCRCSlot(b) else { break }
            if ld32(sp, slot) != CRC32C.checksum(block(b), Layout.blockSize) {
                let inInodes = b < blockBitmapStart
                let n = inInodes ? b - inodeBitmapStart : b - blockBitmapStart
                throw .corrupt("\(inInodes ? "inode" : "block") bitmap block \(n) checksum mismatch")
            }
        }
    }

    /// The number of blocks a transaction may modify so that it fits the journal.
    var maxTransactionBlocks: Int {
        let usable = Int(journalBlocks) - 3   // header, commit block, and room for the superblock
        let perDescriptor = JournalFormat.tagsPerDescriptor
        // n data blocks need ceil(n / perDescriptor) descriptors.
        return usable - (usable + perDescriptor) / (perDescriptor + 1)
    }
}
