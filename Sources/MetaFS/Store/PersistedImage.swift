import Glibc
import Synchronization

/// Persisted-image mode (issue 6): the image persistent memory would hold after a power cut.
///
/// Killing the process does not model a power cut, since stores to a shared mapping survive in
/// the page cache. This does: the image starts as the store when recording begins and changes only
/// when `persist()` (the one durability barrier) runs, which makes the persisted range land. A
/// crash image is the image at a chosen instant: after barrier k, or part-way through barrier k,
/// where any subset of the barrier's units (cache lines or pages) may have landed.
///
/// The image is kept as a base copy plus a log of barriers (what each one made land), so that a
/// workload's every crash state can be produced afterwards in order (`CrashImageCursor`).
public final class PersistedImage: @unchecked Sendable {
    /// What one `persist()` made durable.
    public struct Barrier: Sendable {
        /// Position in the log (0 = the first barrier after recording began).
        public let index: Int
        /// First byte (a multiple of the granularity).
        public let offset: Int
        /// The bytes that land, `granularity`-sized units of them.
        public let bytes: [UInt8]
        /// The caller's tag when the barrier ran (`PersistedImage.tag`): e.g. which operation.
        public let tag: Int
        public let granularity: Int
        public var units: Int { bytes.count / granularity }
        /// With `trackEarlyLanding`: the units stored to but not persisted when this barrier ran
        /// (outside its own range), with their contents then. On real persistent memory a cache
        /// eviction may write any of them back early.
        public let pending: [(offset: Int, bytes: [UInt8])]
    }

    public let size: Int
    /// 64 (cache lines: the unit of clwb on persistent memory) or 4096 (pages, msync's unit).
    public let granularity: Int
    /// The store's bytes when recording began.
    public let base: [UInt8]
    private let state = Mutex<(barriers: [Barrier], tag: Int)>(([], 0))
    /// Keep, at each barrier, the units stored to but not yet persisted (`Barrier.pending`).
    public let trackEarlyLanding: Bool
    /// The persisted image now (kept only with `trackEarlyLanding`).
    private var image: [UInt8]

    init(base: [UInt8], granularity: Int, trackEarlyLanding: Bool = false) {
        self.trackEarlyLanding = trackEarlyLanding
        self.image = trackEarlyLanding ? base : []
        precondition(granularity > 0 && granularity & (granularity - 1) == 0 && granularity <= 4096 && base.count % granularity == 0,
                     "granularity must be a power of two up to 4096")
        self.base = base
        self.size = base.count
        self.granularity = granularity
    }

    /// Barriers recorded so far.
    public var barriers: [Barrier] { state.withLock { $0.barriers } }
    public var barrierCount: Int { state.withLock { $0.barriers.count } }

    /// A number the caller sets (e.g. the index of the operation running); each barrier keeps it.
    public var tag: Int {
        get { state.withLock { $0.tag } }
        set { state.withLock { $0.tag = newValue } }
    }

    /// Called by the mapping for every persisted range, with the mapping's base address.
    func record(_ mappingBase: UnsafeRawPointer, offset: Int, length: Int) {
        let g = granularity
        let start = offset & ~(g - 1)
        let end = min(size, (offset + length + g - 1) & ~(g - 1))
        guard end > start else { return }
        let bytes = Array(UnsafeRawBufferPointer(start: mappingBase + start, count: end - start))
        var pending: [(offset: Int, bytes: [UInt8])] = []
        if trackEarlyLanding {
            // Units that differ from the persisted image, outside this barrier (pages first).
            image.withUnsafeMutableBytes { img in
                let base = img.baseAddress!
                var page = 0
                while page < size {
                    let n = min(4096, size - page)
                    if memcmp(base + page, mappingBase + page, n) != 0 {
                        var u = page
                        while u < page + n {
                            if (u < start || u >= end) && memcmp(base + u, mappingBase + u, g) != 0 {
                                pending.append((u, Array(UnsafeRawBufferPointer(start: mappingBase + u, count: g))))
                            }
                            u += g
                        }
                    }
                    page += n
                }
                (base + start).copyMemory(from: mappingBase + start, byteCount: end - start)
            }
        }
        state.withLock { s in
            s.barriers.append(Barrier(index: s.barriers.count, offset: start, bytes: bytes, tag: s.tag, granularity: g, pending: pending))
        }
    }

    /// The image after every recorded barrier (what a crash now would leave).
    public func current() -> [UInt8] {
        var image = base
        for b in barriers { CrashImageCursor.land(b, into: &image, units: nil) }
        return image
    }
}

/// Walks the crash states of a recorded image in order: `image` is the persisted image after the
/// first `position` barriers; `partial` gives the image part-way through the next one.
public struct CrashImageCursor {
    public let recording: PersistedImage
    public private(set) var image: [UInt8]
    public private(set) var position = 0
    private let log: [PersistedImage.Barrier]

    public init(_ recording: PersistedImage) {
        self.recording = recording
        self.image = recording.base
        self.log = recording.barriers
    }

    public var count: Int { log.count }
    public var next: PersistedImage.Barrier? { position < log.count ? log[position] : nil }

    /// Land the next barrier whole.
    public mutating func advance() {
        guard position < log.count else { return }
        Self.land(log[position], into: &image, units: nil)
        position += 1
    }

    /// The image part-way through the next barrier: only the units where `landed[i]` is true;
    /// and, where `early[i]` is true, pending unit i of the barrier written back early.
    public func partial(_ landed: [Bool], early: [Bool] = []) -> [UInt8] {
        guard let b = next else { return image }
        var copy = image
        copy.withUnsafeMutableBytes { dst in
            for (i, p) in b.pending.enumerated() where i < early.count && early[i] {
                p.bytes.withUnsafeBytes { (dst.baseAddress! + p.offset).copyMemory(from: $0.baseAddress!, byteCount: p.bytes.count) }
            }
        }
        Self.land(b, into: &copy, units: landed)
        return copy
    }

    static func land(_ b: PersistedImage.Barrier, into image: inout [UInt8], units: [Bool]?) {
        image.withUnsafeMutableBytes { dst in
            b.bytes.withUnsafeBytes { src in
                if let units {
                    for u in 0..<min(units.count, b.units) where units[u] {
                        (dst.baseAddress! + b.offset + u * b.granularity).copyMemory(from: src.baseAddress! + u * b.granularity, byteCount: b.granularity)
                    }
                } else {
                    (dst.baseAddress! + b.offset).copyMemory(from: src.baseAddress!, byteCount: b.bytes.count)
                }
            }
        }
    }

    /// Write an image to `path` (created 0600; overwritten in place, then cut to the image's size),
    /// ready for `Store.open`.
    public static func write(_ image: [UInt8], to path: String) throws(StoreError) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system("cannot create crash image \(path)") }
        defer { Glibc.close(fd) }
        var done = 0
        while done < image.count {
            let n = image.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, image.count - done, off_t(done)) }
            guard n > 0 else { throw .system("cannot write crash image \(path)") }
            done += n
        }
        guard ftruncate(fd, off_t(image.count)) == 0 else { throw .system("cannot size crash image \(path)") }
    }
}

extension Store {
    /// Begin persisted-image mode: from now on the store keeps the image persistent memory would
    /// hold, changed only by `persist()`. The store's current bytes are taken as durable (call it
    /// with nothing pending: after a commit, or right after open). One recording at a time.
    /// With `trackEarlyLanding`, each barrier also keeps the units stored to but not yet persisted
    /// at that instant, for crash images where some of them were written back early.
    public func startPersistedImage(granularity: Int = 64, trackEarlyLanding: Bool = false) throws(StoreError) -> PersistedImage {
        try checkUsable()
        gate.enter()
        defer { gate.leave() }
        let base = lock.withRead { Array(UnsafeRawBufferPointer(start: mapping.base, count: mapping.length)) }
        let recording = PersistedImage(base: base, granularity: granularity, trackEarlyLanding: trackEarlyLanding)
        mapping.persistedImage = recording
        return recording
    }

    /// End persisted-image mode.
    public func stopPersistedImage() {
        gate.enter()
        defer { gate.leave() }
        mapping.persistedImage = nil
    }
}
