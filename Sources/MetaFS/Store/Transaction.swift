import Glibc
import MetaCache

/// A batch of metadata changes that reaches the store atomically. Changes are made to private
/// copies of the metadata blocks (reads within the transaction see them); `commit` journals the
/// block images, then checkpoints them to their home locations.
///
/// One transaction is open at a time: `beginTransaction` waits until the previous one has committed
/// or been aborted (do not begin a second one on the thread that holds the first). Every operation
/// is all-or-nothing: when it throws, the transaction is as it was before the call, and the caller
/// may go on, commit what it has, or `abort()`.
///
/// The state below is used by one thread at a time (the gate), and every access is a short get or
/// set that never overlaps another: its dynamic exclusivity checks are turned off
/// (`@exclusivity(unchecked)`). They were ~7% of the daemon's instructions in a metadata profile,
/// 121,000 checks in `modify` alone for 2,000 files (docs/PERFORMANCE.md).
public final class StoreTransaction {
    let store: Store
    let sb: Superblock
    /// Private images of modified metadata blocks, by block number.
    @exclusivity(unchecked) var images: [UInt64: UnsafeMutableRawPointer] = [:]
    /// Data-area blocks with a BlockHeader to reseal at commit.
    @exclusivity(unchecked) var headerBlocks: Set<UInt64> = []
    /// Blocks and inodes this transaction frees (returned to the allocator once the commit is durable).
    @exclusivity(unchecked) var freedBlocks: [UInt64] = []
    @exclusivity(unchecked) var freedInodes: [UInt64] = []
    /// Blocks and inodes this transaction records as in use (their reservations end at commit).
    @exclusivity(unchecked) var usedBlocks: [UInt64] = []
    @exclusivity(unchecked) var usedInodes: [UInt64] = []
    /// Blocks the transaction allocated for its own metadata (released if it is aborted).
    @exclusivity(unchecked) var metaBlocks: [UInt64] = []
    @exclusivity(unchecked) var finished = false
    /// Set once the commit record is durable.
    var durable = false

    // Undo log of the operation in progress: a block's image before the operation (nil: new).
    @exclusivity(unchecked) private var undo: [UInt64: UnsafeMutableRawPointer?] = [:]
    @exclusivity(unchecked) private var inOperation = false
    /// Block buffers of finished operations' undo copies, reused by the next operations: an
    /// allocation and a free per operation and block were ~10% of the daemon's instructions in a
    /// create/rename/unlink profile (docs/PERFORMANCE.md).
    @exclusivity(unchecked) private var spareBuffers: [UnsafeMutableRawPointer] = []

    private func undoBuffer() -> UnsafeMutableRawPointer {
        spareBuffers.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: Layout.blockSize, alignment: 64)
    }

    init(store: Store) {
        self.store = store
        self.sb = store.sb
    }

    deinit {
        if !finished { abort() }
        for (_, p) in images { p.deallocate() }
        for p in spareBuffers { p.deallocate() }
    }

    /// Number of metadata blocks the transaction modifies so far (the journal holds
    /// `store.usage.maxTransactionBlocks`).
    public var blockCount: Int { images.count }

    /// Give up the transaction: nothing reaches the store; blocks it allocated for metadata return to
    /// the allocator. Reservations made with `allocateInode`/`allocateBlocks` stay with the caller.
    public func abort() {
        guard !finished else { return }
        finished = true
        store.releaseReservations(blocks: metaBlocks)
        store.gate.leave()
    }

    // MARK: block access

    func checkOpen() throws(StoreError) {
        guard !finished else { throw StoreError(EINVAL, "transaction already committed or aborted") }
    }

    /// Run one operation all-or-nothing.
    func operation<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try checkOpen()
        precondition(!inOperation, "nested store transaction operation")
        inOperation = true
        let marks = (freedBlocks.count, freedInodes.count, usedBlocks.count, usedInodes.count, metaBlocks.count, headerBlocks)
        defer {
            inOperation = false
            for (_, saved) in undo { if let saved { spareBuffers.append(saved) } }
            undo.removeAll(keepingCapacity: true)
        }
        do {
            return try body()
        } catch {
            // Roll back: restore images, drop new ones, forget list entries, release new metadata blocks.
            for (b, saved) in undo {
                if let saved {
                    images[b]!.copyMemory(from: saved, byteCount: Layout.blockSize)
                } else {
                    images.removeValue(forKey: b)?.deallocate()
                }
            }
            freedBlocks.removeSubrange(marks.0...)
            freedInodes.removeSubrange(marks.1...)
            usedBlocks.removeSubrange(marks.2...)
            usedInodes.removeSubrange(marks.3...)
            store.releaseReservations(blocks: Array(metaBlocks[marks.4...]))
            metaBlocks.removeSubrange(marks.4...)
            headerBlocks = marks.5
            throw error
        }
    }

    /// The superblock image at commit, past the operation limit.
    private func modifyUnchecked(_ b: UInt64) throws(StoreError) -> UnsafeMutableRawPointer {
        if let p = images[b] { return p }
        let p = UnsafeMutableRawPointer.allocate(byteCount: Layout.blockSize, alignment: 64)
        p.copyMemory(from: store.mapping.block(b), byteCount: Layout.blockSize)
        images[b] = p
        return p
    }

    /// A private, writable image of block `b` (copied from home on first use).
    func modify(_ b: UInt64, header: Bool = false) throws(StoreError) -> UnsafeMutableRawPointer {
        if header { headerBlocks.insert(b) }
        if let p = images[b] {
            if inOperation, undo[b] == nil {
                let saved = undoBuffer()
                saved.copyMemory(from: p, byteCount: Layout.blockSize)
                undo[b] = .some(saved)
            }
            return p
        }
        guard images.count < store.maxTransactionBlocks else {
            throw .noSpace("transaction would modify more than \(store.maxTransactionBlocks) metadata blocks, the journal's capacity: commit sooner")
        }
        guard b < sb.totalBlocks else { throw .corrupt("metadata block \(b) is outside the store") }
        let p = UnsafeMutableRawPointer.allocate(byteCount: Layout.blockSize, alignment: 64)
        p.copyMemory(from: store.mapping.block(b), byteCount: Layout.blockSize)
        images[b] = p
        if inOperation { undo[b] = .some(nil) }
        return p
    }

    /// A fresh zeroed metadata block with a header, allocated near `goal`.
    func allocateMetaBlock(goal: UInt64, magic: UInt32, owner: UInt64) throws(StoreError) -> (UInt64, UnsafeMutableRawPointer) {
        let b = try store.allocateMetaBlock(goal: goal)
        metaBlocks.append(b)
        try setBlockBit(b, true)
        let p = try modify(b, header: true)
        BlockHeader.initialize(p, magic: magic, owner: owner)
        return (b, p)
    }

    /// Free a metadata block owned by this inode (released after commit).
    func freeMetaBlock(_ b: UInt64) throws(StoreError) {
        try setBlockBit(b, false)
        freedBlocks.append(b)
        headerBlocks.remove(b)
    }

    func setBitmapBit(start: UInt64, _ n: UInt64, _ value: Bool) throws(StoreError) {
        let p = try modify(start + n / Layout.bitsPerBlock)
        let bit = n % Layout.bitsPerBlock
        let byte = p.load(fromByteOffset: Int(bit / 8), as: UInt8.self)
        let mask: UInt8 = 1 << UInt8(bit % 8)
        p.storeBytes(of: value ? byte | mask : byte & ~mask, toByteOffset: Int(bit / 8), as: UInt8.self)
    }
    func setBlockBit(_ b: UInt64, _ value: Bool) throws(StoreError) {
        guard b >= sb.dataStart, b < sb.totalBlocks else { throw .corrupt("block \(b) is outside the data area") }
        try setBitmapBit(start: sb.blockBitmapStart, b, value)
    }
    func setInodeBit(_ ino: UInt64, _ value: Bool) throws(StoreError) {
        guard ino >= 1, ino < sb.inodeCount else { throw .corrupt("inode \(ino) is out of range") }
        try setBitmapBit(start: sb.inodeBitmapStart, ino, value)
    }

    /// Writable pointer to an inode slot.
    func modifyInode(_ ino: UInt64) throws(StoreError) -> UnsafeMutableRawPointer {
        let (b, o) = inodeLocation(ino)
        return try modify(b) + o
    }

    func putInode(_ ino: UInt64, _ raw: RawInode) throws(StoreError) {
        raw.encode(try modifyInode(ino))
    }

    var orphanHead: UInt64 { ld64(block(0), Superblock.oOrphanHead) }
    func setOrphanHead(_ ino: UInt64) throws(StoreError) {
        st64(try modify(0), Superblock.oOrphanHead, ino)
    }

    // MARK: public operations

    /// Write the inode's public fields. An inode not yet on the store is allocated there (it should
    /// come from `allocateInode`); the store's own fields (extents, xattrs, ...) are preserved.
    public func writeInode(_ ino: UInt64, _ inode: DiskInode) throws(StoreError) {
        try operation { () throws(StoreError) in
            try checkIno(ino)
            let p = try modifyInode(ino)
            var raw = RawInode.decode(p)
            if !raw.isInUse {
                // Not handed out by allocateInode? Claim it so that it is never handed out twice.
                store.claimInodeIfFree(ino)
                let parent = raw.parent   // set by addEntry earlier in this transaction
                raw = RawInode(disk: inode, iflags: RawInode.inUse)
                raw.parent = inode.isDirectory ? parent : 0
                memset(p + RawInode.oInline, 0, RawInode.inlineBytes)
                try setInodeBit(ino, true)
                usedInodes.append(ino)
            }
            raw.disk = inode
            raw.encode(p)
        }
    }

    /// Free the inode and everything it owns: extent blocks, extent overflow blocks, directory
    /// blocks, xattr block, symlink block; it leaves the orphan list. The slot keeps its generation.
    /// An inode reserved but never written to the store just has its reservation released.
    public func freeInode(_ ino: UInt64) throws(StoreError) {
        try operation { () throws(StoreError) in
            guard ino != Layout.rootIno else { throw StoreError(EPERM, "the root directory cannot be freed") }
            guard let raw = try rawInode(ino) else {
                freedInodes.append(ino)   // a reservation: released after commit if still reserved
                return
            }
            if raw.isOrphan { try unlinkOrphan(ino, raw) }
            let list = try readExtentList(ino, raw)
            for e in list {
                for b in e.physical..<e.physicalEnd { try setBlockBit(b, false); freedBlocks.append(b) }
            }
            try forEachOverflowBlock(ino, raw) { (b) throws(StoreError) in try freeMetaBlock(b) }
            if raw.xattrBlock != 0 { try freeMetaBlock(raw.xattrBlock) }
            if let sym = symlinkBlock(raw) { try freeMetaBlock(sym) }
            let p = try modifyInode(ino)
            let generation = raw.disk.generation
            memset(p, 0, Layout.inodeSize)
            st32(p, 76, generation)
            RawInode.seal(p)
            try setInodeBit(ino, false)
            freedInodes.append(ino)
        }
    }

    /// Add `name` → `ino` to a directory, replacing an entry of the same name. A directory entry
    /// (type DT_DIR) also records `directory` as the child's parent.
    public func addEntry(directory: UInt64, name: [UInt8], ino: UInt64, type: UInt8) throws(StoreError) {
        try operation { () throws(StoreError) in try dirAdd(directory, name, ino, type) }
    }

    public func removeEntry(directory: UInt64, name: [UInt8]) throws(StoreError) {
        try operation { () throws(StoreError) in try dirRemove(directory, name) }
    }

    /// Replace the whole extent map of a file (sorted by logical block, not overlapping). Blocks newly
    /// mapped are recorded as in use; blocks no longer mapped are freed.
    public func setExtents(_ ino: UInt64, mapping: [StoreExtent]) throws(StoreError) {
        try operation { () throws(StoreError) in try replaceExtents(ino, mapping) }
    }

    /// Free data blocks (e.g. cut off by a truncate). Blocks the transaction already freed, or that
    /// are only reservations (then released after commit), are accepted.
    public func freeBlocks(start: UInt64, count: Int) throws(StoreError) {
        try operation { () throws(StoreError) in
            guard count >= 0, start >= sb.dataStart, start + UInt64(count) <= sb.totalBlocks else {
                throw .invalid("freeBlocks(\(start), \(count)) is outside the data area")
            }
            for b in start..<start + UInt64(count) {
                if blockInUse(b) { try setBlockBit(b, false) }
                freedBlocks.append(b)
            }
        }
    }

    public func setSymlink(_ ino: UInt64, target: [UInt8]) throws(StoreError) {
        try operation { () throws(StoreError) in try writeSymlink(ino, target) }
    }

    /// Replace all xattrs of an inode. ENOSPC when they do not fit one block.
    public func setXattrs(_ ino: UInt64, _ xattrs: [(name: [UInt8], value: [UInt8])]) throws(StoreError) {
        try operation { () throws(StoreError) in try writeXattrs(ino, xattrs) }
    }

    /// Put an inode on the orphan list (unlinked but still open); no-op if it is on it.
    public func addOrphan(_ ino: UInt64) throws(StoreError) {
        try operation { () throws(StoreError) in
            var raw = try inode(ino)
            if raw.isOrphan { return }
            raw.orphanNext = orphanHead
            raw.iflags |= RawInode.orphan
            try putInode(ino, raw)
            try setOrphanHead(ino)
        }
    }

    /// Take an inode off the orphan list; no-op if it is not on it.
    public func removeOrphan(_ ino: UInt64) throws(StoreError) {
        try operation { () throws(StoreError) in
            let raw = try inode(ino)
            if raw.isOrphan { try unlinkOrphan(ino, raw) }
        }
    }

    func unlinkOrphan(_ ino: UInt64, _ rawIn: RawInode) throws(StoreError) {
        var raw = rawIn
        if orphanHead == ino {
            try setOrphanHead(raw.orphanNext)
        } else {
            var prev = orphanHead
            var steps: UInt64 = 0
            while prev != 0 {
                var p = try inode(prev)
                if p.orphanNext == ino {
                    p.orphanNext = raw.orphanNext
                    try putInode(prev, p)
                    break
                }
                prev = p.orphanNext
                steps += 1
                if steps > sb.inodeCount { throw .corrupt("orphan list has a cycle") }
            }
        }
        raw.orphanNext = 0
        raw.iflags &= ~RawInode.orphan
        try putInode(ino, raw)
    }

    /// Persist the data noted with `noteDataWritten`, then journal, checkpoint and release.
    public func commit() throws(StoreError) {
        try checkOpen()
        // Bitmap checksums live in the superblock (maxTransactionBlocks leaves room for it).
        let bitmaps = images.keys.filter { sb.bitmapCRCSlot($0) != nil }
        if !bitmaps.isEmpty {
            let sp = try modifyUnchecked(0)
            for b in bitmaps { st32(sp, sb.bitmapCRCSlot(b)!, CRC32C.checksum(images[b]!, Layout.blockSize)) }
        }
        finished = true
        defer { store.gate.leave() }
        try store.commit(self)
    }
}

extension StoreTransaction: MetaView {
    @inline(__always) func block(_ b: UInt64) -> UnsafeRawPointer {
        if let p = images[b] { return UnsafeRawPointer(p) }
        return UnsafeRawPointer(store.mapping.block(b))
    }
    @inline(__always) func isPrivate(_ b: UInt64) -> Bool { images[b] != nil }
    var verifyChecksums: Bool { true }
}
