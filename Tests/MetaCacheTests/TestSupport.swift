import Foundation
@testable import MetaCache

/// A small cache for tests: few shards, little address space.
func makeCache(shards: Int = 8, slabOrder: Int = 0) -> MetaCache {
    var c = CacheConfiguration()
    c.shards = shards
    c.expectedObjects = 1024
    c.slabOrder = slabOrder
    c.reserveBytesPerCache = 1 << 30
    return MetaCache(configuration: c)
}

/// A deterministic generator (SplitMix64) so failures reproduce.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A name of `length` bytes that differs for each `seed`.
func name(_ seed: Int, length: Int) -> [UInt8] {
    var out = Array("n\(seed)-".utf8)
    while out.count < length { out.append(UInt8(ascii: "a") + UInt8(out.count % 26)) }
    return Array(out.prefix(length))
}

let DT_DIR: UInt8 = 4
let DT_REG: UInt8 = 8

extension DentryCache {
    func lookup(_ parent: UInt64, _ name: [UInt8]) -> DentryLookup {
        name.withUnsafeBytes { lookup(parent: parent, name: $0) }
    }
    func insert(_ parent: UInt64, _ name: [UInt8], ino: UInt64, type: UInt8 = DT_REG, dirty: Bool = false) {
        name.withUnsafeBytes { insert(parent: parent, name: $0, ino: ino, type: type, dirty: dirty) }
    }
    func remove(_ parent: UInt64, _ name: [UInt8]) {
        name.withUnsafeBytes { remove(parent: parent, name: $0) }
    }
    /// Pins held on the dentry for (parent, name), read from its record.
    func pins(_ parent: UInt64, _ name: [UInt8]) -> Int? {
        name.withUnsafeBytes { buf -> Int? in
            let hv = hashName(parent, buf.baseAddress!, buf.count)
            return shards.withLock(shardIndex(hv)) { s -> Int? in
                var h = s.buckets.heads[s.buckets.bucket(hv)]
                while h != nilHandle {
                    let d = ref(h)
                    if d.parent == parent && nameEquals(d, buf.baseAddress!, buf.count) { return Int(d.header.pins) }
                    h = d.hashNext
                }
                return nil
            }
        }
    }
}

extension InodeCache {
    /// Pins on the hashed inode `ino`.
    func pins(_ ino: UInt64) -> Int? {
        let hv = hash(ino)
        return shards.withLock(shardIndex(hv)) { s -> Int? in
            let h = find(&s, ino, hv)
            return h == nilHandle ? nil : Int(ref(h).header.pins)
        }
    }
}

func attributes(_ ino: UInt64, directory: Bool = false, size: UInt64 = 0) -> InodeAttributes {
    InodeAttributes(ino: ino, mode: directory ? 0o040755 : 0o100644, nlink: directory ? 2 : 1, uid: 1000, gid: 1000,
                    size: size, blocks: size / 512, atime: Timespec(seconds: 1_700_000_000, nanoseconds: 1),
                    mtime: Timespec(seconds: 1_700_000_001, nanoseconds: 2), ctime: Timespec(seconds: 1_700_000_002, nanoseconds: 3),
                    generation: UInt32(truncatingIfNeeded: ino &* 7), flags: 0)
}

/// Runs `body(i)` on `count` OS threads at once and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let t = Thread {
            body(i)
            group.leave()
        }
        t.stackSize = 1 << 22
        t.start()
    }
    group.wait()
}
