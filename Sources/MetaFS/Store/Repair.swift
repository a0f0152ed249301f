import Glibc
import MetaCache

// fsck --repair, in e2fsck's passes: the superblock (from its backup) and the journal; inodes
// (checksums, types, extent maps, xattr and symlink blocks, directory structure); blocks owned
// twice; the orphan list; directory entries; the bitmaps; connectivity (lost+found); parent
// pointers and link counts; the bitmaps again. Every change goes through journaled transactions.

/// What `metafs fsck` found and did.
public struct FsckResult: Sendable {
    /// Done when the store was opened (superblock restored, journal replayed or reset, orphans).
    public var openNotes: [String] = []
    /// Findings before any repair.
    public var findings: [String] = []
    /// What the repair changed.
    public var fixed: [String] = []
    /// Findings left after the repair (or all of them without --repair).
    public var remaining: [String] = []
    /// e2fsck's exit codes: 0 clean, 1 errors fixed, 4 errors left uncorrected.
    public var exitCode: Int32 {
        if !remaining.isEmpty { return 4 }
        return fixed.isEmpty && openRepairs == 0 ? 0 : 1
    }
    /// Repairs made while opening (superblock restored, journal reset).
    public var openRepairs = 0
    public init() {}
}

extension Store {
    /// Open a store for fsck: like `open`, but tolerant. With `repair`, a superblock that fails its
    /// checks is restored from its backup and a damaged journal is reset (its last transaction is
    /// lost); bitmap checksum mismatches and orphan-list damage are left for the passes.
    /// Without `repair`, damage that stops a mount is an error, as it is for `open`.
    public static func openForFsck(path: String, repair: Bool) throws(StoreError) -> (Store, [String], Int) {
        do {
            let s = try open(path: path, tolerant: true, repair: repair)
            return (s, s.recoveryNotes, s.openRepairs)
        } catch {
            let superblockDamage = ["bad superblock magic", "superblock", "unsupported store version"].contains { error.message.hasPrefix($0) }
            guard repair, superblockDamage else { throw error }
            try restoreSuperblockFromBackup(path: path, damage: error.message)
            let s = try open(path: path, tolerant: true, repair: repair)
            return (s, ["superblock restored from its backup (\(error.message))"] + s.recoveryNotes, 1 + s.openRepairs)
        }
    }

    /// Rewrite block 0 from the geometry backup in the journal header block (state mounted, no
    /// orphan list: the passes rebuild it from the inodes' orphan flags; bitmap checksums are
    /// rewritten by the bitmap pass).
    static func restoreSuperblockFromBackup(path: String, damage: String) throws(StoreError) {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .system("cannot open store file \(path)") }
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size >= 2 * Layout.blockSize else { throw .corrupt(damage) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * Layout.blockSize, alignment: 64)
        defer { buffer.deallocate() }
        guard pread(fd, buffer, 2 * Layout.blockSize, 0) == 2 * Layout.blockSize else { throw .system("cannot read \(path)") }
        var sb: Superblock
        do {
            sb = try Superblock.readBackup(buffer + Layout.blockSize, fileSize: UInt64(st.st_size))
        } catch {
            throw .corrupt("\(damage), and \(error.message)")
        }
        sb.state = Layout.stateMounted
        memset(buffer, 0, Layout.blockSize)
        sb.encode(into: buffer)
        guard pwrite(fd, buffer, Layout.blockSize, 0) == Layout.blockSize, fsync(fd) == 0 else {
            throw .system("cannot write the restored superblock")
        }
    }

    // MARK: repair

    /// Run the repair passes; then check again. The store must not be in use.
    public func repair() -> (fixed: [String], remaining: [String]) {
        var fixed: [String] = []
        var stuck: [String] = []
        func step(_ what: String, _ body: () throws(StoreError) -> Void) {
            do { try body() } catch { stuck.append("\(what): \(error.message)") }
        }
        step("inodes") { () throws(StoreError) in try repairInodes(&fixed) }
        step("blocks owned twice") { () throws(StoreError) in try repairDuplicateBlocks(&fixed) }
        step("orphan list") { () throws(StoreError) in try repairOrphans(&fixed) }
        step("directory entries") { () throws(StoreError) in try repairEntries(&fixed) }
        step("bitmaps") { () throws(StoreError) in try repairBitmaps(&fixed) }
        step("connectivity") { () throws(StoreError) in try repairConnectivity(&fixed) }
        step("link counts") { () throws(StoreError) in try repairLinkCounts(&fixed) }
        step("bitmaps") { () throws(StoreError) in try repairBitmaps(&fixed) }
        let remaining = check()
        return (fixed, remaining + (remaining.isEmpty ? [] : stuck))
    }

    /// Run `body` in transactions: `commitIfFull` commits and begins another when the transaction
    /// is half full.
    func inTransactions(_ body: (_ tx: () -> StoreTransaction, _ commitIfFull: () throws(StoreError) -> Void) throws(StoreError) -> Void) throws(StoreError) {
        var tx = beginTransaction()
        var failed = false
        defer { if failed { tx.abort() } }
        do {
            try body({ tx }, { () throws(StoreError) in
                if tx.blockCount > self.maxTransactionBlocks / 2 {
                    try tx.commit()
                    tx = self.beginTransaction()
                }
            })
            try tx.commit()
        } catch {
            failed = !tx.finished
            throw error
        }
    }

    /// What is wrong with an in-use inode slot that its own checks can see (nil: nothing).
    func inodeDamage(_ ino: UInt64, _ raw: RawInode, _ h: HomeView) -> (clear: Bool, dropExtents: Bool, dropXattrs: Bool, what: String)? {
        let type = raw.disk.mode & 0o170000
        let valid: [UInt32] = [0o100000, 0o040000, 0o120000, 0o020000, 0o060000, 0o010000, 0o140000]
        guard valid.contains(type) else { return (true, false, false, "invalid file type (mode 0o\(String(raw.disk.mode, radix: 8)))") }
        var dropExtents = false, dropXattrs = false
        var what: [String] = []
        if type == 0o120000 {
            do {
                _ = try h.symlinkTarget(ino, raw)
                if raw.symlinkLength == 0 { return (true, false, false, "symlink without a target") }
                if raw.extentCount != 0 { return (true, false, false, "symlink with an extent map") }
            } catch { return (true, false, false, error.message) }
        } else {
            do throws(StoreError) {
                var list: [StoreExtent] = []
                try h.forEachOverflowBlock(ino, raw) { _ in }
                list = try h.readExtentList(ino, raw)
                var lastEnd: UInt64 = 0
                for (k, e) in list.enumerated() where e.length == 0 || (k > 0 && e.logical < lastEnd) {
                    throw StoreError.corrupt("extent \(k) is empty, unsorted or overlapping")
                }
                for e in list { lastEnd = e.end }
                if type == 0o040000 {
                    var f = Findings()
                    var entries: [(dir: UInt64, name: [UInt8], ino: UInt64, type: UInt8)] = []
                    checkDirectory(ino, raw, list, &f, &entries)
                    if let first = f.finished().first { return (true, false, false, first) }
                }
            } catch {
                if type == 0o040000 { return (true, false, false, error.message) }
                dropExtents = true
                what.append(error.message)
            }
        }
        if raw.xattrBlock != 0 {
            do { _ = try h.xattrList(ino, raw) } catch { dropXattrs = true; what.append(error.message) }
        }
        return what.isEmpty ? nil : (false, dropExtents, dropXattrs, what.joined(separator: "; "))
    }

    /// Clear an inode slot (keeping its generation); its blocks return with the bitmap rebuild.
    func clearSlot(_ tx: StoreTransaction, _ ino: UInt64) throws(StoreError) {
        let p = try tx.modifyInode(ino)
        let generation = ld32(p, 76)
        memset(p, 0, Layout.inodeSize)
        st32(p, 76, generation)
        RawInode.seal(p)
    }

    func repairInodes(_ fixed: inout [String]) throws(StoreError) {
        let h = HomeView(sb: sb, mapping: mapping)
        var log: [String] = []
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            for i in 1..<sb.inodeCount {
                let p = h.inodePointer(i)
                guard ld32(p, 84) & RawInode.inUse != 0 else { continue }
                let raw = RawInode.decode(p)
                let sumOK = RawInode.checksumOK(p)
                let damage = inodeDamage(i, raw, h)
                if i == Layout.rootIno, damage?.clear == true || !raw.disk.isDirectory || !sumOK {
                    // e2fsck's way: a new, empty root; what it held goes to /lost+found.
                    var root = RawInode(disk: DiskInode(mode: 0o040755, nlink: 2, uid: raw.disk.uid, gid: raw.disk.gid,
                                                        size: UInt64(Layout.blockSize), atime: raw.disk.atime, mtime: raw.disk.mtime,
                                                        ctime: raw.disk.ctime, generation: max(1, raw.disk.generation)),
                                        iflags: RawInode.inUse, parent: Layout.rootIno)
                    if raw.disk.isDirectory && sumOK { root.disk = raw.disk; root.disk.nlink = 2 }
                    let q = try tx().modifyInode(i)
                    memset(q, 0, Layout.inodeSize)
                    root.encode(q)
                    log.append("root directory: \(damage?.what ?? (sumOK ? "not a directory" : "checksum mismatch")): made anew (its entries go to /lost+found)")
                    try commitIfFull()
                    continue
                }
                if let d = damage, d.clear {
                    try clearSlot(tx(), i)
                    log.append("inode \(i): \(d.what): cleared")
                } else if let d = damage {
                    var r = raw
                    if d.dropExtents { r.extentCount = 0; r.extentOverflow = 0; r.disk.blocks = 0 }
                    if d.dropXattrs { r.xattrBlock = 0 }
                    let q = try tx().modifyInode(i)
                    r.encode(q)
                    if d.dropExtents { memset(q + RawInode.oInline, 0, RawInode.inlineBytes); RawInode.seal(q) }
                    log.append("inode \(i): \(d.what): \(d.dropExtents ? "extent map dropped" : "")\(d.dropExtents && d.dropXattrs ? ", " : "")\(d.dropXattrs ? "xattrs dropped" : "")")
                } else if !sumOK {
                    let q = try tx().modifyInode(i)
                    RawInode.seal(q)
                    log.append("inode \(i): checksum mismatch, but the inode passes its checks: checksum rewritten")
                }
                try commitIfFull()
            }
        }
        fixed += log
    }

    /// The state the later passes work from: in-use inodes, their types and links, the entries.
    struct RepairScan {
        var inUse: [Bool]
        var types: [UInt8]
        var nlinks: [UInt32]
        var parents: [UInt64]
        var orphan: [Bool]
        var entries: [(dir: UInt64, name: [UInt8], ino: UInt64, type: UInt8)] = []
        var owner: [UInt32]
    }

    func repairScan() -> RepairScan {
        let h = HomeView(sb: sb, mapping: mapping)
        let n = Int(sb.inodeCount)
        var s = RepairScan(inUse: .init(repeating: false, count: n), types: .init(repeating: 0, count: n),
                           nlinks: .init(repeating: 0, count: n), parents: .init(repeating: 0, count: n),
                           orphan: .init(repeating: false, count: n), owner: .init(repeating: 0, count: Int(sb.totalBlocks)))
        for b in 0..<Int(sb.dataStart) { s.owner[b] = UInt32.max }
        for i in 1..<n {
            let ino = UInt64(i)
            guard let raw = try? h.rawInode(ino) else { continue }
            s.inUse[i] = true
            s.types[i] = raw.disk.fileType
            s.nlinks[i] = raw.disk.nlink
            s.parents[i] = raw.parent
            s.orphan[i] = raw.isOrphan
            func claim(_ b: UInt64) { if b >= sb.dataStart, b < sb.totalBlocks, s.owner[Int(b)] == 0 { s.owner[Int(b)] = UInt32(ino) } }
            if raw.disk.mode & 0o170000 == 0o120000 {
                if let b = h.symlinkBlock(raw) { claim(b) }
            } else {
                try? h.forEachOverflowBlock(ino, raw) { claim($0) }
                if let list = try? h.readExtentList(ino, raw) {
                    for e in list { for b in e.physical..<e.physicalEnd { claim(b) } }
                    if raw.disk.isDirectory {
                        var f = Findings()
                        checkDirectory(ino, raw, list, &f, &s.entries)
                    }
                }
            }
            if raw.xattrBlock != 0 { claim(raw.xattrBlock) }
        }
        return s
    }

    /// A block claimed by two inodes stays with the first; the second loses its extent map (a
    /// file) or is cleared (anything else).
    func repairDuplicateBlocks(_ fixed: inout [String]) throws(StoreError) {
        let h = HomeView(sb: sb, mapping: mapping)
        var owner = [UInt32](repeating: 0, count: Int(sb.totalBlocks))
        for b in 0..<Int(sb.dataStart) { owner[b] = UInt32.max }
        var losers: [(UInt64, Bool)] = []
        for i in 1..<sb.inodeCount {
            guard let raw = try? h.rawInode(i) else { continue }
            var blocks: [UInt64] = []
            var metadata: [UInt64] = []
            if raw.disk.mode & 0o170000 == 0o120000 {
                if let b = h.symlinkBlock(raw) { metadata.append(b) }
            } else {
                try? h.forEachOverflowBlock(i, raw) { metadata.append($0) }
                for e in (try? h.readExtentList(i, raw)) ?? [] { for b in e.physical..<e.physicalEnd { (raw.disk.isDirectory ? { metadata.append(b) } : { blocks.append(b) })() } }
            }
            if raw.xattrBlock != 0 { metadata.append(raw.xattrBlock) }
            let taken = (blocks + metadata).contains { $0 < sb.totalBlocks && owner[Int($0)] != 0 }
            if taken {
                losers.append((i, metadata.contains { $0 < sb.totalBlocks && owner[Int($0)] != 0 }))
                continue
            }
            for b in blocks + metadata where b < sb.totalBlocks { owner[Int(b)] = UInt32(i) }
        }
        guard !losers.isEmpty else { return }
        var log: [String] = []
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            for (ino, metadataShared) in losers {
                let raw = try tx().inode(ino)
                if metadataShared || raw.disk.isDirectory {
                    try clearSlot(tx(), ino)
                    log.append("inode \(ino): uses blocks another inode owns: cleared")
                } else {
                    var r = raw
                    r.extentCount = 0; r.extentOverflow = 0; r.disk.blocks = 0
                    let q = try tx().modifyInode(ino)
                    r.encode(q)
                    memset(q + RawInode.oInline, 0, RawInode.inlineBytes)
                    RawInode.seal(q)
                    log.append("inode \(ino): data blocks also owned by another inode: extent map dropped")
                }
                try commitIfFull()
            }
        }
        fixed += log
    }

    /// Offline, no file is open: orphans without links are freed, the others leave the list.
    func repairOrphans(_ fixed: inout [String]) throws(StoreError) {
        let s = repairScan()
        var refs = [UInt32](repeating: 0, count: s.inUse.count)
        for e in s.entries where e.ino < sb.inodeCount { refs[Int(e.ino)] += 1 }
        let head = ld64(mapping.block(0), Superblock.oOrphanHead)
        let flagged = (1..<s.inUse.count).filter { s.inUse[$0] && s.orphan[$0] }
        guard head != 0 || !flagged.isEmpty else { return }
        var log: [String] = []
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            try tx().setOrphanHead(0)
            for i in flagged {
                let ino = UInt64(i)
                var raw = try tx().inode(ino)
                raw.iflags &= ~RawInode.orphan
                raw.orphanNext = 0
                try tx().putInode(ino, raw)
                if refs[i] == 0 && (raw.disk.nlink == 0 || raw.disk.isDirectory) {
                    try tx().freeInode(ino)
                    log.append("orphan inode \(i) freed")
                } else {
                    log.append("inode \(i) taken off the orphan list")
                }
                try commitIfFull()
            }
        }
        if head != 0 && flagged.isEmpty { log.append("orphan list head \(head) cleared") }
        fixed += log
    }

    func repairEntries(_ fixed: inout [String]) throws(StoreError) {
        let s = repairScan()
        var holder = [UInt64](repeating: 0, count: s.inUse.count)
        var log: [String] = []
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            for e in s.entries {
                let shown = String(decoding: e.name, as: UTF8.self).debugDescription
                let target = Int(e.ino)
                if e.ino == 0 || e.ino >= sb.inodeCount || !s.inUse[target] {
                    try tx().removeEntry(directory: e.dir, name: e.name)
                    log.append("directory \(e.dir): entry \(shown) to free inode \(e.ino) removed")
                } else if e.ino == Layout.rootIno {
                    try tx().removeEntry(directory: e.dir, name: e.name)
                    log.append("directory \(e.dir): entry \(shown) linking the root removed")
                } else if s.types[target] == UInt8(DT_DIR) && holder[target] != 0 {
                    try tx().removeEntry(directory: e.dir, name: e.name)
                    log.append("directory \(e.dir): entry \(shown) to directory \(e.ino), which is entered in directory \(holder[target]), removed")
                } else {
                    if s.types[target] == UInt8(DT_DIR) { holder[target] = e.dir }
                    if s.types[target] != e.type {
                        try tx().addEntry(directory: e.dir, name: e.name, ino: e.ino, type: s.types[target])
                        log.append("directory \(e.dir): entry \(shown) type \(e.type) set to \(s.types[target])")
                    }
                }
                try commitIfFull()
            }
        }
        fixed += log
    }

    /// Rewrite both bitmaps from what the inodes own, and every bitmap checksum; then rebuild the
    /// allocators from them.
    func repairBitmaps(_ fixed: inout [String]) throws(StoreError) {
        let s = repairScan()
        var log: [String] = []
        let h = HomeView(sb: sb, mapping: mapping)
        let sp = UnsafeRawPointer(mapping.block(0))
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            var wrongInodes = 0, wrongBlocks = 0
            for i in 0..<UInt64(s.inUse.count) {
                let want = i == 0 || s.inUse[Int(i)]
                if h.inodeInUse(i) != want {
                    if i == 0 { try tx().setBitmapBit(start: sb.inodeBitmapStart, 0, true) } else { try tx().setInodeBit(i, want) }
                    wrongInodes += 1
                    try commitIfFull()
                }
            }
            for b in 0..<sb.totalBlocks {
                let want = s.owner[Int(b)] != 0   // the metadata regions are owned too
                if h.blockInUse(b) != want {
                    try tx().setBitmapBit(start: sb.blockBitmapStart, b, want)
                    wrongBlocks += 1
                    try commitIfFull()
                }
            }
            // Checksums: touch every checksummed bitmap block whose checksum is wrong.
            var badSums = 0
            for b in sb.inodeBitmapStart..<sb.inodeBitmapStart + sb.bitmapBlocks {
                guard let slot = sb.bitmapCRCSlot(b) else { break }
                if ld32(sp, slot) != CRC32C.checksum(h.block(b), Layout.blockSize) { _ = try tx().modify(b); badSums += 1 }
            }
            if wrongInodes > 0 { log.append("inode bitmap: \(wrongInodes) bits corrected") }
            if wrongBlocks > 0 { log.append("block bitmap: \(wrongBlocks) bits corrected") }
            if badSums > 0 { log.append("bitmap checksums: \(badSums) rewritten") }
        }
        fixed += log
        rebuildAllocators()
    }

    func rebuildAllocators() {
        let home = HomeView(sb: sb, mapping: mapping)
        func word(_ start: UInt64) -> (Int) -> UInt64 {
            { w in
                let bit = UInt64(w) * 64
                return ld64(home.block(start + bit / Layout.bitsPerBlock), Int((bit % Layout.bitsPerBlock) / 8))
            }
        }
        blockAllocator.withLock { $0 = BitAllocator(low: sb.dataStart, limit: sb.totalBlocks, onStore: word(sb.blockBitmapStart)) }
        inodeAllocator.withLock { $0 = BitAllocator(low: 1, limit: sb.inodeCount, onStore: word(sb.inodeBitmapStart)) }
    }

    /// Inodes nothing reaches from the root go to /lost+found as "#ino"; unused ones (no links,
    /// no entries) are freed.
    func repairConnectivity(_ fixed: inout [String]) throws(StoreError) {
        let s = repairScan()
        let n = s.inUse.count
        var refs = [UInt32](repeating: 0, count: n)
        var children: [UInt64: [UInt64]] = [:]
        for e in s.entries where e.ino < UInt64(n) { refs[Int(e.ino)] += 1; children[e.dir, default: []].append(e.ino) }
        var reached = [Bool](repeating: false, count: n)
        reached[Int(Layout.rootIno)] = true
        var queue: [UInt64] = [Layout.rootIno]
        while let d = queue.popLast() {
            for c in children[d] ?? [] where !reached[Int(c)] {
                reached[Int(c)] = true
                if s.types[Int(c)] == UInt8(DT_DIR) { queue.append(c) }
            }
        }
        let lost = (1..<n).filter { s.inUse[$0] && !reached[$0] && refs[$0] == 0 }
        guard !lost.isEmpty else { return }
        var log: [String] = []
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            var lf: UInt64? = nil
            for i in lost {
                let ino = UInt64(i)
                if s.nlinks[i] == 0 && s.types[i] != UInt8(DT_DIR) {
                    try tx().freeInode(ino)
                    log.append("inode \(i): no links, no entries: freed")
                    continue
                }
                if lf == nil { lf = try lostAndFound(tx(), &log) }
                try tx().addEntry(directory: lf!, name: Array("#\(i)".utf8), ino: ino, type: s.types[i])
                log.append("inode \(i): not reachable from the root: entered in /lost+found as #\(i)")
                try commitIfFull()
            }
        }
        fixed += log
    }

    /// /lost+found, made (mode 0700, in the root) if it is not there.
    func lostAndFound(_ tx: StoreTransaction, _ log: inout [String]) throws(StoreError) -> UInt64 {
        let name = Array("lost+found".utf8)
        let root = try tx.directoryInode(Layout.rootIno)
        if let found = try withBytes(name, { (n) throws(StoreError) in try tx.dirFind(Layout.rootIno, root, n, key: DirFormat.hash(n)) }),
           found.type == UInt8(DT_DIR) {
            return found.ino
        }
        let (ino, generation) = try allocateInode()
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let t = Timespec(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
        try tx.writeInode(ino, DiskInode(mode: 0o040700, nlink: 2, uid: root.disk.uid, gid: root.disk.gid,
                                         atime: t, mtime: t, ctime: t, generation: generation))
        try tx.addEntry(directory: Layout.rootIno, name: name, ino: ino, type: UInt8(DT_DIR))
        log.append("/lost+found created (inode \(ino))")
        return ino
    }

    /// Parent pointers of directories and every link count, from the entries.
    func repairLinkCounts(_ fixed: inout [String]) throws(StoreError) {
        let s = repairScan()
        let n = s.inUse.count
        var refs = [UInt32](repeating: 0, count: n)
        var subdirs = [UInt32](repeating: 0, count: n)
        var holder = [UInt64](repeating: 0, count: n)
        for e in s.entries where e.ino < UInt64(n) && s.inUse[Int(e.ino)] {
            refs[Int(e.ino)] += 1
            if s.types[Int(e.ino)] == UInt8(DT_DIR) { subdirs[Int(e.dir)] += 1; holder[Int(e.ino)] = e.dir }
        }
        holder[Int(Layout.rootIno)] = Layout.rootIno
        var log: [String] = []
        try inTransactions { (tx, commitIfFull) throws(StoreError) in
            for i in 1..<n where s.inUse[i] {
                let isDir = s.types[i] == UInt8(DT_DIR)
                let want = isDir ? 2 + subdirs[i] : refs[i]
                let wantParent = isDir ? holder[i] : s.parents[i]
                guard want != s.nlinks[i] || (isDir && wantParent != 0 && wantParent != s.parents[i]) else { continue }
                guard want > 0 else { continue }   // connectivity freed or attached these
                var raw = try tx().inode(UInt64(i))
                if want != raw.disk.nlink {
                    log.append("inode \(i): link count \(raw.disk.nlink) set to \(want)")
                    raw.disk.nlink = want
                }
                if isDir && wantParent != 0 && wantParent != raw.parent {
                    log.append("directory \(i): parent \(raw.parent) set to \(wantParent)")
                    raw.parent = wantParent
                }
                try tx().putInode(UInt64(i), raw)
                try commitIfFull()
            }
        }
        fixed += log
    }
}
