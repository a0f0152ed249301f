import Glibc
@testable import MetaFS
import Testing

/// Checks of the pieces added for speed (docs/PERFORMANCE.md): the hardware CRC32C agrees with the
/// table-driven one, the latency buckets and percentiles, and the loop options taken out of -o.
@Suite struct PerformanceTests {
    @Test func crc32cKnownValueAndHardwareAgreesWithTables() {
        let check = Array("123456789".utf8)
        #expect(CRC32C.checksum(check) == 0xE306_9283)
        var bytes = [UInt8](repeating: 0, count: 4096 + 13)
        var x: UInt32 = 0x1234_5678
        for i in bytes.indices {
            x = x &* 1_664_525 &+ 1_013_904_223
            bytes[i] = UInt8(truncatingIfNeeded: x >> 24)
        }
        bytes.withUnsafeBytes { b in
            for (start, count) in [(0, 0), (0, 1), (3, 7), (1, 4096), (5, 4096 + 8), (0, 4096 + 13)] {
                let p = b.baseAddress! + start
                #expect(CRC32C.update(0, p, count) == CRC32C.software(0, p, count))
                #expect(CRC32C.update(0xDEAD_BEEF, p, count) == CRC32C.software(0xDEAD_BEEF, p, count))
            }
        }
    }

    @Test func latencyBucketsCoverEveryValueInOrder() {
        var previousUpper: UInt64? = nil
        for i in 0..<LatencyBuckets.count - 1 {
            let lower = LatencyBuckets.lowerBound(i), upper = LatencyBuckets.upperBound(i)
            #expect(lower <= upper)
            if let previousUpper { #expect(lower == previousUpper + 1) }
            previousUpper = upper
            #expect(LatencyBuckets.index(lower) == i)
            #expect(LatencyBuckets.index(upper) == i)
            if lower >= 8 { #expect(Double(upper - lower + 1) <= Double(lower) * 0.125 + 1) }
        }
        #expect(LatencyBuckets.index(UInt64.max) == LatencyBuckets.count - 1)
    }

    @Test func percentilesFromHistogram() {
        let stats = FuseStatistics()
        for _ in 0..<90 { stats.record(.getattr, nanoseconds: 100) }
        for _ in 0..<9 { stats.record(.getattr, nanoseconds: 1_000) }
        stats.record(.getattr, nanoseconds: 50_000)
        let l = stats.snapshot()[FuseOperation.getattr.rawValue].latency
        #expect(l.samples == 100)
        #expect(l.p50 >= 100 && l.p50 < 113)
        #expect(l.p90 >= 100 && l.p90 < 113)
        #expect(l.p99 >= 1_000 && l.p99 < 1_125)
        #expect(l.maxNanoseconds == 50_000)
        #expect(l.meanNanoseconds == (90 * 100 + 9 * 1_000 + 50_000) / 100)
        let json = ControlRendering.latencyJSON(l, indent: 0)
        #expect(json.contains("\"p99\": \(l.p99)"))
        stats.reset()
        #expect(stats.snapshot()[FuseOperation.getattr.rawValue].latency.samples == 0)
    }

    @Test func loopOptionsAreTakenOutOfExtraOptions() {
        var defaults = FuseMountOptions()
        defaults.maxThreads = 2
        let (loop, rest) = FuseSession.loopOptions(["no_clone_fd,max_threads=5,ro", "max_idle_threads=1", "noatime"],
                                                   defaults: defaults)
        #expect(loop == FuseSession.LoopOptions(maxThreads: 5, cloneFD: false, maxIdleThreads: 1))
        #expect(rest == ["ro", "noatime"])
    }
}
