import Glibc
import MetaCache
import Synchronization

/// The persistent-memory-like store: one file mapped MAP_SHARED holding a superblock, a journal,
/// inode and block bitmaps, an inode table and data blocks (see Layout.swift). Metadata changes go
/// through journaled transactions; file data is written in place through `dataPointer`.
///
/// Thread safety: the read methods may be called concurrently from any thread, also while a commit
/// runs (they see committed metadata; a checkpoint excludes them briefly). Allocation is safe from
/// any thread. One transaction is open at a time (`beginTransaction` waits).
public final class Store: @unchecked Sendable {
    public let path: String
    public let blockSize: Int = Layout.blockSize
    let sb: Superblock
    let mapping: Mapping
    let lock = RWLock()
    let gate = Gate()
    let blockAllocator: Mutex<BitAllocator>
    let inodeAllocator: Mutex<BitAllocator>
    let noted = Mutex<[(UInt64, Int)]>([])
    struct Stats { var commits: UInt64 = 0; var journaledBlocks: UInt64 = 0 }
    let stats = Mutex(Stats())
    /// The most metadata blocks one transaction may modify (the journal's capacity); an operation
    /// that would go past it fails with ENOSPC and leaves the transaction as it was: commit, then retry.
    public let maxTransactionBlocks: Int
    /// Sequence number of the next journal transaction (under the gate).
    var nextSequence: UInt64 = 1
    /// A commit failed after its record was durable: no further commits until reopened.
    var journalAborted = false
    private let state = Atomic<UInt8>(0)   // bit 0: closed, bit 1: stopped by a simulated crash
    var closed: Bool {
        get { state.load(ordering: .acquiring) & 1 != 0 }
        set { if newValue { state.bitwiseOr(1, ordering: .releasing) } else { state.bitwiseAnd(~1, ordering: .releasing) } }
    }
    var crashed: Bool {
        get { state.load(ordering: .acquiring) & 2 != 0 }
        set { if newValue { state.bitwiseOr(2, ordering: .releasing) } else { state.bitwiseAnd(~2, ordering: .releasing) } }
    }
    /// Verify block checksums on every metadata read (always in check() and at open).
    public var verifyChecksumsOnRead: Bool {
        get { verifyReads.load(ordering: .relaxed) }
        set { verifyReads.store(newValue, ordering: .relaxed) }
    }
    let verifyReads = Atomic<Bool>(true)
    public internal(set) var recovered = false
    /// What open did to recover: journal blocks replayed, orphans freed.
    public internal(set) var recoveryNotes: [String] = []
    /// Repairs made by a tolerant open (fsck --repair).
    var openRepairs = 0

    /// Test hook: make the next commit stop ("crash") at this point. The store is then unusable;
    /// call `simulateCrash()` and open the file again.
    public var crashPoint: StoreCrashPoint?

    private init(path: String, sb: Superblock, mapping: Mapping) {
        self.path = path
        self.sb = sb
        self.mapping = mapping
        self.maxTransactionBlocks = sb.maxTransactionBlocks
        let home = HomeView(sb: sb, mapping: mapping)
        func word(_ start: UInt64) -> (Int) -> UInt64 {
            { w in
                let bit = UInt64(w) * 64
                return ld64(home.block(start + bit / Layout.bitsPerBlock), Int((bit % Layout.bitsPerBlock) / 8))
            }
        }
        blockAllocator = Mutex(BitAllocator(low: sb.dataStart, limit: sb.totalBlocks, onStore: word(sb.blockBitmapStart)))
        inodeAllocator = Mutex(BitAllocator(low: 1, limit: sb.inodeCount, onStore: word(sb.inodeBitmapStart)))
    }

    deinit {
        if !closed && !crashed { Glibc.close(mapping.fd) }
    }

    // MARK: create / open / close

    /// Make a new store file of `size` bytes (rounded down to whole blocks), created 0600 and fully
    /// allocated. An existing file at `path` is overwritten. One inode per 16 KiB unless `inodeCount`.
    public static func create(path: String, size: UInt64, inodeCount: UInt64? = nil, rootUID: UInt32, rootGID: UInt32) throws(StoreError) {
        let sb = try Superblock.geometry(size: size, inodeCount: inodeCount)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system("cannot create store file \(path)") }
        var ok = false
        defer {
            if !ok { Glibc.close(fd); unlink(path) }
        }
        fchmod(fd, 0o600)
        let err = posix_fallocate(fd, 0, off_t(sb.fileSize))
        guard err == 0 else {
            if err == ENOSPC { throw .noSpace("not enough space for a \(sb.fileSize)-byte store file at \(path)") }
            throw .system("cannot allocate the \(sb.fileSize)-byte store file \(path)", err)
        }
        let mapping = try Mapping(fd: fd, length: Int(sb.fileSize))
        sb.encode(into: mapping.block(0))
        JournalHeader.write(mapping.block(sb.journalStart), sequence: 1)
        sb.writeBackup(into: mapping.block(sb.journalStart))
        // Inode bitmap: 0 (reserved) and 1 (root).
        mapping.block(sb.inodeBitmapStart).storeBytes(of: 0b11, as: UInt8.self)
        // Block bitmap: every metadata block.
        for b in 0..<sb.dataStart {
            let p = mapping.block(sb.blockBitmapStart + b / Layout.bitsPerBlock)
            let bit = b % Layout.bitsPerBlock
            let byte = p.load(fromByteOffset: Int(bit / 8), as: UInt8.self)
            p.storeBytes(of: byte | (1 << UInt8(bit % 8)), toByteOffset: Int(bit / 8), as: UInt8.self)
        }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let now = Timespec(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
        let root = RawInode(disk: DiskInode(mode: 0o040755, nlink: 2, uid: rootUID, gid: rootGID, size: UInt64(Layout.blockSize),
                                            atime: now, mtime: now, ctime: now, generation: 1),
                            iflags: RawInode.inUse, parent: Layout.rootIno)
        let home = HomeView(sb: sb, mapping: mapping)
        let (ib, io) = home.inodeLocation(Layout.rootIno)
        root.encode(mapping.block(ib) + io)
        for b in sb.inodeBitmapStart..<sb.inodeBitmapStart + sb.bitmapBlocks {
            guard let slot = sb.bitmapCRCSlot(b) else { break }
            st32(mapping.block(0), slot, CRC32C.checksum(mapping.block(b), Layout.blockSize))
        }
        Superblock.seal(mapping.block(0))
        try mapping.persist(offset: 0, length: Int(sb.fileSize))
        guard fsync(fd) == 0 else { throw .system("fsync of the new store file \(path)") }
        mapping.unmap()
        ok = true
        Glibc.close(fd)
    }

    /// Open a store: validate the superblock, replay the journal, rebuild the allocators from the
    /// bitmaps and free the inodes left on the orphan list. Errors name what is wrong.
    public static func open(path: String) throws(StoreError) -> Store {
        try open(path: path, tolerant: false, repair: false)
    }

    /// `tolerant` (fsck): bitmap checksum mismatches and a damaged orphan list do not stop the
    /// open (the check names them); with `repair`, a damaged journal is reset.
    static func open(path: String, tolerant: Bool, repair: Bool) throws(StoreError) -> Store {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw StoreError(ENOENT, "store file \(path) does not exist") }
            throw .system("cannot open store file \(path)", e)
        }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }
        // The lock can be held for a moment after its owner closed the store: a child forked
        // (posix_spawn) by any thread of the owner's process shares the descriptor until it execs.
        // So a busy lock is retried briefly before the store is called in use.
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            attempts += 1
            guard errno == EWOULDBLOCK, attempts < 100 else {
                throw StoreError(EBUSY, "store file \(path) is in use by another process (it is locked)")
            }
            usleep(10_000)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .system("cannot stat store file \(path)") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .invalid("\(path) is not a regular file") }
        let size = UInt64(st.st_size)
        guard size >= UInt64(Layout.blockSize) else {
            throw .corrupt(size == 0 ? "store file \(path) is empty" : "store file is \(size) bytes, too small to hold a superblock")
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Layout.blockSize, alignment: 64)
        defer { buffer.deallocate() }
        guard pread(fd, buffer, Layout.blockSize, 0) == Layout.blockSize else { throw .system("cannot read the superblock of \(path)") }
        var sb: Superblock
        do {
            sb = try Superblock.decode(buffer, fileSize: size)
        } catch {
            // A checkpoint of a journaled superblock torn by a crash: its geometry is intact and
            // the journal still holds the whole block, so replay first and decode again below.
            guard error.message.hasPrefix("superblock checksum mismatch"),
                  let geometry = Superblock.decodeUnverified(buffer, fileSize: size) else { throw error }
            sb = geometry
        }
        let mapping = try Mapping(fd: fd, length: Int(sb.fileSize))
        // Replay before anything reads metadata.
        let probe = Store(path: path, sb: sb, mapping: mapping)
        probe.closed = true   // not a usable store: its allocators predate the replay
        var replayed = 0
        var notes: [String] = []
        do {
            replayed = try probe.replayJournal()
        } catch {
            guard repair else { throw error }
            try probe.resetJournal()
            notes.append("journal reset (\(error.message)); its last transaction is lost")
        }
        // The superblock may have been replayed: read it again.
        sb = try Superblock.decode(mapping.block(0), fileSize: size)
        if !tolerant { try sb.verifyBitmaps(superblock: mapping.block(0)) { UnsafeRawPointer(mapping.block($0)) } }
        let store = Store(path: path, sb: sb, mapping: mapping)
        store.recoveryNotes = notes
        store.openRepairs = notes.count
        store.nextSequence = probe.nextSequence
        store.recovered = sb.state != Layout.stateClean || replayed > 0
        if sb.state != Layout.stateClean { store.recoveryNotes.append("store was not closed cleanly") }
        if replayed > 0 { store.recoveryNotes.append("journal transaction \(probe.nextSequence - 1) replayed (\(replayed) blocks)") }
        // Mark mounted.
        let p = mapping.block(0)
        st32(p, Superblock.oState, Layout.stateMounted)
        st64(p, Superblock.oMountCount, ld64(p, Superblock.oMountCount) &+ 1)
        Superblock.seal(p)
        try mapping.persistBlocks(0, count: 1)
        if tolerant {
            do { try store.processOrphans() } catch { store.recoveryNotes.append("orphan list not processed: \(error.message)") }
        } else {
            try store.processOrphans()
        }
        ok = true
        return store
    }

    /// Mark the store clean and unmap it. No transaction may be open.
    public func close() throws(StoreError) {
        guard !crashed else { throw .io("store stopped by a simulated crash") }
        gate.enter()
        defer { gate.leave() }
        guard !closed else { return }
        try persistNotedData()
        let p = mapping.block(0)
        lock.withWrite {
            st32(p, Superblock.oState, Layout.stateClean)
            Superblock.seal(p)
        }
        try mapping.persistBlocks(0, count: 1)
        closed = true
        mapping.unmap()
        Glibc.close(mapping.fd)
    }

    /// Test hook: drop the store as a power cut would (as far as a shared mapping allows): no
    /// further writes, nothing marked clean. Open the file again to recover.
    public func simulateCrash() {
        guard !closed else { return }
        crashed = true
        closed = true
        mapping.unmap()
        Glibc.close(mapping.fd)
    }

    func checkUsable() throws(StoreError) {
        if crashed { throw .io("store stopped by a simulated crash") }
        if closed { throw .io("store is closed") }
    }

    var home: HomeView { HomeView(sb: sb, mapping: mapping, verifyChecksums: verifyReads.load(ordering: .relaxed)) }

    // MARK: reads of committed metadata

    public func readInode(_ ino: UInt64) throws(StoreError) -> DiskInode? {
        try checkUsable()
        guard ino >= 1, ino < sb.inodeCount else { return nil }
        return try lock.withRead { () throws(StoreError) in try home.rawInode(ino)?.disk }
    }

    public func lookup(directory: UInt64, name: UnsafeRawBufferPointer) throws(StoreError) -> (ino: UInt64, type: UInt8)? {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in try home.dirLookup(directory, name) }
    }

    /// Entries after `cookie` (0 = start) in hash order; body returns false to stop. Cookies are
    /// >= 16 (an entry's name hash + 16), so 1...15 are free for "." and "..".
    public func readDirectory(_ ino: UInt64, after cookie: UInt64, _ body: (_ name: UnsafeRawBufferPointer, _ ino: UInt64, _ type: UInt8, _ cookie: UInt64) -> Bool) throws(StoreError) {
        try checkUsable()
        var from: UInt64 = cookie < DirFormat.cookieBias ? 0 : cookie - DirFormat.cookieBias + 1
        guard from < (1 << UInt64(DirFormat.keyBits)) else { return }
        while true {
            let (entries, next) = try lock.withRead { () throws(StoreError) in
                try home.dirBatch(ino, try home.directoryInode(ino), fromKey: from)
            }
            for e in entries {
                let go = e.name.withUnsafeBytes { body($0, e.ino, e.type, e.key + DirFormat.cookieBias) }
                if !go { return }
            }
            guard let next else { return }
            from = next
        }
    }

    /// True when the directory has no entries.
    public func isEmptyDirectory(_ ino: UInt64) throws(StoreError) -> Bool {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in try home.directoryInode(ino).dirEntries == 0 }
    }

    /// Entry count of a directory.
    public func entryCount(_ ino: UInt64) throws(StoreError) -> UInt64 {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in try home.directoryInode(ino).dirEntries }
    }

    /// The directory a directory is entered in (its ".."); the root's parent is the root.
    public func parent(of ino: UInt64) throws(StoreError) -> UInt64 {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in try home.directoryInode(ino).parent }
    }

    public func extent(_ ino: UInt64, covering block: UInt64) throws(StoreError) -> StoreExtent? {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in
            let h = home
            return try h.extentCovering(ino, try h.inode(ino), block)
        }
    }

    /// The first extent ending after `block` (the one covering it, or the next one).
    public func nextExtent(_ ino: UInt64, from block: UInt64) throws(StoreError) -> StoreExtent? {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in
            let h = home
            return try h.extentAfter(ino, try h.inode(ino), block)
        }
    }

    public func readExtents(_ ino: UInt64) throws(StoreError) -> [StoreExtent] {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in
            let h = home
            return try h.readExtentList(ino, try h.inode(ino))
        }
    }

    public func readSymlink(_ ino: UInt64) throws(StoreError) -> [UInt8] {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in
            let h = home
            return try h.symlinkTarget(ino, try h.inode(ino))
        }
    }

    public func readXattrs(_ ino: UInt64) throws(StoreError) -> [(name: [UInt8], value: [UInt8])] {
        try checkUsable()
        return try lock.withRead { () throws(StoreError) in
            let h = home
            return try h.xattrList(ino, try h.inode(ino))
        }
    }

    // MARK: allocation

    /// Reserve a free inode; its generation is one more than the slot's last one.
    public func allocateInode() throws(StoreError) -> (ino: UInt64, generation: UInt32) {
        try checkUsable()
        guard let r = inodeAllocator.withLock({ $0.allocate(count: 1, goal: nil) }) else {
            throw .noSpace("no free inodes (all \(sb.inodeCount - 1) in use)")
        }
        let generation = lock.withRead { home.slotGeneration(r.start) } &+ 1
        return (r.start, generation == 0 ? 1 : generation)
    }

    /// Blocks file data may not take, so that commits can still allocate metadata blocks
    /// (directory leaves and index, extent overflow, xattr and symlink blocks) when data has filled
    /// the store: without it an acknowledged create could never commit.
    public var metadataReserveBlocks: UInt64 { min(256, max(8, (sb.totalBlocks - sb.dataStart) / 64)) }

    /// Reserve up to `count` contiguous data blocks near `goal` (0: anywhere); at least one. ENOSPC
    /// when only the metadata reserve is left.
    public func allocateBlocks(count: Int, goal: UInt64) throws(StoreError) -> (start: UInt64, count: Int) {
        try checkUsable()
        guard count >= 1 else { throw .invalid("allocateBlocks(count: \(count))") }
        let reserve = metadataReserveBlocks
        guard let r = blockAllocator.withLock({ (a: inout BitAllocator) -> (start: UInt64, count: Int)? in
            guard a.free > reserve else { return nil }
            return a.allocate(count: min(count, Int(a.free - reserve)), goal: goal == 0 ? nil : goal)
        }) else {
            throw .noSpace("no free data blocks (all \(sb.totalBlocks - sb.dataStart) in use, \(reserve) kept for metadata)")
        }
        return r
    }

    /// Give back an inode reserved by `allocateInode` and never written. Harmless if it is not a reservation.
    public func releaseUncommittedInode(_ ino: UInt64) {
        inodeAllocator.withLock { _ = $0.releaseReservation(ino) }
    }

    /// Give back blocks reserved by `allocateBlocks` and never mapped in a committed extent map.
    public func releaseUncommittedBlocks(start: UInt64, count: Int) {
        guard count > 0 else { return }
        blockAllocator.withLock { a in
            for b in start..<start + UInt64(count) { a.releaseReservation(b) }
        }
    }

    func allocateMetaBlock(goal: UInt64) throws(StoreError) -> UInt64 {
        guard let r = blockAllocator.withLock({ $0.allocate(count: 1, goal: goal) }) else {
            throw .noSpace("no free blocks for metadata")
        }
        return r.start
    }

    func releaseReservations(blocks: [UInt64]) {
        guard !blocks.isEmpty else { return }
        blockAllocator.withLock { a in for b in blocks { a.releaseReservation(b) } }
    }

    func claimBlockIfFree(_ b: UInt64) { blockAllocator.withLock { _ = $0.claim(b) } }
    func claimInodeIfFree(_ ino: UInt64) { inodeAllocator.withLock { _ = $0.claim(ino) } }

    // MARK: data

    /// Where data block `block` lives in the mapping (4096 bytes). Writes there are durable once
    /// noted with `noteDataWritten` and a commit (or `persist`) has run.
    public func dataPointer(block: UInt64) -> UnsafeMutableRawPointer {
        precondition(block >= sb.dataStart && block < sb.totalBlocks, "data block \(block) is outside the data area")
        return mapping.block(block)
    }

    /// Writes `count` bytes at `offset` bytes into data block `block` (and the blocks after it)
    /// through the store file (pwrite) instead of the mapping: the same pages, without a page fault
    /// per page (FileData.copyIntoStore). False if the file refused (the caller copies instead).
    /// Like a write through `dataPointer`, it is durable once noted and persisted.
    public func writeData(block: UInt64, offset: Int, from source: UnsafeRawPointer, count: Int) -> Bool {
        precondition(block >= sb.dataStart && block < sb.totalBlocks
                     && (Int(block) << Layout.blockShift) + offset + count <= Int(sb.totalBlocks) << Layout.blockShift,
                     "data write outside the data area")
        var done = 0
        while done < count {
            let n = pwrite(mapping.fd, source + done, count - done, off_t((Int(block) << Layout.blockShift) + offset + done))
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            return done == 0 ? false : { memcpy(mapping.block(block) + offset + done, source + done, count - done); return true }()
        }
        return true
    }

    /// Record data written in place; the next commit persists it before its metadata.
    public func noteDataWritten(block: UInt64, count: Int) {
        guard count > 0 else { return }
        noted.withLock { list in
            if let last = list.last, last.0 + UInt64(last.1) == block { list[list.count - 1].1 += count } else { list.append((block, count)) }
        }
    }

    func persistNotedData() throws(StoreError) {
        let list = noted.withLock { l in let x = l; l.removeAll(); return x }
        guard !list.isEmpty else { return }
        var ranges = list.sorted { $0.0 < $1.0 }
        var merged: [(UInt64, Int)] = []
        for r in ranges {
            if let last = merged.last, last.0 + UInt64(last.1) >= r.0 {
                merged[merged.count - 1].1 = max(last.1, Int(r.0 - last.0) + r.1)
            } else { merged.append(r) }
        }
        ranges = merged
        for (b, n) in ranges { try mapping.persistBlocks(b, count: n) }
    }

    /// The one durability barrier: msync of the pages covering the range.
    public func persist(offset: Int, length: Int) {
        let start = max(0, offset), end = min(Int(sb.fileSize), offset + max(0, length))
        guard end > start else { return }
        do { try mapping.persist(offset: start, length: end - start) } catch {
            // msync fails only for a bad range or an I/O error; there is nobody to tell here.
            let line = "metafs store: \(error.message)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// Called with each persisted range (after the msync): the hook issue 6's persisted-image mode
    /// uses. Set it before any concurrent use.
    public var persistObserver: ((_ offset: Int, _ length: Int) -> Void)? {
        get { mapping.persistObserver }
        set { mapping.persistObserver = newValue }
    }

    // MARK: transactions

    public func beginTransaction() -> StoreTransaction {
        gate.enter()
        return StoreTransaction(store: self)
    }

    public var usage: StoreUsage {
        let b = blockAllocator.withLock { $0.free }
        let i = inodeAllocator.withLock { $0.free }
        let s = stats.withLock { $0 }
        return StoreUsage(blockSize: blockSize, storeBytes: sb.fileSize, totalBlocks: sb.totalBlocks,
                          dataBlocks: sb.totalBlocks - sb.dataStart, freeBlocks: b, totalInodes: sb.inodeCount - 1,
                          freeInodes: i, journalBlocks: sb.journalBlocks, commits: s.commits,
                          journaledBlocks: s.journaledBlocks, persists: mapping.persistCount,
                          persistedBytes: mapping.persistedBytes, maxTransactionBlocks: maxTransactionBlocks,
                          recovered: recovered)
    }
}
