import Glibc

// Directories: extendible hashing over 62-bit name hashes.
//
// A directory's entries live in leaf blocks; a leaf of local depth L holds the names whose hash has
// the L-bit prefix `prefix`, sorted by hash. While the directory has one leaf (global depth 0) the
// inode points at it (dirRoot); then an index of 2^G leaf block numbers (508 per index block, at
// logical blocks 0..< of the directory's extent map) maps a hash's top G bits to its leaf. A full
// leaf splits in two (doubling the index when L == G); entries never need a linear scan of the
// directory. Leaves sit at logical blocks 2^32 + n of the map.
//
// readdir walks the leaves in hash order; a cookie is the entry's hash + 16, so it stays valid
// across inserts, removals and splits (the ext4 htree approach; two names with the same 62-bit hash
// in one directory could make a resumed readdir skip one).
//
// Leaf: header (magic, CRC, owner), prefix u64 @16, depth u16 @24, count u16 @26, used u16 @28;
// records from byte 32: hash u64, ino u64, type u8, name length u8, name.

enum DirFormat {
    static let oPrefix = 16, oDepth = 24, oCount = 26, oUsed = 28
    static let recordHeader = 18
    static let indexPerBlock = (Layout.blockSize - BlockHeader.size) / 8   // 508
    static let leafBase: UInt64 = 1 << 32
    static let keyBits = 62
    static let cookieBias: UInt64 = 16
    static let maxName = 255
    /// Deepest hash index (2^20 leaves, some 100 million entries).
    static let maxDepth: UInt32 = 20
    static let maxRecords = (Layout.blockSize - BlockHeader.size) / (recordHeader + 1)

    /// 62-bit hash of a name (FNV-1a, then a murmur3 finalizer for good top bits).
    static func hash(_ name: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        h ^= h >> 33; h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33; h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h >> 2
    }
    static func hash(_ name: [UInt8]) -> UInt64 { name.withUnsafeBytes { hash($0) } }

    static func validate(_ name: UnsafeRawBufferPointer) throws(StoreError) {
        guard name.count > 0 else { throw .invalid("empty file name") }
        guard name.count <= maxName else { throw StoreError(ENAMETOOLONG, "file name of \(name.count) bytes is longer than \(maxName)") }
        for b in name where b == 0 || b == UInt8(ascii: "/") {
            throw .invalid("file name contains \(b == 0 ? "NUL" : "'/'")")
        }
    }
}

extension MetaView {
    func directoryInode(_ dir: UInt64) throws(StoreError) -> RawInode {
        let raw = try inode(dir)
        guard raw.disk.isDirectory else { throw StoreError(ENOTDIR, "inode \(dir) is not a directory") }
        return raw
    }

    /// Physical block of directory index block `n`.
    func indexBlock(_ dir: UInt64, _ raw: RawInode, _ n: UInt64) throws(StoreError) -> UInt64 {
        guard let b = try mapBlock(dir, raw, n) else { throw .corrupt("directory \(dir): index block \(n) is missing") }
        guard b >= sb.dataStart, b < sb.totalBlocks else { throw .corrupt("directory \(dir): index block \(b) is outside the data area") }
        try verifyBlock(b, magic: Layout.dirIndexMagic, owner: dir, what: "directory index")
        return b
    }

    /// All index entries (2^G leaf block numbers).
    func indexEntries(_ dir: UInt64, _ raw: RawInode) throws(StoreError) -> [UInt64] {
        if raw.dirDepth == 0 { return [raw.dirRoot] }
        guard raw.dirDepth <= DirFormat.maxDepth else { throw .corrupt("directory \(dir): index depth \(raw.dirDepth) is impossible") }
        let n = 1 << Int(raw.dirDepth)
        let blocks = (n + DirFormat.indexPerBlock - 1) / DirFormat.indexPerBlock
        _ = try indexBlock(dir, raw, UInt64(blocks - 1))   // the whole index is there before sizing for it
        var out = [UInt64](); out.reserveCapacity(n)
        for k in 0..<blocks {
            let p = block(try indexBlock(dir, raw, UInt64(k)))
            let lo = k * DirFormat.indexPerBlock
            for i in lo..<min(n, lo + DirFormat.indexPerBlock) { out.append(ld64(p, BlockHeader.size + (i - lo) * 8)) }
        }
        return out
    }

    /// The leaf block holding `key`, verified.
    func leafFor(_ dir: UInt64, _ raw: RawInode, key: UInt64) throws(StoreError) -> UInt64 {
        let leaf: UInt64
        if raw.dirDepth == 0 {
            leaf = raw.dirRoot
        } else {
            guard raw.dirDepth <= DirFormat.maxDepth else { throw .corrupt("directory \(dir): index depth \(raw.dirDepth) is impossible") }
            let i = key >> UInt64(DirFormat.keyBits - Int(raw.dirDepth))
            let ib = try indexBlock(dir, raw, i / UInt64(DirFormat.indexPerBlock))
            leaf = ld64(block(ib), BlockHeader.size + Int(i % UInt64(DirFormat.indexPerBlock)) * 8)
        }
        guard leaf >= sb.dataStart, leaf < sb.totalBlocks else { throw .corrupt("directory \(dir): leaf block \(leaf) is outside the data area") }
        let p = block(leaf)
        try verifyBlock(leaf, magic: Layout.dirLeafMagic, owner: dir, what: "directory leaf")
        let used = Int(ld16(p, DirFormat.oUsed))
        guard used >= BlockHeader.size, used <= Layout.blockSize else { throw .corrupt("directory \(dir): leaf block \(leaf) has a bad length \(used)") }
        let depth = UInt32(ld16(p, DirFormat.oDepth)), prefix = ld64(p, DirFormat.oPrefix)
        guard depth <= raw.dirDepth, prefix < (UInt64(1) << UInt64(depth)), Int(ld16(p, DirFormat.oCount)) <= DirFormat.maxRecords,
              depth == 0 || key >> UInt64(DirFormat.keyBits - Int(depth)) == prefix else {
            throw .corrupt("directory \(dir): leaf block \(leaf) has a bad header (depth \(depth), prefix \(prefix))")
        }
        return leaf
    }

    /// Visit the records of a leaf: (offset, key, ino, type, name). Body returns false to stop.
    func forEachRecord(_ dir: UInt64, leaf: UInt64, _ body: (Int, UInt64, UInt64, UInt8, UnsafeRawBufferPointer) -> Bool) throws(StoreError) {
        let p = block(leaf)
        let used = Int(ld16(p, DirFormat.oUsed))
        let count = Int(ld16(p, DirFormat.oCount))
        var o = BlockHeader.size
        var n = 0
        while o < used {
            guard o + DirFormat.recordHeader <= used else { throw .corrupt("directory \(dir): leaf block \(leaf) has a truncated record at \(o)") }
            let len = Int(p.load(fromByteOffset: o + 17, as: UInt8.self))
            guard len > 0, o + DirFormat.recordHeader + len <= used else { throw .corrupt("directory \(dir): leaf block \(leaf) has a bad record at \(o)") }
            let name = UnsafeRawBufferPointer(start: p + o + DirFormat.recordHeader, count: len)
            if !body(o, ld64(p, o), ld64(p, o + 8), p.load(fromByteOffset: o + 16, as: UInt8.self), name) { return }
            o += DirFormat.recordHeader + len
            n += 1
        }
        guard n == count else { throw .corrupt("directory \(dir): leaf block \(leaf) holds \(n) records, its count says \(count)") }
    }

    /// Find `name` in the directory: (leaf, offset of the record, ino, type).
    func dirFind(_ dir: UInt64, _ raw: RawInode, _ name: UnsafeRawBufferPointer, key: UInt64) throws(StoreError) -> (leaf: UInt64, offset: Int, ino: UInt64, type: UInt8)? {
        if raw.dirLeaves == 0 { return nil }
        let leaf = try leafFor(dir, raw, key: key)
        var found: (UInt64, Int, UInt64, UInt8)?
        try forEachRecord(dir, leaf: leaf) { o, k, ino, type, n in
            if k > key { return false }
            if k == key && n.count == name.count && memcmp(n.baseAddress!, name.baseAddress!, name.count) == 0 {
                found = (leaf, o, ino, type); return false
            }
            return true
        }
        return found
    }

    func dirLookup(_ dir: UInt64, _ name: UnsafeRawBufferPointer) throws(StoreError) -> (ino: UInt64, type: UInt8)? {
        try DirFormat.validate(name)
        let raw = try directoryInode(dir)
        guard let f = try dirFind(dir, raw, name, key: DirFormat.hash(name)) else { return nil }
        return (f.ino, f.type)
    }

    /// Entries of the leaf covering `fromKey` with hash >= fromKey (copied out), and the first key of
    /// the next leaf (nil at the end).
    func dirBatch(_ dir: UInt64, _ raw: RawInode, fromKey: UInt64) throws(StoreError) -> (entries: [(name: [UInt8], ino: UInt64, type: UInt8, key: UInt64)], next: UInt64?) {
        if raw.dirLeaves == 0 { return ([], nil) }
        let leaf = try leafFor(dir, raw, key: fromKey)
        var out: [(name: [UInt8], ino: UInt64, type: UInt8, key: UInt64)] = []
        try forEachRecord(dir, leaf: leaf) { _, k, ino, type, n in
            if k >= fromKey { out.append((Array(n), ino, type, k)) }
            return true
        }
        let p = block(leaf)
        let depth = UInt64(ld16(p, DirFormat.oDepth))
        let prefix = ld64(p, DirFormat.oPrefix)
        if depth == 0 { return (out, nil) }
        let end = (prefix + 1) << (UInt64(DirFormat.keyBits) - depth)
        return (out, end >= (1 << UInt64(DirFormat.keyBits)) ? nil : end)
    }
}

extension StoreTransaction {
    func dirAdd(_ dir: UInt64, _ name: [UInt8], _ ino: UInt64, _ type: UInt8) throws(StoreError) {
        try withBytes(name) { (n) throws(StoreError) in try DirFormat.validate(n) }
        try checkIno(ino)
        var raw = try directoryInode(dir)
        let key = DirFormat.hash(name)
        let recordSize = DirFormat.recordHeader + name.count
        if raw.dirLeaves == 0 {
            let (b, p) = try allocateMetaBlock(goal: sb.dataStart + (dir * 8) % max(1, sb.totalBlocks - sb.dataStart), magic: Layout.dirLeafMagic, owner: dir)
            st16(p, DirFormat.oUsed, UInt16(BlockHeader.size))
            raw.dirRoot = b; raw.dirDepth = 0; raw.dirLeaves = 1
            try appendBlock(dir, &raw, logical: DirFormat.leafBase, physical: b)
        }
        var splits = 0
        while true {
            let existing = try withBytes(name) { (n) throws(StoreError) in try dirFind(dir, raw, n, key: key) }
            if let e = existing {
                let p = try modify(e.leaf, header: true)
                st64(p, e.offset + 8, ino)
                p.storeBytes(of: type, toByteOffset: e.offset + 16, as: UInt8.self)
                break
            }
            let leaf = try leafFor(dir, raw, key: key)
            let lp = block(leaf)
            let used = Int(ld16(lp, DirFormat.oUsed))
            if used + recordSize <= Layout.blockSize {
                let p = try modify(leaf, header: true)
                // Insert sorted by key.
                var at = BlockHeader.size
                try forEachRecord(dir, leaf: leaf) { o, k, _, _, n in
                    if k > key { at = o; return false }
                    at = o + DirFormat.recordHeader + n.count
                    return true
                }
                memmove(p + at + recordSize, p + at, used - at)
                st64(p, at, key); st64(p, at + 8, ino)
                p.storeBytes(of: type, toByteOffset: at + 16, as: UInt8.self)
                p.storeBytes(of: UInt8(name.count), toByteOffset: at + 17, as: UInt8.self)
                name.withUnsafeBytes { (p + at + DirFormat.recordHeader).copyMemory(from: $0.baseAddress!, byteCount: name.count) }
                st16(p, DirFormat.oUsed, UInt16(used + recordSize))
                st16(p, DirFormat.oCount, ld16(p, DirFormat.oCount) + 1)
                raw.dirEntries += 1
                break
            }
            splits += 1
            if splits > 64 { throw .noSpace("directory \(dir): cannot split a leaf for this name (too many hash collisions)") }
            try splitLeaf(dir, &raw, leaf)
        }
        try putInode(dir, raw)
        if type == UInt8(DT_DIR) {
            // Record the parent in the child's slot (kept by writeInode if the child is new).
            let p = try modifyInode(ino)
            st64(p, 120, dir)
            RawInode.seal(p)
        }
    }

    func dirRemove(_ dir: UInt64, _ name: [UInt8]) throws(StoreError) {
        try withBytes(name) { (n) throws(StoreError) in try DirFormat.validate(n) }
        var raw = try directoryInode(dir)
        let key = DirFormat.hash(name)
        guard let e = try withBytes(name, { (n) throws(StoreError) in try dirFind(dir, raw, n, key: key) }) else {
            throw StoreError(ENOENT, "directory \(dir) has no entry \(String(decoding: name, as: UTF8.self).debugDescription)")
        }
        guard ld16(block(e.leaf), DirFormat.oCount) > 0, raw.dirEntries > 0 else { throw .corrupt("directory \(dir): entry counts are inconsistent") }
        let p = try modify(e.leaf, header: true)
        let used = Int(ld16(p, DirFormat.oUsed))
        let size = DirFormat.recordHeader + name.count
        memmove(p + e.offset, p + e.offset + size, used - e.offset - size)
        memset(p + used - size, 0, size)
        st16(p, DirFormat.oUsed, UInt16(used - size))
        st16(p, DirFormat.oCount, ld16(p, DirFormat.oCount) - 1)
        raw.dirEntries -= 1
        try putInode(dir, raw)
    }

    /// Write 2^G index entries into index blocks 0..<, allocating any that are missing.
    func writeIndex(_ dir: UInt64, _ raw: inout RawInode, _ entries: [UInt64], oldDepth: UInt32) throws(StoreError) {
        let have = oldDepth == 0 ? 0 : ((1 << Int(oldDepth)) + DirFormat.indexPerBlock - 1) / DirFormat.indexPerBlock
        let need = (entries.count + DirFormat.indexPerBlock - 1) / DirFormat.indexPerBlock
        guard need <= store.maxTransactionBlocks / 4 else {
            throw .noSpace("directory \(dir): its hash index would need \(need) blocks, more than a transaction can hold")
        }
        for k in have..<max(have, need) {
            let goal = k > 0 ? (try mapBlock(dir, raw, UInt64(k - 1)) ?? raw.dirRoot) + 1 : raw.dirRoot
            let (b, _) = try allocateMetaBlock(goal: goal, magic: Layout.dirIndexMagic, owner: dir)
            try appendBlock(dir, &raw, logical: UInt64(k), physical: b)
        }
        for k in 0..<need {
            guard let b = try mapBlock(dir, raw, UInt64(k)) else { throw .corrupt("directory \(dir): index block \(k) is missing") }
            let p = try modify(b, header: true)
            let lo = k * DirFormat.indexPerBlock
            for i in lo..<min(entries.count, lo + DirFormat.indexPerBlock) { st64(p, BlockHeader.size + (i - lo) * 8, entries[i]) }
        }
    }

    func splitLeaf(_ dir: UInt64, _ raw: inout RawInode, _ leaf: UInt64) throws(StoreError) {
        let lp = block(leaf)
        let depth = UInt32(ld16(lp, DirFormat.oDepth))
        let prefix = ld64(lp, DirFormat.oPrefix)
        guard depth < DirFormat.maxDepth else { throw .noSpace("directory \(dir): hash index is at its maximum depth") }
        var entries = try indexEntries(dir, raw)
        let oldDepth = raw.dirDepth
        if depth == raw.dirDepth {
            var doubled = [UInt64](); doubled.reserveCapacity(entries.count * 2)
            for e in entries { doubled.append(e); doubled.append(e) }
            entries = doubled
            raw.dirDepth += 1
        }
        let g = raw.dirDepth
        // New leaf for the upper half.
        let (nb, np) = try allocateMetaBlock(goal: leaf + 1, magic: Layout.dirLeafMagic, owner: dir)
        try appendBlock(dir, &raw, logical: DirFormat.leafBase + UInt64(raw.dirLeaves), physical: nb)
        raw.dirLeaves += 1
        let p = try modify(leaf, header: true)
        let used = Int(ld16(p, DirFormat.oUsed))
        let bit = UInt64(DirFormat.keyBits) - UInt64(depth) - 1
        // Records are sorted by key and share the top `depth` bits: those with `bit` set are a suffix.
        var cut = used
        var lowCount = 0
        try forEachRecord(dir, leaf: leaf) { o, k, _, _, _ in
            if k & (1 << bit) != 0 { cut = o; return false }
            lowCount += 1
            return true
        }
        let total = Int(ld16(p, DirFormat.oCount))
        (np + BlockHeader.size).copyMemory(from: p + cut, byteCount: used - cut)
        st16(np, DirFormat.oUsed, UInt16(BlockHeader.size + used - cut))
        st16(np, DirFormat.oCount, UInt16(total - lowCount))
        st64(np, DirFormat.oPrefix, (prefix << 1) | 1)
        st16(np, DirFormat.oDepth, UInt16(depth + 1))
        memset(p + cut, 0, used - cut)
        st16(p, DirFormat.oUsed, UInt16(cut))
        st16(p, DirFormat.oCount, UInt16(lowCount))
        st64(p, DirFormat.oPrefix, prefix << 1)
        st16(p, DirFormat.oDepth, UInt16(depth + 1))
        // Index entries of the old leaf's range: upper half to the new leaf.
        let span = UInt64(1) << UInt64(g - depth)
        let first = prefix << UInt64(g - depth)
        for i in (first + span / 2)..<(first + span) { entries[Int(i)] = nb }
        try writeIndex(dir, &raw, entries, oldDepth: oldDepth)
        try putInode(dir, raw)
    }
}

