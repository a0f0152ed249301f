import Glibc
import MetaCache

/// File data: open files, read and write through the extent cache straight into the store's data
/// blocks (no page cache), truncate, fallocate and SEEK_DATA/SEEK_HOLE.
extension FileSystem {
    // MARK: - Open files

    public func open(_ ino: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        if flags & O_TRUNC != 0 {
            try namespace.exclusive { () throws(FSError) in
                let attributes = try inode(ino)
                guard attributes.isRegular, attributes.size > 0 else { return }
                try truncateLocked(ino, from: attributes.size, to: 0)
                let t = now()
                try modifyInode(ino) { $0.size = 0; $0.mtime = t; $0.ctime = t }
            }
        }
        return try namespace.shared { () throws(FSError) -> UInt64 in try openHandle(ino) }
    }

    public func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32,
                       caller: Caller) throws(FSError) -> (InodeAttributes, UInt64) {
        try Self.validate(name: name)
        return try namespace.exclusive { () throws(FSError) -> (InodeAttributes, UInt64) in
            let attributes = try makeNodeLocked(parent: parent, name: name, mode: S_IFREG | (mode & 0o7777), rdev: 0,
                                                caller: caller)
            let handle = try openHandle(attributes.ino)
            try commitIfLarge()
            return (handedToKernel(attributes), handle)
        }
    }

    /// An open file pins its inode in the cache. The pin can miss if the inode was evicted between
    /// the fill and the pin, so fill and try again.
    func openHandle(_ ino: UInt64) throws(FSError) -> UInt64 {
        repeat {
            _ = try inode(ino)
        } while !cache.inodes.pin(ino)
        return handles.withLock { $0.open(ino) }
    }

    public func release(_ ino: UInt64, fh: UInt64) {
        guard let closed = handles.withLock({ $0.close(fh) }) else { return }
        cache.inodes.unpin(closed.ino)
        if closed.last { releaseIfOrphan(closed.ino) }
    }

    public func flush(_ ino: UInt64, fh: UInt64) throws(FSError) {}

    public func fsync(_ ino: UInt64, datasync: Bool) throws(FSError) {
        try sync()
    }

    // MARK: - Block mapping through the extent cache

    /// The mapping covering `block`: from the extent cache, or on a miss from the store's extent map
    /// (a hole is cached as a hole extent up to the next mapped block). What the store says is
    /// clipped to the gap between cached extents, so a fill never covers a newer dirty extent.
    /// The caller holds the inode's stripe lock or the exclusive namespace lock.
    func mapping(_ ino: UInt64, block: UInt64) throws(FSError) -> ExtentMapping {
        if let cached = cache.extents.lookup(ino: ino, block: block) { return cached }
        var mapping: ExtentMapping
        if let extent = try ioUncommitted(nil, { () throws(StoreError) in try store.extent(ino, covering: block) }) {
            mapping = ExtentMapping(logical: extent.logical, length: extent.length, physical: extent.physical,
                                    status: extent.unwritten ? .unwritten : .written)
        } else {
            let next = try ioUncommitted(nil) { () throws(StoreError) in try store.nextExtent(ino, from: block) }
            let end = min(next?.logical ?? UInt64.max, block + Self.maxHoleBlocks)
            mapping = ExtentMapping(logical: block, length: UInt32(end - block), physical: 0, status: .hole)
        }
        mapping = clipToCachedGap(ino, mapping, around: block)
        cache.extents.insert(ino: ino, mapping, dirty: false)
        return mapping
    }

    /// Largest hole extent cached at once (a hole to the end of the file is open-ended).
    static let maxHoleBlocks: UInt64 = 1 << 30

    private func clipToCachedGap(_ ino: UInt64, _ mapping: ExtentMapping, around block: UInt64) -> ExtentMapping {
        var start = mapping.logical
        var end = mapping.end
        for cached in cache.extents.extents(ino: ino) {
            if cached.end <= block { start = max(start, cached.end) }
            else if cached.logical > block { end = min(end, cached.logical); break }
        }
        var clipped = mapping
        if mapping.status != .hole { clipped.physical += start - mapping.logical }
        clipped.logical = start
        clipped.length = UInt32(end - start)
        return clipped
    }

    // MARK: - Read and write

    public func read(_ ino: UInt64, fh: UInt64, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int {
        // I/O in flight: the extent shrinker leaves this inode's extents alone meanwhile.
        cache.extents.beginIO(ino: ino)
        defer { cache.extents.endIO(ino: ino) }
        return try namespace.shared { () throws(FSError) -> Int in
            let attributes = try inode(ino)
            guard offset < attributes.size, buffer.count > 0 else { return 0 }
            let count = Int(min(UInt64(buffer.count), attributes.size - offset))
            var done = 0
            while done < count {
                let position = offset + UInt64(done)
                let block = position / blockSize
                let within = position % blockSize
                let mapping = try inodeLocks.with(ino) { () throws(FSError) -> ExtentMapping in
                    try self.mapping(ino, block: block)
                }
                let available = (mapping.end - block) * blockSize - within
                let n = Int(min(available, UInt64(count - done)))
                let destination = buffer.baseAddress! + done
                if mapping.status == .written {
                    // Blocks are only freed under the exclusive lock, so copying outside the stripe
                    // lock is safe: the mapping cannot go stale while we hold the shared lock.
                    let source = store.dataPointer(block: mapping.physical + (block - mapping.logical)) + Int(within)
                    memcpy(destination, source, n)
                } else {
                    memset(destination, 0, n)
                }
                done += n
            }
            updateAccessTime(ino, attributes)
            return count
        }
    }

    /// relatime: atime moves only when it is older than mtime or ctime, or a day old.
    private func updateAccessTime(_ ino: UInt64, _ attributes: InodeAttributes) {
        let t = now()
        let stale = attributes.atime.seconds < attributes.mtime.seconds
            || attributes.atime.seconds < attributes.ctime.seconds
            || attributes.atime.seconds + 86_400 <= t.seconds
        guard stale else { return }
        _ = cache.inodes.update(ino) { $0.atime = t }
    }

    public func write(_ ino: UInt64, fh: UInt64, offset: UInt64, from data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        guard data.count > 0 else { return 0 }
        guard offset <= UInt64(Int64.max) - UInt64(data.count) else { throw FSError(EFBIG) }
        cache.extents.beginIO(ino: ino)
        defer { cache.extents.endIO(ino: ino) }
        do {
            return try writeOnce(ino, offset: offset, from: data)
        } catch where error.code == ENOSPC {
            // Blocks freed since the last commit (a delete) return to the allocator only once the
            // commit that frees them is durable: commit, then try once more (the retry rewrites
            // the same bytes to the same places).
            try sync()
            return try writeOnce(ino, offset: offset, from: data)
        }
    }

    private func writeOnce(_ ino: UInt64, offset: UInt64, from data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        try namespace.shared { () throws(FSError) -> Int in
            try inodeLocks.with(ino) { () throws(FSError) -> Int in
                _ = try fillInode(ino)
                var done = 0
                var allocated: UInt64 = 0
                var goal: UInt64 = 0
                let endBlock = (offset + UInt64(data.count) + blockSize - 1) / blockSize
                while done < data.count {
                    let position = offset + UInt64(done)
                    let block = position / blockSize
                    let within = Int(position % blockSize)
                    let mapping = try self.mapping(ino, block: block)
                    let source = data.baseAddress! + done
                    switch mapping.status {
                    case .written:
                        let available = Int((mapping.end - block) * blockSize) - within
                        let n = min(available, data.count - done)
                        let physical = mapping.physical + (block - mapping.logical)
                        copyIntoStore(physical, within: within, from: source, count: n)
                        store.noteDataWritten(block: physical, count: (within + n + Int(blockSize) - 1) / Int(blockSize))
                        done += n
                        goal = physical + UInt64((within + n) / Int(blockSize))
                    case .unwritten:
                        // Preallocated blocks hold garbage: zero what this write does not cover,
                        // then record the blocks as written.
                        let blocks = min(mapping.end, endBlock) - block
                        let physical = mapping.physical + (block - mapping.logical)
                        let n = fillBlocks(physical, count: blocks, within: within, from: source, remaining: data.count - done)
                        cache.extents.insert(ino: ino, ExtentMapping(logical: block, length: UInt32(blocks),
                                                                     physical: physical, status: .written), dirty: true)
                        done += n
                        goal = physical + blocks
                    case .hole:
                        let wanted = min(mapping.end, endBlock) - block
                        let run = try io { () throws(StoreError) in try store.allocateBlocks(count: Int(wanted), goal: goal) }
                        let n = fillBlocks(run.start, count: UInt64(run.count), within: within, from: source,
                                           remaining: data.count - done)
                        cache.extents.insert(ino: ino, ExtentMapping(logical: block, length: UInt32(run.count),
                                                                     physical: run.start, status: .written), dirty: true)
                        allocated += UInt64(run.count)
                        done += n
                        goal = run.start + UInt64(run.count)
                    }
                }
                let t = now()
                let end = offset + UInt64(data.count)
                let sectorsPerBlock = blockSize / 512
                try modifyInode(ino) { attributes in
                    attributes.size = max(attributes.size, end)
                    attributes.blocks += allocated * sectorsPerBlock
                    attributes.mtime = t
                    attributes.ctime = t
                }
                kickFlusherIfLarge()
                return done
            }
        }
    }

    /// Copies data into `count` fresh blocks starting `within` bytes into the first, zeroing the
    /// rest of them. Returns the bytes copied.
    private func fillBlocks(_ physical: UInt64, count: UInt64, within: Int, from source: UnsafeRawPointer, remaining: Int) -> Int {
        let bytes = Int(count * blockSize)
        let n = min(bytes - within, remaining)
        let destination = store.dataPointer(block: physical)
        memset(destination, 0, within)
        copyIntoStore(physical, within: within, from: source, count: n)
        memset(destination + within + n, 0, bytes - within - n)
        store.noteDataWritten(block: physical, count: Int(count))
        return n
    }

    /// Copies `count` bytes to `within` bytes into data block `physical` (and the blocks after it).
    /// Large copies go through pwrite(2) on the store file rather than memcpy into the mapping:
    /// the profile of 1 MiB direct-I/O writes into a fresh store spent about half of the daemon's
    /// time in page faults on the mapping, one per 4 KiB page, most of it clearing pages that the
    /// store's posix_fallocate had reserved; a write(2) into the file fills the same page-cache pages
    /// (the mapping sees them; persist's msync covers them) without faulting or clearing them
    /// first. Small copies stay a memcpy (a syscall costs more than a few faults).
    @inline(__always)
    func copyIntoStore(_ physical: UInt64, within: Int, from source: UnsafeRawPointer, count: Int) {
        if count >= 64 * 1024, store.writeData(block: physical, offset: within, from: source, count: count) { return }
        memcpy(store.dataPointer(block: physical) + within, source, count)
    }

    // MARK: - Size changes and preallocation

    /// Shrinks or grows a file's data to `newSize` (the caller updates the size attribute).
    /// Exclusive lock held.
    func truncateLocked(_ ino: UInt64, from oldSize: UInt64, to newSize: UInt64) throws(FSError) {
        guard newSize < oldSize else { return }
        if newSize % blockSize != 0 {
            try zeroBytes(ino, block: newSize / blockSize, from: newSize % blockSize, to: blockSize)
        }
        let firstFreed = (newSize + blockSize - 1) / blockSize
        let freed = try deallocate(ino, from: firstFreed, count: UInt64.max)
        if freed > 0 {
            let sectors = freed * (blockSize / 512)
            try modifyInode(ino) { $0.blocks -= min($0.blocks, sectors) }
        }
    }

    /// Zeroes bytes [from, to) of a file block if it is written, so a later read or extension
    /// sees zeros there.
    private func zeroBytes(_ ino: UInt64, block: UInt64, from: UInt64, to: UInt64) throws(FSError) {
        guard to > from else { return }
        let mapping = try self.mapping(ino, block: block)
        guard mapping.status == .written else { return }
        let physical = mapping.physical + (block - mapping.logical)
        memset(store.dataPointer(block: physical) + Int(from), 0, Int(to - from))
        store.noteDataWritten(block: physical, count: 1)
    }

    /// Removes the file blocks [from, from+count) from the store's extent map and frees them, in a
    /// transaction of its own after committing everything dirty (so the store map is complete).
    /// Returns the number of blocks freed. Exclusive lock held.
    func deallocate(_ ino: UInt64, from: UInt64, count: UInt64) throws(FSError) -> UInt64 {
        try commitLocked()
        let map = try io { () throws(StoreError) in try store.readExtents(ino) }
        let (kept, removed) = ExtentList.cut(map, from: from, count: count)
        cache.extents.remove(ino: ino, from: from, count: count)
        guard !removed.isEmpty else { return 0 }
        let transaction = store.beginTransaction()
        try io { () throws(StoreError) in
            try transaction.setExtents(ino, mapping: kept)
            for extent in removed { try transaction.freeBlocks(start: extent.physical, count: Int(extent.length)) }
            try transaction.commit()
        }
        commits.add(1, ordering: .relaxed)
        return removed.reduce(0) { $0 + UInt64($1.length) }
    }

    public func fallocate(_ ino: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError) {
        let keepSize = Linux.fallocKeepSize, punchHole = Linux.fallocPunchHole
        guard length > 0 else { throw FSError(EINVAL) }
        guard offset <= UInt64(Int64.max) - length else { throw FSError(EFBIG) }
        try namespace.exclusive { () throws(FSError) in
            let attributes = try inode(ino)
            guard attributes.isRegular else { throw FSError(attributes.isDirectory ? EISDIR : ENODEV) }
            let end = offset + length
            let t = now()
            switch mode {
            case 0, keepSize:
                let allocated = try preallocate(ino, from: offset / blockSize, to: (end + blockSize - 1) / blockSize)
                let sectors = allocated * (blockSize / 512)
                try modifyInode(ino) { attributes in
                    attributes.blocks += sectors
                    if mode == 0 && end > attributes.size {
                        attributes.size = end
                        attributes.mtime = t
                    }
                    attributes.ctime = t
                }
            case punchHole | keepSize:
                // Partial blocks at either edge are zeroed in place; whole blocks are freed.
                let firstBlock = offset / blockSize, lastBlock = end / blockSize
                if offset % blockSize != 0 {
                    let to = lastBlock == firstBlock ? end % blockSize : blockSize
                    try zeroBytes(ino, block: firstBlock, from: offset % blockSize, to: to)
                }
                if end % blockSize != 0 && (offset % blockSize == 0 || lastBlock != firstBlock) {
                    try zeroBytes(ino, block: lastBlock, from: 0, to: end % blockSize)
                }
                let first = (offset + blockSize - 1) / blockSize
                let last = end / blockSize
                if last > first {
                    let freed = try deallocate(ino, from: first, count: last - first)
                    let sectors = freed * (blockSize / 512)
                    try modifyInode(ino) { $0.blocks -= min($0.blocks, sectors) }
                }
                try modifyInode(ino) { $0.mtime = t; $0.ctime = t }
            default:
                throw FSError(EOPNOTSUPP)
            }
        }
    }

    /// Allocates unwritten extents over the holes in [first, end). Returns the blocks allocated.
    private func preallocate(_ ino: UInt64, from first: UInt64, to end: UInt64) throws(FSError) -> UInt64 {
        var block = first
        var allocated: UInt64 = 0
        var goal: UInt64 = 0
        while block < end {
            let mapping = try self.mapping(ino, block: block)
            let stop = min(mapping.end, end)
            if mapping.status == .hole {
                let count = Int(stop - block)
                let run: (start: UInt64, count: Int)
                do {
                    run = try io { () throws(StoreError) in try store.allocateBlocks(count: count, goal: goal) }
                } catch where error.code == ENOSPC {
                    try commitLocked()   // frees since the last commit return to the allocator
                    run = try io { () throws(StoreError) in try store.allocateBlocks(count: count, goal: goal) }
                }
                cache.extents.insert(ino: ino, ExtentMapping(logical: block, length: UInt32(run.count),
                                                             physical: run.start, status: .unwritten), dirty: true)
                allocated += UInt64(run.count)
                goal = run.start + UInt64(run.count)
                block += UInt64(run.count)
            } else {
                block = stop
            }
        }
        return allocated
    }

    // MARK: - SEEK_DATA / SEEK_HOLE

    public func lseek(_ ino: UInt64, fh: UInt64, offset: Int64, whence: Int32) throws(FSError) -> Int64 {
        guard whence == Linux.seekData || whence == Linux.seekHole else { throw FSError(EINVAL) }
        guard offset >= 0 else { throw FSError(ENXIO) }
        return try namespace.exclusive { () throws(FSError) -> Int64 in
            let size = try inode(ino).size
            let start = UInt64(offset)
            guard start < size else { throw FSError(ENXIO) }
            // The store's map is complete once everything dirty is committed.
            try commitLocked()
            var block = start / blockSize
            if whence == Linux.seekData {
                guard let extent = try io({ () throws(StoreError) in try store.nextExtent(ino, from: block) }) else {
                    throw FSError(ENXIO)
                }
                let position = extent.logical <= block ? start : extent.logical * blockSize
                guard position < size else { throw FSError(ENXIO) }
                return Int64(position)
            }
            while block * blockSize < size {
                guard let extent = try io({ () throws(StoreError) in try store.nextExtent(ino, from: block) }),
                      extent.logical <= block else { break }
                block = extent.logical + UInt64(extent.length)
            }
            return Int64(min(max(start, block * blockSize), size))
        }
    }
}

/// Operations on a sorted list of store extents.
enum ExtentList {
    /// Splits `map` around the file blocks [from, from+count): what stays, and the pieces removed.
    static func cut(_ map: [StoreExtent], from: UInt64, count: UInt64) -> (kept: [StoreExtent], removed: [StoreExtent]) {
        let end = count > UInt64.max - from ? UInt64.max : from + count
        var kept: [StoreExtent] = []
        var removed: [StoreExtent] = []
        for extent in map {
            let extentEnd = extent.logical + UInt64(extent.length)
            if extentEnd <= from || extent.logical >= end {
                kept.append(extent)
                continue
            }
            if extent.logical < from {
                kept.append(piece(of: extent, from: extent.logical, to: from))
            }
            removed.append(piece(of: extent, from: max(extent.logical, from), to: min(extentEnd, end)))
            if extentEnd > end {
                kept.append(piece(of: extent, from: end, to: extentEnd))
            }
        }
        return (kept, removed)
    }

    /// `map` with `mappings` laid over it (newer wins), holes dropped, neighbours merged.
    static func overlay(_ map: [StoreExtent], with mappings: [ExtentMapping]) -> [StoreExtent] {
        var result = map
        for mapping in mappings {
            result = cut(result, from: mapping.logical, count: UInt64(mapping.length)).kept
            guard mapping.status != .hole else { continue }
            let extent = StoreExtent(logical: mapping.logical, length: mapping.length, physical: mapping.physical,
                                     unwritten: mapping.status == .unwritten)
            let index = result.firstIndex { $0.logical > mapping.logical } ?? result.endIndex
            result.insert(extent, at: index)
        }
        return merged(result)
    }

    static func merged(_ map: [StoreExtent]) -> [StoreExtent] {
        var result: [StoreExtent] = []
        result.reserveCapacity(map.count)
        for extent in map {
            if var last = result.last,
               last.logical + UInt64(last.length) == extent.logical,
               last.physical + UInt64(last.length) == extent.physical,
               last.unwritten == extent.unwritten,
               UInt64(last.length) + UInt64(extent.length) <= UInt64(UInt32.max) {
                last.length += extent.length
                result[result.count - 1] = last
            } else {
                result.append(extent)
            }
        }
        return result
    }

    private static func piece(of extent: StoreExtent, from: UInt64, to: UInt64) -> StoreExtent {
        StoreExtent(logical: from, length: UInt32(to - from), physical: extent.physical + (from - extent.logical),
                    unwritten: extent.unwritten)
    }
}
