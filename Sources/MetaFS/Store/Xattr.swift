import Glibc

// Extended attributes: all of an inode's xattrs in one block (as ext4 without inline xattrs):
// header (magic, CRC, owner), count u32 @16, used u32 @20; entries from byte 32:
// name length u8, value length u16, name, value.
//
// Symlinks: a target of up to 96 bytes lives in the inode's inline area; a longer one (up to 4095
// bytes) in a block of its own whose CRC32C is kept in the inode.

enum XattrFormat {
    static let oCount = 16, oUsed = 20
    static let entryHeader = 3
    static let maxName = 255
}

enum SymlinkFormat {
    static let maxInline = RawInode.inlineBytes
    static let maxTarget = Layout.blockSize - 1
}

extension MetaView {
    func xattrList(_ ino: UInt64, _ raw: RawInode) throws(StoreError) -> [(name: [UInt8], value: [UInt8])] {
        guard raw.xattrBlock != 0 else { return [] }
        let b = raw.xattrBlock
        guard b >= sb.dataStart, b < sb.totalBlocks else { throw .corrupt("inode \(ino): xattr block \(b) is outside the data area") }
        let p = block(b)
        try verifyBlock(b, magic: Layout.xattrMagic, owner: ino, what: "xattr")
        let count = Int(ld32(p, XattrFormat.oCount)), used = Int(ld32(p, XattrFormat.oUsed))
        guard used >= BlockHeader.size, used <= Layout.blockSize else { throw .corrupt("inode \(ino): xattr block \(b) has a bad length") }
        var out: [(name: [UInt8], value: [UInt8])] = []
        var o = BlockHeader.size
        for _ in 0..<count {
            guard o + XattrFormat.entryHeader <= used else { throw .corrupt("inode \(ino): xattr block \(b) is truncated") }
            let nl = Int(p.load(fromByteOffset: o, as: UInt8.self))
            let vl = Int(ld16(p, o + 1))
            guard nl > 0, o + XattrFormat.entryHeader + nl + vl <= used else { throw .corrupt("inode \(ino): xattr block \(b) has a bad entry") }
            let name = Array(UnsafeRawBufferPointer(start: p + o + 3, count: nl))
            let value = Array(UnsafeRawBufferPointer(start: p + o + 3 + nl, count: vl))
            out.append((name, value))
            o += XattrFormat.entryHeader + nl + vl
        }
        return out
    }

    func symlinkBlock(_ raw: RawInode) -> UInt64? {
        guard raw.disk.mode & 0o170000 == 0o120000, Int(raw.symlinkLength) > SymlinkFormat.maxInline else { return nil }
        return raw.extentOverflow   // a long symlink's block number is kept in the overflow field
    }

    func symlinkTarget(_ ino: UInt64, _ raw: RawInode) throws(StoreError) -> [UInt8] {
        guard raw.disk.mode & 0o170000 == 0o120000 else { throw .invalid("inode \(ino) is not a symbolic link") }
        let n = Int(raw.symlinkLength)
        guard n <= SymlinkFormat.maxTarget else { throw .corrupt("inode \(ino): symlink length \(n) is impossible") }
        if n <= SymlinkFormat.maxInline {
            return Array(UnsafeRawBufferPointer(start: inodePointer(ino) + RawInode.oInline, count: n))
        }
        let b = raw.extentOverflow
        guard b >= sb.dataStart, b < sb.totalBlocks else { throw .corrupt("inode \(ino): symlink block \(b) is outside the data area") }
        let p = block(b)
        guard CRC32C.checksum(p, n) == raw.aux else { throw .corrupt("inode \(ino): symlink block \(b) checksum mismatch") }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}

extension Store {
    /// Whether a set of xattrs fits the one xattr block an inode has (`setXattrs` fails with
    /// ENOSPC otherwise): callers check first rather than fail a whole commit.
    public static func xattrsFit(_ xattrs: [(name: [UInt8], value: [UInt8])]) -> Bool {
        var need = BlockHeader.size
        for x in xattrs { need += XattrFormat.entryHeader + x.name.count + x.value.count }
        return need <= Layout.blockSize
    }
}

extension StoreTransaction {
    func writeXattrs(_ ino: UInt64, _ xattrs: [(name: [UInt8], value: [UInt8])]) throws(StoreError) {
        var raw = try inode(ino)
        var need = BlockHeader.size
        for x in xattrs {
            guard x.name.count > 0, x.name.count <= XattrFormat.maxName else {
                throw StoreError(x.name.count == 0 ? EINVAL : ERANGE, "xattr name of \(x.name.count) bytes")
            }
            need += XattrFormat.entryHeader + x.name.count + x.value.count
        }
        guard need <= Layout.blockSize else {
            throw .noSpace("inode \(ino): xattrs need \(need) bytes, more than the \(Layout.blockSize)-byte xattr block")
        }
        if xattrs.isEmpty {
            if raw.xattrBlock != 0 { try freeMetaBlock(raw.xattrBlock); raw.xattrBlock = 0; try putInode(ino, raw) }
            return
        }
        let p: UnsafeMutableRawPointer
        if raw.xattrBlock != 0 {
            p = try modify(raw.xattrBlock, header: true)
            BlockHeader.initialize(p, magic: Layout.xattrMagic, owner: ino)
        } else {
            let (b, bp) = try allocateMetaBlock(goal: sb.dataStart + ino % max(1, sb.totalBlocks - sb.dataStart), magic: Layout.xattrMagic, owner: ino)
            raw.xattrBlock = b
            p = bp
            try putInode(ino, raw)
        }
        var o = BlockHeader.size
        for x in xattrs {
            p.storeBytes(of: UInt8(x.name.count), toByteOffset: o, as: UInt8.self)
            st16(p, o + 1, UInt16(x.value.count))
            x.name.withUnsafeBytes { (p + o + 3).copyMemory(from: $0.baseAddress!, byteCount: x.name.count) }
            if !x.value.isEmpty { x.value.withUnsafeBytes { (p + o + 3 + x.name.count).copyMemory(from: $0.baseAddress!, byteCount: x.value.count) } }
            o += XattrFormat.entryHeader + x.name.count + x.value.count
        }
        st32(p, XattrFormat.oCount, UInt32(xattrs.count))
        st32(p, XattrFormat.oUsed, UInt32(o))
    }

    func writeSymlink(_ ino: UInt64, _ target: [UInt8]) throws(StoreError) {
        var raw = try inode(ino)
        guard raw.disk.mode & 0o170000 == 0o120000 else { throw .invalid("setSymlink on inode \(ino), which is not a symbolic link") }
        guard !target.isEmpty else { throw StoreError(ENOENT, "empty symlink target") }
        guard target.count <= SymlinkFormat.maxTarget else { throw StoreError(ENAMETOOLONG, "symlink target of \(target.count) bytes is longer than \(SymlinkFormat.maxTarget)") }
        let oldBlock = symlinkBlock(raw)
        if target.count <= SymlinkFormat.maxInline {
            if let b = oldBlock { try freeMetaBlock(b) }
            raw.extentOverflow = 0; raw.aux = 0
            raw.symlinkLength = UInt32(target.count)
            let p = try modifyInode(ino)
            raw.encode(p)
            memset(p + RawInode.oInline, 0, RawInode.inlineBytes)
            target.withUnsafeBytes { (p + RawInode.oInline).copyMemory(from: $0.baseAddress!, byteCount: target.count) }
            RawInode.seal(p)
            return
        }
        let b: UInt64
        if let old = oldBlock {
            b = old
        } else {
            b = try store.allocateMetaBlock(goal: sb.dataStart + ino % max(1, sb.totalBlocks - sb.dataStart))
            metaBlocks.append(b)
            try setBlockBit(b, true)
        }
        let p = try modify(b)
        memset(p, 0, Layout.blockSize)
        target.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: target.count) }
        raw.extentOverflow = b
        raw.symlinkLength = UInt32(target.count)
        raw.aux = CRC32C.checksum(p, target.count)
        let ip = try modifyInode(ino)
        raw.encode(ip)
        memset(ip + RawInode.oInline, 0, RawInode.inlineBytes)
        RawInode.seal(ip)
    }
}
