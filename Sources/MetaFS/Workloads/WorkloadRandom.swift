// Seeded, reproducible pseudo-random numbers for the workload generator. SplitMix64: tiny, fast,
// good enough for choosing names, offsets and victims, and the same on every machine, so a seed
// reproduces a run's choices exactly (the interleaving of threads is the only non-determinism).

public struct WorkloadRandom: Sendable {
    private var state: UInt64

    /// A stream of numbers for `seed`; different `stream`s (e.g. thread indexes) are independent.
    public init(seed: UInt64, stream: UInt64 = 0) {
        state = seed ^ (stream &+ 1) &* 0xD1B5_4A32_D192_ED03
        _ = next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.finalize(state)
    }

    /// A number in 0..<n (n > 0). The modulo bias is irrelevant for n far below 2^64.
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0)
        return Int(next() % UInt64(n))
    }

    /// True with probability `percent`/100.
    public mutating func chance(_ percent: Double) -> Bool {
        Double(next() >> 11) / Double(1 << 53) * 100 < percent
    }

    /// A stateless hash of two values: the same inputs give the same number (used to decide, for
    /// instance, which files of a run survive, without storing the decision).
    public static func hash(_ a: UInt64, _ b: UInt64) -> UInt64 {
        finalize(a &* 0x9E37_79B9_7F4A_7C15 ^ finalize(b &+ 0x632B_E59B_D9B4_E019))
    }

    static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Fisher-Yates shuffle of `a` in place.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            a.swapAt(i, below(i + 1))
        }
    }
}
