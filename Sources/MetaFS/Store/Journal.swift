import Glibc

// The journal: a redo log of full metadata block images, as jbd2 keeps one.
//
//   journal block 0   header: magic, CRC (of 64 bytes), sequence u64 @8 = the next transaction's
//                     sequence; any record with another sequence is stale
//   then, per transaction: descriptor blocks (magic, CRC of the block, sequence @8, tag count u32 @16,
//   up to 508 home block numbers u64 from byte 32), each followed by the images it names, and a
//   commit block (magic, CRC of 64 bytes, sequence @8, block count u32 @16, descriptor count u32 @20,
//   CRC32C of all descriptors and images u32 @24).
//
// Commit: persist noted data; write descriptors and images; persist; write the commit block;
// persist; copy images home (checkpoint); persist; advance the header's sequence; persist. Home
// locations are never written before the commit block is durable. One transaction is in the
// journal at a time, and it is checkpointed before the next begins.

enum JournalFormat {
    static let headerBytes = 64
    static let oSequence = 8, oCount = 16, oDescriptors = 20, oDataChecksum = 24
    static let tagsPerDescriptor = (Layout.blockSize - BlockHeader.size) / 8   // 508
}

/// Where a simulated crash stops a commit (tests of recovery).
public enum StoreCrashPoint: Sendable {
    /// Descriptors and images are in the journal and persisted; no commit record.
    case beforeCommitRecord
    /// The commit record is durable; nothing checkpointed.
    case afterCommitRecord
    /// Checkpointed home locations persisted; the journal not yet marked empty.
    case afterCheckpoint
}

struct JournalHeader {
    /// Rewrite the header (the first 64 bytes; the rest of the block, which holds the superblock
    /// backup, is left as it is).
    static func write(_ p: UnsafeMutableRawPointer, sequence: UInt64) {
        memset(p, 0, JournalFormat.headerBytes)
        st32(p, 0, Layout.journalHeaderMagic)
        st64(p, JournalFormat.oSequence, sequence)
        st32(p, 4, CRC32C.checksum(p, JournalFormat.headerBytes, skippingFieldAt: 4))
    }
    static func read(_ p: UnsafeRawPointer) throws(StoreError) -> UInt64 {
        guard ld32(p, 0) == Layout.journalHeaderMagic else { throw .corrupt("journal header has a bad magic") }
        guard ld32(p, 4) == CRC32C.checksum(p, JournalFormat.headerBytes, skippingFieldAt: 4) else {
            throw .corrupt("journal header checksum mismatch")
        }
        return ld64(p, JournalFormat.oSequence)
    }
}

/// A committed transaction found in the journal.
struct JournalRecord {
    var sequence: UInt64
    /// (home block, journal block holding its image)
    var blocks: [(home: UInt64, image: UInt64)]
}

extension Store {
    /// Scan the journal for the transaction with the header's sequence. Returns it if its commit
    /// record is present and valid; nil if there is none or it is torn (no commit record). Throws when
    /// a commit record is present but the blocks it covers fail their checksum.
    func scanJournal() throws(StoreError) -> (sequence: UInt64, record: JournalRecord?) {
        let start = sb.journalStart, end = sb.journalStart + sb.journalBlocks
        let sequence = try JournalHeader.read(mapping.block(start))
        var pos = start + 1
        var blocks: [(home: UInt64, image: UInt64)] = []
        var crc: UInt32 = 0
        var descriptors = 0
        while pos < end {
            let p = UnsafeRawPointer(mapping.block(pos))
            let magic = ld32(p, 0)
            if magic == Layout.journalDescriptorMagic {
                guard ld64(p, JournalFormat.oSequence) == sequence,
                      ld32(p, 4) == CRC32C.checksum(p, Layout.blockSize, skippingFieldAt: 4) else { return (sequence, nil) }
                let n = Int(ld32(p, JournalFormat.oCount))
                guard n >= 1, n <= JournalFormat.tagsPerDescriptor, pos + 1 + UInt64(n) < end else { return (sequence, nil) }
                crc = CRC32C.update(crc, p, Layout.blockSize)
                for i in 0..<n {
                    let home = ld64(p, BlockHeader.size + i * 8)
                    let image = pos + 1 + UInt64(i)
                    guard home < sb.totalBlocks, home >= end || home == 0 else {
                        throw .corrupt("journal transaction \(sequence): descriptor names home block \(home), which is not a metadata location")
                    }
                    blocks.append((home, image))
                    crc = CRC32C.update(crc, mapping.block(image), Layout.blockSize)
                }
                descriptors += 1
                pos += 1 + UInt64(n)
                continue
            }
            if magic == Layout.journalCommitMagic,
               ld64(p, JournalFormat.oSequence) == sequence,
               ld32(p, 4) == CRC32C.checksum(p, JournalFormat.headerBytes, skippingFieldAt: 4) {
                guard Int(ld32(p, JournalFormat.oCount)) == blocks.count, Int(ld32(p, JournalFormat.oDescriptors)) == descriptors else {
                    throw .corrupt("journal transaction \(sequence): commit record counts \(ld32(p, JournalFormat.oCount)) blocks, the journal holds \(blocks.count)")
                }
                guard ld32(p, JournalFormat.oDataChecksum) == crc else {
                    throw .corrupt("journal transaction \(sequence) checksum mismatch: its commit record is present but its blocks are damaged")
                }
                return (sequence, blocks.isEmpty ? nil : JournalRecord(sequence: sequence, blocks: blocks))
            }
            return (sequence, nil)
        }
        return (sequence, nil)
    }

    /// Replay the committed transaction in the journal, if any; then mark the journal empty.
    /// Returns the number of blocks replayed.
    func replayJournal() throws(StoreError) -> Int {
        let (sequence, record) = try scanJournal()
        nextSequence = sequence
        guard let record else { return 0 }
        for (home, image) in record.blocks {
            mapping.block(home).copyMemory(from: mapping.block(image), byteCount: Layout.blockSize)
        }
        try persistHomeBlocks(record.blocks.map { $0.home })
        nextSequence = sequence + 1
        JournalHeader.write(mapping.block(sb.journalStart), sequence: nextSequence)
        try mapping.persistBlocks(sb.journalStart, count: 1)
        return record.blocks.count
    }

    /// fsck --repair: mark the journal empty with a sequence no record in it carries.
    func resetJournal() throws(StoreError) {
        var top: UInt64 = ld64(mapping.block(sb.journalStart), JournalFormat.oSequence)
        for b in sb.journalStart + 1..<sb.journalStart + sb.journalBlocks {
            let p = mapping.block(b)
            let magic = ld32(p, 0)
            if magic == Layout.journalDescriptorMagic || magic == Layout.journalCommitMagic { top = max(top, ld64(p, JournalFormat.oSequence)) }
        }
        nextSequence = top &+ 1
        JournalHeader.write(mapping.block(sb.journalStart), sequence: nextSequence)
        try mapping.persistBlocks(sb.journalStart, count: 1)
    }

    /// Persist a set of blocks, coalescing adjacent ones into one range.
    func persistHomeBlocks(_ list: [UInt64]) throws(StoreError) {
        let sorted = list.sorted()
        var i = 0
        while i < sorted.count {
            var j = i + 1
            while j < sorted.count && sorted[j] == sorted[j - 1] + 1 { j += 1 }
            try mapping.persistBlocks(sorted[i], count: j - i)
            i = j
        }
    }

    /// The commit protocol (called with the transaction gate held). A failure before the commit
    /// record is durable leaves the store as it was (the journal's sequence moves on, so nothing of
    /// the failed record can be replayed); a failure after it aborts the journal, as jbd2 does:
    /// further commits fail with EIO and the next open replays the transaction.
    func commit(_ tx: StoreTransaction) throws(StoreError) {
        guard !crashed else { throw .io("store stopped by a simulated crash") }
        guard !closed else { throw .io("store is closed") }
        guard !journalAborted else { throw .io("journal aborted after an I/O error during a commit; unmount and open the store again to recover") }
        do {
            try commitSteps(tx)
        } catch {
            if crashed { throw error }
            if tx.durable {
                journalAborted = true
            } else {
                releaseReservations(blocks: tx.metaBlocks)
                nextSequence += 1
                JournalHeader.write(mapping.block(sb.journalStart), sequence: nextSequence)
                try? mapping.persistBlocks(sb.journalStart, count: 1)
            }
            throw error
        }
    }

    private func commitSteps(_ tx: StoreTransaction) throws(StoreError) {
        // 1. Data first: the metadata about to be committed may point at it.
        try persistNotedData()

        // Drop images identical to home; reseal the rest.
        var homes: [UInt64] = []
        for (b, p) in tx.images {
            if b == 0 {
                Superblock.seal(p)
            } else if tx.headerBlocks.contains(b) {
                BlockHeader.seal(p)
            }
            if memcmp(p, mapping.block(b), Layout.blockSize) != 0 { homes.append(b) }
        }
        homes.sort()
        // Home-bitmap view before the checkpoint, to tell durable frees from released reservations.
        let home = HomeView(sb: sb, mapping: mapping)
        let freedBlocks = tx.freedBlocks.map { ($0, home.blockInUse($0)) }
        let freedInodes = tx.freedInodes.map { ($0, home.inodeInUse($0)) }

        if !homes.isEmpty {
            guard homes.count <= maxTransactionBlocks + 1 else {
                throw .noSpace("transaction of \(homes.count) blocks exceeds the journal's \(maxTransactionBlocks)")
            }
            let sequence = nextSequence
            // 2. Descriptors and images.
            let start = sb.journalStart + 1
            var pos = start
            var crc: UInt32 = 0
            var descriptors = 0
            var i = 0
            while i < homes.count {
                let n = min(JournalFormat.tagsPerDescriptor, homes.count - i)
                let d = mapping.block(pos)
                memset(d, 0, Layout.blockSize)
                st32(d, 0, Layout.journalDescriptorMagic)
                st64(d, JournalFormat.oSequence, sequence)
                st32(d, JournalFormat.oCount, UInt32(n))
                for k in 0..<n { st64(d, BlockHeader.size + k * 8, homes[i + k]) }
                st32(d, 4, CRC32C.checksum(d, Layout.blockSize, skippingFieldAt: 4))
                crc = CRC32C.update(crc, d, Layout.blockSize)
                for k in 0..<n {
                    let img = mapping.block(pos + 1 + UInt64(k))
                    img.copyMemory(from: tx.images[homes[i + k]]!, byteCount: Layout.blockSize)
                    crc = CRC32C.update(crc, img, Layout.blockSize)
                }
                descriptors += 1
                pos += 1 + UInt64(n)
                i += n
            }
            try mapping.persistBlocks(start, count: Int(pos - start))
            if crashPoint == .beforeCommitRecord { try crash() }
            // 3. Commit record.
            let c = mapping.block(pos)
            memset(c, 0, Layout.blockSize)
            st32(c, 0, Layout.journalCommitMagic)
            st64(c, JournalFormat.oSequence, sequence)
            st32(c, JournalFormat.oCount, UInt32(homes.count))
            st32(c, JournalFormat.oDescriptors, UInt32(descriptors))
            st32(c, JournalFormat.oDataChecksum, crc)
            st32(c, 4, CRC32C.checksum(c, JournalFormat.headerBytes, skippingFieldAt: 4))
            try mapping.persistBlocks(pos, count: 1)
            tx.durable = true
            if crashPoint == .afterCommitRecord { try crash() }
            // 4. Checkpoint, excluding readers while home locations change.
            lock.withWrite {
                for b in homes { mapping.block(b).copyMemory(from: tx.images[b]!, byteCount: Layout.blockSize) }
            }
            try persistHomeBlocks(homes)
            if crashPoint == .afterCheckpoint { try crash() }
            // 5. The journal is empty again.
            nextSequence = sequence + 1
            JournalHeader.write(mapping.block(sb.journalStart), sequence: nextSequence)
            try mapping.persistBlocks(sb.journalStart, count: 1)
            stats.withLock { $0.commits += 1; $0.journaledBlocks += UInt64(homes.count) }
        }
        // 6. The commit is durable: reservations it recorded end; what it freed returns.
        let final = HomeView(sb: sb, mapping: mapping)
        blockAllocator.withLock { a in
            for b in tx.usedBlocks where final.blockInUse(b) { a.recorded(b) }
            for b in tx.metaBlocks where final.blockInUse(b) { a.recorded(b) }
            for (b, wasInUse) in freedBlocks where !final.blockInUse(b) {
                if wasInUse { a.release(b) } else { a.releaseReservation(b) }
            }
        }
        inodeAllocator.withLock { a in
            for ino in tx.usedInodes where final.inodeInUse(ino) { a.recorded(ino) }
            for (ino, wasInUse) in freedInodes where !final.inodeInUse(ino) {
                if wasInUse { a.release(ino) } else { a.releaseReservation(ino) }
            }
        }
    }

    func crash() throws(StoreError) {
        crashed = true
        throw .io("simulated crash during commit")
    }
}
