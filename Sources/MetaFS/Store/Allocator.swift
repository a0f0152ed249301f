/// An in-memory bitmap allocator for blocks or inodes. `used` is the allocator's view: bits in use
/// on the store, reserved by callers but not yet committed, or freed by a commit not yet durable.
/// `reserved` marks reservations not yet recorded on the store, so that releasing one twice, or
/// releasing something the store owns, is harmless.
struct BitAllocator {
    private(set) var used: [UInt64]
    private(set) var reserved: [UInt64]
    /// Bits [low, limit) are allocatable.
    let low: UInt64
    let limit: UInt64
    private(set) var free: UInt64
    private var hint: UInt64

    /// `onStore(word)` returns the on-store bitmap word `word` (bits past `limit` are ignored).
    init(low: UInt64, limit: UInt64, onStore: (Int) -> UInt64) {
        self.low = low; self.limit = limit
        let words = Int((limit + 63) / 64)
        used = [UInt64](repeating: 0, count: words)
        reserved = [UInt64](repeating: 0, count: words)
        var free: UInt64 = 0
        for w in 0..<words {
            var word = onStore(w)
            let first = UInt64(w) * 64
            // Bits below `low` and at or past `limit` are never allocatable.
            if first < low || first + 64 > limit {
                for bit in 0..<64 {
                    let b = first + UInt64(bit)
                    if b < low || b >= limit { word |= 1 << UInt64(bit) }
                }
            }
            used[w] = word
            free += UInt64(64 - word.nonzeroBitCount)
        }
        self.free = free
        self.hint = low
    }

    @inline(__always) func isUsed(_ b: UInt64) -> Bool { used[Int(b >> 6)] & (1 << (b & 63)) != 0 }
    @inline(__always) func isReserved(_ b: UInt64) -> Bool { reserved[Int(b >> 6)] & (1 << (b & 63)) != 0 }

    private mutating func set(_ b: UInt64) { used[Int(b >> 6)] |= 1 << (b & 63); reserved[Int(b >> 6)] |= 1 << (b & 63); free -= 1 }

    /// First free bit at or after `from` (wrapping once), or nil when full.
    private func findFree(from: UInt64) -> UInt64? {
        guard free > 0 else { return nil }
        let words = used.count
        var w = Int(from >> 6)
        var mask: UInt64 = ~0 << (from & 63)
        for _ in 0...words {
            let freeBits = ~used[w] & mask
            if freeBits != 0 {
                let b = UInt64(w) * 64 + UInt64(freeBits.trailingZeroBitCount)
                if b >= low && b < limit { return b }
            }
            mask = ~0
            w += 1
            if w == words { w = 0 }
        }
        return nil
    }

    private func runLength(at b: UInt64, max: Int) -> Int {
        var n = 0
        var x = b
        while n < max && x < limit && !isUsed(x) { n += 1; x += 1 }
        return n
    }

    /// Reserve up to `count` contiguous bits near `goal` (a full run preferred). Nil when none is free.
    mutating func allocate(count: Int, goal: UInt64?) -> (start: UInt64, count: Int)? {
        var from = goal ?? hint
        if from < low || from >= limit { from = low }
        guard let first = findFree(from: from) else { return nil }
        var best = (first, runLength(at: first, max: count))
        if best.1 < count {
            // Look a little further for a run that satisfies the whole request.
            var probe = first + UInt64(best.1) + 1
            var budget = 64
            while budget > 0, probe < limit, let b = findFree(from: probe), b >= probe {
                let n = runLength(at: b, max: count)
                if n > best.1 { best = (b, n) }
                if n >= count { break }
                probe = b + UInt64(n) + 1
                budget -= 1
            }
        }
        for i in 0..<best.1 { set(best.0 + UInt64(i)) }
        if goal == nil { hint = best.0 + UInt64(best.1) }
        return (best.0, best.1)
    }

    /// Reserve a specific bit (the store maps a block the allocator did not hand out). False if used.
    mutating func claim(_ b: UInt64) -> Bool {
        guard b >= low, b < limit, !isUsed(b) else { return false }
        set(b)
        return true
    }

    /// Forget a reservation once the store records it as in use.
    mutating func recorded(_ b: UInt64) {
        reserved[Int(b >> 6)] &= ~(1 << (b & 63))
    }

    /// Release a reservation that was never recorded on the store. False (and nothing done) if `b`
    /// is not a reservation.
    @discardableResult
    mutating func releaseReservation(_ b: UInt64) -> Bool {
        guard b >= low, b < limit, isReserved(b) else { return false }
        reserved[Int(b >> 6)] &= ~(1 << (b & 63))
        used[Int(b >> 6)] &= ~(1 << (b & 63))
        free += 1
        return true
    }

    /// Return a bit whose freeing commit is durable.
    mutating func release(_ b: UInt64) {
        guard b >= low, b < limit, isUsed(b) else { return }
        reserved[Int(b >> 6)] &= ~(1 << (b & 63))
        used[Int(b >> 6)] &= ~(1 << (b & 63))
        free += 1
    }
}
