// MetaCache benchmarks: memory per object and RSS against reported memory with 1,000,000
// objects of each kind; single-thread dentry lookup and insert+remove; 2-thread lookup scaling.
// Timing with clock_gettime(CLOCK_MONOTONIC). Lookup names are formatted into a stack buffer
// (as a FUSE request brings them), and the cost of that formatting alone is reported too.

import Foundation
import MetaCache

@inline(__always)
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

@inline(__always)
func threadCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Fixed-stride name table: name i is "file-" + decimal i, at most `stride` bytes.
final class Names: @unchecked Sendable {
    static let stride = 24
    let count: Int
    let bytes: UnsafeMutableRawPointer
    let lengths: UnsafeMutablePointer<UInt8>
    init(count: Int, offset: Int = 0) {
        self.count = count
        bytes = .allocate(byteCount: count * Names.stride, alignment: 16)
        lengths = .allocate(capacity: count)
        for i in 0..<count {
            let s = Array("file-\(i + offset)".utf8)
            s.withUnsafeBytes { (bytes + i * Names.stride).copyMemory(from: $0.baseAddress!, byteCount: s.count) }
            lengths[i] = UInt8(s.count)
        }
    }
    @inline(__always) func name(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes + i * Names.stride, count: Int(lengths[i]))
    }
}

let directories = 1_000
@inline(__always) func parent(of i: Int) -> UInt64 { UInt64(2 + i % directories) }

func config() -> CacheConfiguration {
    var c = CacheConfiguration()
    c.expectedObjects = 65536
    return c
}

func fmt(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }

// MARK: Memory

func memory(kind: String, count: Int, fill: (MetaCache) -> Void) -> Bool {
    let rssBefore = ProcessMemory.residentBytes()
    let cache = MetaCache(configuration: config())
    fill(cache)
    let rssAfter = ProcessMemory.residentBytes()
    let reported = cache.memoryBytes
    let slab = cache.statistics().reduce(0) { $0 + $1.slabBytes }
    let grown = rssAfter - rssBefore
    let ratio = Double(grown) / Double(reported)
    let perObject = Double(reported) / Double(count)
    print("  \(kind.padding(toLength: 8, withPad: " ", startingAt: 0)) \(count) objects: reported \(fmt(Double(reported) / 1048576)) MiB "
          + "(slabs \(fmt(Double(slab) / 1048576)) MiB) = \(fmt(perObject)) B/object; "
          + "RSS grew \(fmt(Double(grown) / 1048576)) MiB = \(fmt(ratio * 100))% of reported")
    withExtendedLifetime(cache) {}
    return abs(ratio - 1) <= 0.15
}

// MARK: Speed

/// Writes "file-<i>" at `p` (as Names does) and returns its length: the name a FUSE request
/// would bring in a fresh buffer, made without touching a table that would miss in cache.
@inline(__always)
func formatName(_ i: Int, _ p: UnsafeMutableRawPointer) -> Int {
    p.storeBytes(of: 0x2d_65_6c_69_66, as: UInt64.self)     // "file-" (and 3 bytes overwritten below)
    var digits = 1
    var v = i / 10
    while v > 0 { digits += 1; v /= 10 }
    v = i
    var k = 5 + digits
    repeat {
        k -= 1
        p.storeBytes(of: UInt8(48 + v % 10), toByteOffset: k, as: UInt8.self)
        v /= 10
    } while v > 0
    return 5 + digits
}

func lookupLoop(_ cache: MetaCache, _ order: UnsafeMutablePointer<Int32>, _ n: Int) -> Int {
    var hits = 0
    withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { buf in
        let p = buf.baseAddress!
        for k in 0..<n {
            let i = Int(order[k])
            let len = formatName(i, p)
            if case .positive = cache.dentries.lookup(parent: parent(of: i), name: UnsafeRawBufferPointer(start: p, count: len)) { hits += 1 }
        }
    }
    return hits
}

/// The same loop without the cache: what formatting names and walking the order costs.
func baselineLoop(_ order: UnsafeMutablePointer<Int32>, _ n: Int) -> Int {
    var sum = 0
    withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { buf in
        let p = buf.baseAddress!
        for k in 0..<n {
            let i = Int(order[k])
            let len = formatName(i, p)
            sum &+= len &+ Int(parent(of: i)) &+ Int(p.load(fromByteOffset: len - 1, as: UInt8.self))
        }
    }
    return sum
}

func randomOrder(_ n: Int, range: Int, seed: UInt64) -> UnsafeMutablePointer<Int32> {
    var rng = SplitMix(state: seed)
    let p = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    for k in 0..<n { p[k] = Int32(Int.random(in: 0..<range, using: &rng)) }
    return p
}

func populate(_ cache: MetaCache, _ names: Names, _ n: Int) {
    for i in 0..<n {
        cache.dentries.insert(parent: parent(of: i), name: names.name(i), ino: UInt64(i + 10_000), type: 8, dirty: false)
    }
}

/// ns per lookup hit, single thread, best of 3 runs: wall, thread CPU, and wall net of the
/// loop that only formats the names.
func lookupNs(_ cache: MetaCache, set: Int, ops: Int) -> (wall: Double, cpu: Double, net: Double) {
    let order = randomOrder(ops, range: set, seed: 7)
    defer { order.deallocate() }
    _ = lookupLoop(cache, order, ops)     // warm
    var best = Double.infinity, cpu = Double.infinity, base = Double.infinity
    for _ in 0..<3 {
        var t0 = now()
        let c0 = threadCPU()
        let hits = lookupLoop(cache, order, ops)
        best = min(best, (now() - t0) / Double(ops) * 1e9)
        cpu = min(cpu, (threadCPU() - c0) / Double(ops) * 1e9)
        precondition(hits == ops)
        t0 = now()
        let sum = baselineLoop(order, ops)
        base = min(base, (now() - t0) / Double(ops) * 1e9)
        precondition(sum != 0)
    }
    return (best, cpu, best - base)
}

func insertRemoveNs(_ cache: MetaCache, ops: Int) -> Double {
    var best = Double.infinity
    withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { buf in
        let p = buf.baseAddress!
        for _ in 0..<3 {
            let t0 = now()
            for k in 0..<ops {
                let i = 50_000_000 + (k & 4095)
                let name = UnsafeRawBufferPointer(start: p, count: formatName(i, p))
                cache.dentries.insert(parent: parent(of: i), name: name, ino: 77, type: 8, dirty: false)
                cache.dentries.remove(parent: parent(of: i), name: name)
            }
            best = min(best, (now() - t0) / Double(ops) * 1e9)
        }
    }
    return best
}

/// Lookups per second with `threads` threads, each doing `ops` random lookups over `set` names:
/// by the wall clock, and as the sum of each thread's ops per second of its own CPU time (what
/// the threads would do with a core each, whatever else runs on the machine).
func lookupRate(_ cache: MetaCache, set: Int, ops: Int, threads: Int) -> (wall: Double, cpu: Double) {
    let orders = (0..<threads).map { randomOrder(ops, range: set, seed: UInt64(100 + $0)) }
    defer { orders.forEach { $0.deallocate() } }
    nonisolated(unsafe) let ordersRef = orders
    let cpuRates = UnsafeMutablePointer<Double>.allocate(capacity: threads)
    defer { cpuRates.deallocate() }
    nonisolated(unsafe) let rates = cpuRates
    let ready = DispatchSemaphore(value: 0)
    let go = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    for t in 0..<threads {
        done.enter()
        let th = Thread {
            _ = lookupLoop(cache, ordersRef[t], ops / 10)   // warm
            ready.signal()
            go.wait()
            let c0 = threadCPU()
            _ = lookupLoop(cache, ordersRef[t], ops)
            rates[t] = Double(ops) / (threadCPU() - c0)
            done.leave()
        }
        th.start()
    }
    for _ in 0..<threads { ready.wait() }
    let t0 = now()
    for _ in 0..<threads { go.signal() }
    done.wait()
    let t = now() - t0
    var cpu = 0.0
    for t in 0..<threads { cpu += rates[t] }
    return (Double(ops * threads) / t, cpu)
}

/// Reference: ns per dependent load at random over `bytes` of 4 KiB-paged memory (a pointer
/// chase through one word per cache line), the floor under any lookup that misses in cache.
func chaseNs(bytes: Int) -> Double {
    let lines = bytes / 64
    let p = UnsafeMutableRawPointer.allocate(byteCount: lines * 64, alignment: 4096)
    defer { p.deallocate() }
    var rng = SplitMix(state: 3)
    var perm = Array(0..<lines)
    perm.shuffle(using: &rng)
    for i in 0..<lines {
        p.storeBytes(of: perm[(i + 1) % lines], toByteOffset: perm[i] * 64, as: Int.self)
    }
    var cur = perm[0]
    let steps = 2_000_000
    let t0 = now()
    for _ in 0..<steps { cur = p.load(fromByteOffset: cur * 64, as: Int.self) }
    let t = now() - t0
    precondition(cur >= 0)
    return t / Double(steps) * 1e9
}

@main
struct Bench {
    static func main() {
        let n = 1_000_000
        print("MetaCache benchmark (release), \(ProcessInfo.processInfo.activeProcessorCount) CPUs, page \(ProcessMemory.pageSize) B")
        let names = Names(count: n)

        if let only = ProcessInfo.processInfo.environment["BENCH_PROFILE_SET"], let set = Int(only) {
            // For perf: nothing but lookups over one working set.
            let cache = MetaCache(configuration: config())
            populate(cache, names, n)
            let ops = Int(ProcessInfo.processInfo.environment["BENCH_PROFILE_OPS"] ?? "") ?? 20_000_000
            let order = randomOrder(ops, range: set, seed: 1)
            let t0 = now()
            print("hits: \(lookupLoop(cache, order, ops)) in \(fmt((now() - t0) / Double(ops) * 1e9)) ns each")
            if ProcessInfo.processInfo.environment["BENCH_PROFILE_CHURN"] != nil {
                print("insert+remove: \(fmt(insertRemoveNs(cache, ops: ops / 3))) ns per pair (x3)")
            }
            return
        }
        print("Memory, \(n) objects of each kind (reported = MetaCache.memoryBytes: slabs, descriptors, hash tables, shards):")
        var memoryOK = true
        memoryOK = memory(kind: "dentry", count: n) { populate($0, names, n) } && memoryOK
        memoryOK = memory(kind: "inode", count: n) { c in
            for i in 0..<n {
                c.inodes.insert(InodeAttributes(ino: UInt64(i + 2), mode: 0o100644, nlink: 1, uid: 1000, gid: 1000, size: UInt64(i)), dirty: false)
            }
        } && memoryOK
        memoryOK = memory(kind: "extent", count: n) { c in
            // 1,000 files of 1,000 extents each, physically apart so that they do not merge.
            for f in 0..<1_000 {
                for e in 0..<1_000 {
                    let logical = UInt64(e * 8)
                    c.extents.insert(ino: UInt64(f + 2), ExtentMapping(logical: logical, length: 4, physical: UInt64(f * 100_000 + e * 16), status: .written), dirty: false)
                }
            }
        } && memoryOK
        print("  RSS growth within 15% of reported for every kind: \(memoryOK ? "yes" : "NO")")

        let cache = MetaCache(configuration: config())
        populate(cache, names, n)
        print("Speed, single thread (best of 3; ns per operation by the wall clock, by the thread's CPU time,")
        print("and by the wall clock net of the loop that only formats the names):")
        for set in [10_000, 100_000, n] {
            let r = lookupNs(cache, set: set, ops: 2_000_000)
            print("  dentry lookup hit, random among \(set) names: \(fmt(r.wall)) ns wall, \(fmt(r.cpu)) ns CPU, \(fmt(r.net)) ns net")
        }
        print("  reference, one dependent random load over 1 MiB / 8 MiB / 88 MiB: \(fmt(chaseNs(bytes: 1 << 20))) / \(fmt(chaseNs(bytes: 8 << 20))) / \(fmt(chaseNs(bytes: 88 << 20))) ns")
        print("  dentry insert+remove (new name, \(n) cached): \(fmt(insertRemoveNs(cache, ops: 1_000_000))) ns per pair")

        print("Scaling, dentry lookup hits (each thread its own random order; best of 3; wall clock, and CPU-time rates):")
        for set in [10_000, 100_000, n] {
            // Best of 3 for each thread count, interleaved, so a burst of other work on the
            // machine does not decide the ratio.
            var one = (wall: 0.0, cpu: 0.0), two = (wall: 0.0, cpu: 0.0)
            for _ in 0..<3 {
                let a = lookupRate(cache, set: set, ops: 2_000_000, threads: 1)
                let b = lookupRate(cache, set: set, ops: 2_000_000, threads: 2)
                one = (max(one.wall, a.wall), max(one.cpu, a.cpu))
                two = (max(two.wall, b.wall), max(two.cpu, b.cpu))
            }
            print("  \(set) names: wall 1 thread \(fmt(one.wall / 1e6, 2)) M/s, 2 threads \(fmt(two.wall / 1e6, 2)) M/s = \(fmt(two.wall / one.wall, 2))x;"
                  + " CPU \(fmt(one.cpu / 1e6, 2)) vs \(fmt(two.cpu / 1e6, 2)) M/s = \(fmt(two.cpu / one.cpu, 2))x")
        }
        var load = [Double](repeating: 0, count: 3)
        _ = getloadavg(&load, 3)
        print("Load average at the end: \(fmt(load[0], 2)) \(fmt(load[1], 2)) \(fmt(load[2], 2))")
        print(cache.slabinfo(), terminator: "")
    }
}
