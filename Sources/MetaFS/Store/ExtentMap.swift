import Glibc

// Extent maps. Up to 4 extents live in the inode's inline area; more go, all of them, to a chain
// of extent overflow blocks (header: magic, CRC, owner, next block @16, count @24; 169 extents of
// 24 bytes each from byte 32). An extent: logical u64, physical u64, length u32, flags u32
// (bit 0: unwritten). Directories keep their index and leaf blocks in the same map.

enum ExtentFormat {
    static let size = 24
    static let oNext = 16, oCount = 24
    static let perBlock = (Layout.blockSize - BlockHeader.size) / size   // 169

    static func load(_ p: UnsafeRawPointer) -> StoreExtent {
        StoreExtent(logical: ld64(p, 0), length: ld32(p, 16), physical: ld64(p, 8), unwritten: ld32(p, 20) & 1 != 0)
    }
    static func store(_ e: StoreExtent, _ p: UnsafeMutableRawPointer) {
        st64(p, 0, e.logical); st64(p, 8, e.physical); st32(p, 16, e.length); st32(p, 20, e.unwritten ? 1 : 0)
    }
}

extension MetaView {
    /// Check a data-area metadata block's magic and owner, and its checksum unless it is a private
    /// (not yet sealed) image of the transaction reading it.
    func verifyBlock(_ b: UInt64, magic: UInt32, owner: UInt64, what: String) throws(StoreError) {
        try BlockHeader.verify(block(b), block: b, magic: magic, owner: owner, what: what, checksum: verifyChecksums && !isPrivate(b))
    }

    /// Visit the overflow blocks of an inode's extent map (verifying each).
    func forEachOverflowBlock(_ ino: UInt64, _ raw: RawInode, _ body: (UInt64) throws(StoreError) -> Void) throws(StoreError) {
        guard raw.extentCount > UInt32(RawInode.inlineExtents) else { return }
        var b = raw.extentOverflow
        var seen: UInt64 = 0
        let expectedBlocks = (UInt64(raw.extentCount) + UInt64(ExtentFormat.perBlock) - 1) / UInt64(ExtentFormat.perBlock)
        while b != 0 {
            guard b >= sb.dataStart, b < sb.totalBlocks else { throw .corrupt("inode \(ino): extent overflow block \(b) is outside the data area") }
            seen += 1
            guard seen <= expectedBlocks else { throw .corrupt("inode \(ino): extent overflow chain is longer than its \(raw.extentCount) extents need") }
            let p = block(b)
            try verifyBlock(b, magic: Layout.extentMagic, owner: ino, what: "extent overflow")
            try body(b)
            b = ld64(p, ExtentFormat.oNext)
        }
        guard seen == expectedBlocks else { throw .corrupt("inode \(ino): extent overflow chain has \(seen) blocks, \(expectedBlocks) expected") }
    }

    /// An extent as stored, checked to lie in the data area (so that arithmetic on it is safe).
    func loadExtent(_ ino: UInt64, _ p: UnsafeRawPointer) throws(StoreError) -> StoreExtent {
        let e = ExtentFormat.load(p)
        guard e.length > 0, e.physical >= sb.dataStart, e.physical < sb.totalBlocks,
              UInt64(e.length) <= sb.totalBlocks - e.physical, e.logical <= UInt64.max - UInt64(e.length) else {
            throw .corrupt("inode \(ino): extent (logical \(e.logical), physical \(e.physical), length \(e.length)) is invalid")
        }
        return e
    }

    /// Visit extents in order; body returns false to stop.
    func forEachExtent(_ ino: UInt64, _ raw: RawInode, _ body: (StoreExtent) -> Bool) throws(StoreError) {
        let n = Int(raw.extentCount)
        if n <= RawInode.inlineExtents {
            let p = inodePointer(ino) + RawInode.oInline
            for i in 0..<n where !body(try loadExtent(ino, p + i * ExtentFormat.size)) { return }
            return
        }
        var remaining = n
        var stop = false
        try forEachOverflowBlock(ino, raw) { (b) throws(StoreError) in
            if stop { return }
            let p = block(b)
            let c = Int(ld32(p, ExtentFormat.oCount))
            guard c <= ExtentFormat.perBlock, c <= remaining else { throw .corrupt("inode \(ino): extent overflow block \(b) has a bad count \(c)") }
            remaining -= c
            for i in 0..<c where !body(try loadExtent(ino, p + BlockHeader.size + i * ExtentFormat.size)) { stop = true; return }
        }
        if !stop && remaining != 0 { throw .corrupt("inode \(ino): extent map holds fewer extents than its count \(n)") }
    }

    func readExtentList(_ ino: UInt64, _ raw: RawInode) throws(StoreError) -> [StoreExtent] {
        var list: [StoreExtent] = []
        list.reserveCapacity(Int(raw.extentCount))
        try forEachExtent(ino, raw) { list.append($0); return true }
        return list
    }

    /// The extent covering logical `block`, nil for a hole.
    func extentCovering(_ ino: UInt64, _ raw: RawInode, _ logical: UInt64) throws(StoreError) -> StoreExtent? {
        var found: StoreExtent?
        try forEachExtent(ino, raw) { e in
            if e.logical > logical { return false }
            if logical < e.end { found = e; return false }
            return true
        }
        return found
    }

    /// The first extent ending after logical `block`.
    func extentAfter(_ ino: UInt64, _ raw: RawInode, _ logical: UInt64) throws(StoreError) -> StoreExtent? {
        var found: StoreExtent?
        try forEachExtent(ino, raw) { e in
            if e.end > logical { found = e; return false }
            return true
        }
        return found
    }

    /// Physical block of logical block `logical` of inode `ino`, nil for a hole.
    func mapBlock(_ ino: UInt64, _ raw: RawInode, _ logical: UInt64) throws(StoreError) -> UInt64? {
        guard let e = try extentCovering(ino, raw, logical) else { return nil }
        return e.physical + (logical - e.logical)
    }
}

/// Interval arithmetic on physical block ranges.
func sortedRanges(_ list: [StoreExtent]) -> [(UInt64, UInt64)] {
    list.map { ($0.physical, $0.physicalEnd) }.sorted { $0.0 < $1.0 }
}

/// Blocks in `a` not in `b` (both sorted lists of half-open, non-overlapping ranges).
func subtract(_ a: [(UInt64, UInt64)], _ b: [(UInt64, UInt64)]) -> [(UInt64, UInt64)] {
    var out: [(UInt64, UInt64)] = []
    var j = 0
    for (s0, e) in a {
        var s = s0
        while j < b.count && b[j].1 <= s { j += 1 }
        var k = j
        while s < e {
            if k < b.count && b[k].0 < e {
                if b[k].0 > s { out.append((s, b[k].0)) }
                s = max(s, b[k].1)
                k += 1
            } else {
                out.append((s, e)); s = e
            }
        }
    }
    return out
}

extension StoreTransaction {
    /// Write an extent list (inline or overflow chain), reusing/allocating/freeing overflow blocks.
    /// Updates `raw.extentCount` / `raw.extentOverflow` and writes the inode.
    func storeExtentList(_ ino: UInt64, _ raw: inout RawInode, _ list: [StoreExtent]) throws(StoreError) {
        var chain: [UInt64] = []
        try forEachOverflowBlock(ino, raw) { chain.append($0) }
        if list.count <= RawInode.inlineExtents {
            for b in chain { try freeMetaBlock(b) }
            raw.extentCount = UInt32(list.count)
            raw.extentOverflow = 0
            try putInode(ino, raw)
            let p = try modifyInode(ino) + RawInode.oInline
            memset(p, 0, RawInode.inlineExtents * ExtentFormat.size)
            for (i, e) in list.enumerated() { ExtentFormat.store(e, p + i * ExtentFormat.size) }
            RawInode.seal(p - RawInode.oInline)
            return
        }
        let needed = (list.count + ExtentFormat.perBlock - 1) / ExtentFormat.perBlock
        while chain.count > needed { try freeMetaBlock(chain.removeLast()) }
        let goal = list.first?.physical ?? sb.dataStart
        while chain.count < needed {
            let (b, _) = try allocateMetaBlock(goal: chain.last ?? goal, magic: Layout.extentMagic, owner: ino)
            chain.append(b)
        }
        for (k, b) in chain.enumerated() {
            let p = try modify(b, header: true)
            BlockHeader.initialize(p, magic: Layout.extentMagic, owner: ino)
            st64(p, ExtentFormat.oNext, k + 1 < chain.count ? chain[k + 1] : 0)
            let lo = k * ExtentFormat.perBlock
            let hi = min(lo + ExtentFormat.perBlock, list.count)
            st32(p, ExtentFormat.oCount, UInt32(hi - lo))
            for i in lo..<hi { ExtentFormat.store(list[i], p + BlockHeader.size + (i - lo) * ExtentFormat.size) }
        }
        raw.extentCount = UInt32(list.count)
        raw.extentOverflow = chain[0]
        let p = try modifyInode(ino)
        raw.encode(p)
        memset(p + RawInode.oInline, 0, RawInode.inlineBytes)
        RawInode.seal(p)
    }

    func validateExtents(_ ino: UInt64, _ list: [StoreExtent]) throws(StoreError) {
        var lastEnd: UInt64 = 0
        for (i, e) in list.enumerated() {
            guard e.length > 0 else { throw .invalid("inode \(ino): extent \(i) has length 0") }
            guard i == 0 || e.logical >= lastEnd else { throw .invalid("inode \(ino): extents are not sorted or overlap at logical block \(e.logical)") }
            guard e.logical <= UInt64.max - UInt64(e.length) else { throw .invalid("inode \(ino): extent \(i) overflows") }
            guard e.physical >= sb.dataStart, e.physical <= sb.totalBlocks, e.physicalEnd <= sb.totalBlocks else {
                throw .invalid("inode \(ino): extent \(i) maps blocks \(e.physical)..<\(e.physicalEnd) outside the data area")
            }
            lastEnd = e.end
        }
        let ranges = sortedRanges(list)
        for i in 1..<max(1, ranges.count) where ranges[i].0 < ranges[i - 1].1 {
            throw .invalid("inode \(ino): two extents map the same physical block \(ranges[i].0)")
        }
    }

    func replaceExtents(_ ino: UInt64, _ list: [StoreExtent]) throws(StoreError) {
        var raw = try inode(ino)
        let type = raw.disk.mode & 0o170000
        guard type != 0o040000 else { throw StoreError(EISDIR, "setExtents on directory inode \(ino): the store manages directory blocks") }
        guard type != 0o120000 else { throw .invalid("setExtents on symlink inode \(ino)") }
        try validateExtents(ino, list)
        let old = try readExtentList(ino, raw)
        let oldR = sortedRanges(old), newR = sortedRanges(list)
        let dropped = subtract(oldR, newR)
        let added = subtract(newR, oldR)
        for (s, e) in dropped {
            for b in s..<e { try setBlockBit(b, false); freedBlocks.append(b) }
        }
        for (s, e) in added {
            for b in s..<e {
                if blockInUse(b) { throw StoreError(EIO, "inode \(ino): block \(b) is already in use on the store") }
                store.claimBlockIfFree(b)
                try setBlockBit(b, true)
                usedBlocks.append(b)
            }
        }
        try storeExtentList(ino, &raw, list)
    }

    /// Map one more block (a directory block) into an inode's extent map, merging when contiguous.
    func appendBlock(_ ino: UInt64, _ raw: inout RawInode, logical: UInt64, physical: UInt64) throws(StoreError) {
        var list = try readExtentList(ino, raw)
        let new = StoreExtent(logical: logical, length: 1, physical: physical)
        var i = list.count
        while i > 0 && list[i - 1].logical > logical { i -= 1 }
        if i > 0, list[i - 1].end == logical, list[i - 1].physicalEnd == physical, list[i - 1].length < UInt32.max, !list[i - 1].unwritten {
            list[i - 1].length += 1
        } else {
            list.insert(new, at: i)
        }
        try storeExtentList(ino, &raw, list)
    }
}
