import Glibc

extension Store {
    /// After a crash (or an unmount with files still open), inodes on the orphan list with no links
    /// left are freed; inodes that were linked again just leave the list. One transaction.
    func processOrphans() throws(StoreError) {
        let h = home
        var head = ld64(h.block(0), Superblock.oOrphanHead)
        guard head != 0 else { return }
        var list: [UInt64] = []
        var steps: UInt64 = 0
        while head != 0 {
            guard head < sb.inodeCount else { throw .corrupt("orphan list: inode \(head) is out of range") }
            guard let raw = try h.rawInode(head) else { throw .corrupt("orphan list: inode \(head) is not allocated") }
            guard raw.isOrphan else { throw .corrupt("orphan list: inode \(head) is not marked as an orphan") }
            list.append(head)
            head = raw.orphanNext
            steps += 1
            guard steps <= sb.inodeCount else { throw .corrupt("orphan list has a cycle") }
        }
        let tx = beginTransaction()
        var freed = 0, kept = 0
        for ino in list {
            let raw = try tx.inode(ino)
            if raw.disk.nlink == 0 {
                try tx.freeInode(ino); freed += 1
            } else {
                try tx.removeOrphan(ino); kept += 1
            }
            if tx.blockCount > maxTransactionBlocks / 2 {
                try tx.commit()
                return try processOrphans()
            }
        }
        try tx.commit()
        recovered = true
        recoveryNotes.append("orphan list: \(freed) inodes freed, \(kept) still linked")
    }
}
