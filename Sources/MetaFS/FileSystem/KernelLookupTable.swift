import Synchronization

/// The kernel's lookup counts (nlookup): how many times each inode was handed to the kernel in an
/// entry reply, minus what FORGET returned. A compact sharded table of counters; it does not pin
/// cache objects (an evicted inode is read back from the store when the kernel asks again). It
/// matters for unlinked inodes: they stay on the orphan list until the kernel forgets them.
final class KernelLookupTable: Sendable {
    private static let shardCount = 64
    private final class Shard: Sendable {
        let counts = Mutex<[UInt64: UInt64]>([:])
    }
    private let shards: [Shard]

    init() {
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    @inline(__always)
    private func shard(_ ino: UInt64) -> Shard {
        shards[Int(truncatingIfNeeded: (ino &* 0x9E37_79B9_7F4A_7C15) >> 58) & (Self.shardCount - 1)]
    }

    func increment(_ ino: UInt64) {
        shard(ino).counts.withLock { $0[ino, default: 0] += 1 }
    }

    /// Returns true when the count reached zero (the kernel no longer knows the inode).
    func decrement(_ ino: UInt64, by count: UInt64) -> Bool {
        shard(ino).counts.withLock { table in
            guard let current = table[ino] else { return true }
            if current <= count {
                table[ino] = nil
                return true
            }
            table[ino] = current - count
            return false
        }
    }

    func isKnown(_ ino: UInt64) -> Bool {
        shard(ino).counts.withLock { $0[ino] != nil }
    }

    var count: Int {
        shards.reduce(0) { sum, shard in sum + shard.counts.withLock { $0.count } }
    }
}
