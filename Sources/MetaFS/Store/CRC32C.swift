// CRC32C (Castagnoli) for the superblock, journal records and metadata blocks: the SSE4.2 crc32
// instruction where the CPU has it (CFuse), slicing-by-8 tables otherwise.
import CFuse

let crc32cTables: [UInt32] = {
    var t = [UInt32](repeating: 0, count: 8 * 256)
    for i in 0..<256 {
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        t[i] = c
    }
    for i in 0..<256 {
        var c = t[i]
        for k in 1..<8 {
            c = (c >> 8) ^ t[Int(c & 0xFF)]
            t[k * 256 + i] = c
        }
    }
    return t
}()

enum CRC32C {
    static let hardware = cfuse_crc32c_hw_available() != 0

    /// Continue a CRC over `count` bytes at `p` (start with `crc = 0`).
    static func update(_ crc: UInt32, _ p: UnsafeRawPointer, _ count: Int) -> UInt32 {
        if hardware { return ~cfuse_crc32c_hw(~crc, p, count) }
        return software(crc, p, count)
    }

    /// The table-driven CRC (also the reference the tests compare the hardware one with).
    static func software(_ crc: UInt32, _ p: UnsafeRawPointer, _ count: Int) -> UInt32 {
        var c = ~crc
        var i = 0
        crc32cTables.withUnsafeBufferPointer { t in
            let t = t.baseAddress!
            while i + 8 <= count {
                let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian ^ UInt64(c)
                c = t[7 * 256 + Int(w & 0xFF)] ^ t[6 * 256 + Int((w >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((w >> 16) & 0xFF)] ^ t[4 * 256 + Int((w >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((w >> 32) & 0xFF)] ^ t[2 * 256 + Int((w >> 40) & 0xFF)]
                    ^ t[1 * 256 + Int((w >> 48) & 0xFF)] ^ t[Int(w >> 56)]
                i += 8
            }
            while i < count {
                c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)]
                i += 1
            }
        }
        return ~c
    }

    static func checksum(_ p: UnsafeRawPointer, _ count: Int) -> UInt32 { update(0, p, count) }

    /// CRC of `count` bytes at `p` as if the 4 bytes at `fieldOffset` (the stored checksum) were zero.
    static func checksum(_ p: UnsafeRawPointer, _ count: Int, skippingFieldAt fieldOffset: Int) -> UInt32 {
        var c = update(0, p, fieldOffset)
        var zero: UInt32 = 0
        c = withUnsafeBytes(of: &zero) { update(c, $0.baseAddress!, 4) }
        return update(c, p + fieldOffset + 4, count - fieldOffset - 4)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0.baseAddress!, $0.count) }
    }
}

/// `withUnsafeBytes` keeping a typed StoreError (the standard one rethrows `any Error`).
@inline(__always) func withBytes<T>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(StoreError) -> T) throws(StoreError) -> T {
    let r: Result<T, StoreError> = a.withUnsafeBytes { p in
        do throws(StoreError) { return .success(try body(p)) } catch { return .failure(error) }
    }
    return try r.get()
}
