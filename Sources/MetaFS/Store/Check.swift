import Glibc

/// Findings of a check, capped per kind so that a badly damaged store gives a readable report.
struct Findings {
    private(set) var lines: [String] = []
    private var perKind: [String: Int] = [:]
    static let cap = 20

    mutating func add(_ kind: String, _ message: String) {
        let n = perKind[kind, default: 0] + 1
        perKind[kind] = n
        if n <= Findings.cap { lines.append(message) }
    }
    func finished() -> [String] {
        var out = lines
        for (kind, n) in perKind.sorted(by: { $0.key < $1.key }) where n > Findings.cap {
            out.append("... and \(n - Findings.cap) more \(kind) findings")
        }
        return out
    }
}

extension Store {
    /// fsck in passes, as e2fsck: superblock and journal; inodes (checksums, types, extent maps,
    /// xattr/symlink blocks, directory structure); directory entries; connectivity; link counts;
    /// block ownership against the bitmap; the orphan list. Empty when the store is consistent.
    /// Waits for an open transaction to finish and excludes commits while it runs.
    public func check() -> [String] {
        if crashed || closed { return ["store is not open"] }
        gate.enter()
        defer { gate.leave() }
        return lock.withRead { runCheck() }
    }

    private func runCheck() -> [String] {
        var f = Findings()
        let h = HomeView(sb: sb, mapping: mapping)   // always verifies checksums
        // Pass 0: superblock and journal.
        do {
            let now = try Superblock.decode(h.block(0), fileSize: sb.fileSize)
            var a = now, b = sb
            a.state = 0; b.state = 0; a.orphanHead = 0; b.orphanHead = 0; a.mountCount = 0; b.mountCount = 0
            if a != b { f.add("superblock", "superblock geometry changed while open") }
        } catch { f.add("superblock", error.message) }
        do { try sb.verifyBitmaps(superblock: h.block(0)) { h.block($0) } } catch { f.add("bitmap", error.message) }
        do {
            let (seq, record) = try scanJournal()
            if let record { f.add("journal", "journal holds committed transaction \(seq) (\(record.blocks.count) blocks) not yet checkpointed") }
        } catch { f.add("journal", error.message) }

        // Pass 1: inodes.
        let n = Int(sb.inodeCount)
        let total = Int(sb.totalBlocks)
        var owner = [UInt32](repeating: 0, count: total)
        let metaOwner = UInt32.max
        for b in 0..<Int(sb.dataStart) { owner[b] = metaOwner }
        var inUse = [Bool](repeating: false, count: n)
        var types = [UInt8](repeating: 0, count: n)
        var nlinks = [UInt32](repeating: 0, count: n)
        var parents = [UInt64](repeating: 0, count: n)
        var orphanFlag = [Bool](repeating: false, count: n)
        var entries: [(dir: UInt64, name: [UInt8], ino: UInt64, type: UInt8)] = []

        func claim(_ b: UInt64, _ ino: UInt64, _ what: String) {
            guard b >= sb.dataStart, b < sb.totalBlocks else {
                f.add("block", "inode \(ino): \(what) block \(b) is outside the data area"); return
            }
            let o = owner[Int(b)]
            if o != 0 {
                f.add("block", "block \(b) is owned twice: by inode \(o) and by inode \(ino) (\(what))")
            } else {
                owner[Int(b)] = UInt32(ino)
            }
        }

        if h.inodeInUse(0) == false { f.add("inode", "inode bitmap: reserved inode 0 is not marked in use") }
        for i in 1..<n {
            let ino = UInt64(i)
            let p = h.inodePointer(ino)
            let flag = ld32(p, 84) & RawInode.inUse != 0
            let bit = h.inodeInUse(ino)
            if flag != bit {
                f.add("inode", "inode \(ino): bitmap says \(bit ? "in use" : "free") but the inode is \(flag ? "in use" : "free")")
            }
            guard flag else { continue }
            guard RawInode.checksumOK(p) else { f.add("inode", "inode \(ino) checksum mismatch"); continue }
            let raw = RawInode.decode(p)
            inUse[i] = true
            types[i] = raw.disk.fileType
            nlinks[i] = raw.disk.nlink
            parents[i] = raw.parent
            orphanFlag[i] = raw.isOrphan
            let type = raw.disk.mode & 0o170000
            let validTypes: [UInt32] = [0o100000, 0o040000, 0o120000, 0o020000, 0o060000, 0o010000, 0o140000]
            if !validTypes.contains(type) { f.add("inode", "inode \(ino) has an invalid file type (mode 0o\(String(raw.disk.mode, radix: 8)))") }
            if raw.disk.nlink == 0 && !raw.isOrphan { f.add("inode", "inode \(ino) has no links and is not on the orphan list") }
            // Extent map (data blocks, or a directory's index and leaves) and its overflow blocks.
            var list: [StoreExtent] = []
            if type != 0o120000 {
                do {
                    try h.forEachOverflowBlock(ino, raw) { claim($0, ino, "extent overflow") }
                    list = try h.readExtentList(ino, raw)
                    var lastEnd: UInt64 = 0
                    for (k, e) in list.enumerated() {
                        if e.length == 0 || (k > 0 && e.logical < lastEnd) { f.add("extent", "inode \(ino): extent \(k) is empty, unsorted or overlapping") }
                        lastEnd = e.end
                        if e.physical < sb.dataStart || e.physicalEnd > sb.totalBlocks {
                            f.add("extent", "inode \(ino): extent \(k) maps blocks \(e.physical)..<\(e.physicalEnd) outside the data area")
                            continue
                        }
                        for b in e.physical..<e.physicalEnd { claim(b, ino, "data") }
                    }
                } catch { f.add("extent", error.message) }
            } else if raw.extentCount != 0 {
                f.add("inode", "symlink inode \(ino) has an extent map")
            }
            if raw.xattrBlock != 0 {
                claim(raw.xattrBlock, ino, "xattr")
                do { _ = try h.xattrList(ino, raw) } catch { f.add("xattr", error.message) }
            }
            if type == 0o120000 {
                do {
                    _ = try h.symlinkTarget(ino, raw)
                    if let b = h.symlinkBlock(raw) { claim(b, ino, "symlink") }
                    if raw.symlinkLength == 0 { f.add("inode", "symlink inode \(ino) has no target") }
                } catch { f.add("symlink", error.message) }
            }
            if type == 0o040000 {
                checkDirectory(ino, raw, list, &f, &entries)
            }
        }
        if !inUse[Int(Layout.rootIno)] || types[Int(Layout.rootIno)] != UInt8(DT_DIR) {
            f.add("inode", "root inode 1 is not an allocated directory")
        }

        // Pass 2: directory entries point at allocated inodes of the right type.
        var refs = [UInt32](repeating: 0, count: n)
        var subdirs = [UInt32](repeating: 0, count: n)
        var holders = [UInt64](repeating: 0, count: n)   // the directory holding a directory
        var children: [UInt64: [UInt64]] = [:]
        for e in entries {
            let name = String(decoding: e.name, as: UTF8.self).debugDescription
            guard e.ino >= 1, e.ino < sb.inodeCount, inUse[Int(e.ino)] else {
                f.add("entry", "directory \(e.dir): entry \(name) points to free inode \(e.ino)"); continue
            }
            let c = Int(e.ino)
            if types[c] != e.type { f.add("entry", "directory \(e.dir): entry \(name) has type \(e.type), inode \(e.ino) has type \(types[c])") }
            refs[c] += 1
            if types[c] == UInt8(DT_DIR) {
                subdirs[Int(e.dir)] += 1
                if holders[c] != 0 { f.add("entry", "directory \(e.ino) is entered in two places (directories \(holders[c]) and \(e.dir))") }
                holders[c] = e.dir
                if e.ino == Layout.rootIno { f.add("entry", "directory \(e.dir): entry \(name) links the root directory") }
            }
            children[e.dir, default: []].append(e.ino)
        }

        // Pass 3: connectivity.
        var reached = [Bool](repeating: false, count: n)
        var queue: [UInt64] = [Layout.rootIno]
        if inUse[Int(Layout.rootIno)] { reached[Int(Layout.rootIno)] = true }
        while let d = queue.popLast() {
            for c in children[d] ?? [] where !reached[Int(c)] {
                reached[Int(c)] = true
                if types[Int(c)] == UInt8(DT_DIR) { queue.append(c) }
            }
        }
        for i in 1..<n where inUse[i] && !reached[i] && !(orphanFlag[i] && refs[i] == 0) {
            f.add("connectivity", "inode \(i) is not reachable from the root")
        }
        for i in 1..<n where inUse[i] && types[i] == UInt8(DT_DIR) {
            let expected = i == Int(Layout.rootIno) ? Layout.rootIno : holders[i]
            if expected != 0 && parents[i] != expected {
                f.add("connectivity", "directory \(i) records parent \(parents[i]) but is entered in directory \(expected)")
            }
        }

        // Pass 4: link counts.
        for i in 1..<n where inUse[i] {
            if types[i] == UInt8(DT_DIR) {
                let expected = 2 + subdirs[i]
                if nlinks[i] != expected && !(orphanFlag[i] && refs[i] == 0) {
                    f.add("links", "directory \(i) has link count \(nlinks[i]), should be \(expected) (2 + \(subdirs[i]) subdirectories)")
                }
            } else if nlinks[i] != refs[i] {
                f.add("links", "inode \(i) has link count \(nlinks[i]), but \(refs[i]) directory entries")
            }
        }

        // Pass 5: block ownership against the block bitmap.
        for b in 0..<total {
            let bit = h.blockInUse(UInt64(b))
            let owned = owner[b] != 0
            if bit && !owned { f.add("bitmap", "block \(b) is marked in use but no inode owns it") }
            if !bit && owned {
                f.add("bitmap", owner[b] == metaOwner ? "metadata block \(b) is not marked in use" : "block \(b) is owned by inode \(owner[b]) but marked free")
            }
        }

        // Pass 6: the orphan list.
        var onList = [Bool](repeating: false, count: n)
        var o = ld64(h.block(0), Superblock.oOrphanHead)
        var steps = 0
        while o != 0 {
            guard o < sb.inodeCount, inUse[Int(o)] else { f.add("orphan", "orphan list: inode \(o) is not allocated"); break }
            guard !onList[Int(o)] else { f.add("orphan", "orphan list has a cycle at inode \(o)"); break }
            onList[Int(o)] = true
            if !orphanFlag[Int(o)] { f.add("orphan", "orphan list: inode \(o) is not marked as an orphan") }
            o = ld64(h.inodePointer(o), 88)
            steps += 1
            if steps > n { break }
        }
        for i in 1..<n where inUse[i] && orphanFlag[i] && !onList[i] {
            f.add("orphan", "inode \(i) is marked as an orphan but is not on the orphan list")
        }
        return f.finished()
    }

    /// Directory structure: index, leaves (checksums, hash ranges, sorting, names), entry count, and
    /// that the extent map holds exactly the index and leaf blocks.
    func checkDirectory(_ dir: UInt64, _ raw: RawInode, _ list: [StoreExtent], _ f: inout Findings,
                                _ entries: inout [(dir: UInt64, name: [UInt8], ino: UInt64, type: UInt8)]) {
        let h = HomeView(sb: sb, mapping: mapping)   // always verifies checksums
        if raw.dirLeaves == 0 {
            if !list.isEmpty || raw.dirEntries != 0 { f.add("directory", "directory \(dir) has no leaves but \(list.count) blocks and \(raw.dirEntries) entries") }
            return
        }
        do {
            let index = try h.indexEntries(dir, raw)
            var leaves: [UInt64] = []
            var seen = Set<UInt64>()
            var count = 0
            for (i, leaf) in index.enumerated() where !seen.contains(leaf) {
                seen.insert(leaf)
                leaves.append(leaf)
                guard leaf >= sb.dataStart, leaf < sb.totalBlocks else { f.add("directory", "directory \(dir): leaf \(leaf) is outside the data area"); continue }
                let p = h.block(leaf)
                try BlockHeader.verify(p, block: leaf, magic: Layout.dirLeafMagic, owner: dir, what: "directory leaf")
                let depth = UInt64(ld16(p, DirFormat.oDepth)), prefix = ld64(p, DirFormat.oPrefix)
                let g = UInt64(raw.dirDepth)
                guard depth <= g, UInt64(i) >> (g - depth) == prefix else {
                    f.add("directory", "directory \(dir): leaf \(leaf) (depth \(depth), prefix \(prefix)) does not match index entry \(i)"); continue
                }
                var last: UInt64 = 0
                try h.forEachRecord(dir, leaf: leaf) { _, k, ino, type, name in
                    let shown = String(decoding: name, as: UTF8.self).debugDescription
                    if k != DirFormat.hash(name) { f.add("directory", "directory \(dir): entry \(shown) has a wrong hash") }
                    if depth > 0 && k >> (UInt64(DirFormat.keyBits) - depth) != prefix { f.add("directory", "directory \(dir): entry \(shown) is in the wrong leaf") }
                    if k < last { f.add("directory", "directory \(dir): leaf \(leaf) is not sorted") }
                    last = k
                    if name.contains(0) || name.contains(UInt8(ascii: "/")) { f.add("directory", "directory \(dir): entry \(shown) has an invalid name") }
                    entries.append((dir, Array(name), ino, type))
                    count += 1
                    return true
                }
            }
            if UInt64(count) != raw.dirEntries { f.add("directory", "directory \(dir) holds \(count) entries, its inode says \(raw.dirEntries)") }
            if leaves.count != Int(raw.dirLeaves) { f.add("directory", "directory \(dir) has \(leaves.count) leaves in its index, its inode says \(raw.dirLeaves)") }
            // The extent map holds exactly the index blocks and the leaves.
            var mapped = Set<UInt64>()
            for e in list { for k in 0..<UInt64(e.length) { mapped.insert(e.physical + k) } }
            let indexBlocks = raw.dirDepth == 0 ? 0 : ((1 << Int(raw.dirDepth)) + DirFormat.indexPerBlock - 1) / DirFormat.indexPerBlock
            var expected = Set(leaves)
            for k in 0..<indexBlocks { if let b = try h.mapBlock(dir, raw, UInt64(k)) { expected.insert(b) } }
            if mapped != expected { f.add("directory", "directory \(dir): its block map holds \(mapped.count) blocks, its index and leaves are \(expected.count)") }
        } catch { f.add("directory", error.message) }
    }
}
