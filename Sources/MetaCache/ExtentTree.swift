// One inode's extent status tree: a treap of 32-byte extent records in slab memory.
//
// Extent record (28 bytes; 146 to a 4 KiB slab):
//
//     0  word0  u64   logical (bits 0-47) | status (48-49) | referenced (50) | dirty (51)
//                     | length bits 16-27 (52-63)
//     8  word1  u64   physical (bits 0-47) | length bits 0-15 (48-63)
//    16  left   u32   treap children (handles)
//    20  right  u32
//    24  owner  u32   handle of the inode record whose tree this is
//
// Block numbers have 48 bits (2^48 blocks of 4 KiB is 1 EiB; ext4 itself keeps 32-bit logical
// blocks in its extent status entries) and a record covers at most 2^28 - 1 blocks (a longer
// mapping is stored as several records). Records are 4-byte aligned, so the 64-bit words are
// read with unaligned loads (free on x86-64 and arm64).
//
// The treap's heap priority is a hash of the record's handle, so no bits are spent on it and the
// shape is random whatever order extents arrive in: expected depth O(log n). Split and merge are
// the only structural operations; range removal, insertion and neighbour merging are built from
// them. Extents never overlap. All of it runs under the owning inode's shard lock; allocation
// and freeing take the extent slab cache's mutex inside it (slab mutexes are leaves).

struct ExtentRef {
    let p: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { self.p = p }

    static let size = 28
    static let blockMask: UInt64 = (1 << 48) - 1
    /// Exclusive upper bound of the block numbers a record can hold.
    static let blockLimit: UInt64 = 1 << 48
    static let maxLength: UInt64 = (1 << 28) - 1
    private static let referencedBit: UInt64 = 1 << 50
    private static let dirtyBit: UInt64 = 1 << 51

    private var word0: UInt64 {
        get { p.loadUnaligned(as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, as: UInt64.self) }
    }
    private var word1: UInt64 {
        get { p.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 8, as: UInt64.self) }
    }
    var logical: UInt64 {
        get { word0 & Self.blockMask }
        nonmutating set { word0 = word0 & ~Self.blockMask | newValue & Self.blockMask }
    }
    var physical: UInt64 {
        get { word1 & Self.blockMask }
        nonmutating set { word1 = word1 & ~Self.blockMask | newValue & Self.blockMask }
    }
    var length: UInt64 {
        get { (word0 >> 52) << 16 | word1 >> 48 }
        nonmutating set {
            word0 = word0 & ~(0xFFF << 52) | (newValue >> 16) << 52
            word1 = word1 & Self.blockMask | (newValue & 0xFFFF) << 48
        }
    }
    var left: UInt32 {
        get { p.load(fromByteOffset: 16, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 16, as: UInt32.self) }
    }
    var right: UInt32 {
        get { p.load(fromByteOffset: 20, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 20, as: UInt32.self) }
    }
    var owner: UInt32 {
        get { p.load(fromByteOffset: 24, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 24, as: UInt32.self) }
    }
    var end: UInt64 { logical &+ length }
    var statusBits: UInt32 { UInt32(truncatingIfNeeded: (word0 >> 48) & 3) }
    var status: ExtentStatus { ExtentStatus(rawValue: UInt8(statusBits)) ?? .written }
    var isDirty: Bool {
        get { word0 & Self.dirtyBit != 0 }
        nonmutating set { word0 = newValue ? word0 | Self.dirtyBit : word0 & ~Self.dirtyBit }
    }
    var isReferenced: Bool {
        get { word0 & Self.referencedBit != 0 }
        nonmutating set { word0 = newValue ? word0 | Self.referencedBit : word0 & ~Self.referencedBit }
    }
    /// Writes every field of a fresh record.
    func initialize(logical: UInt64, length: UInt64, physical: UInt64, statusBits: UInt32, owner: UInt32) {
        word0 = logical & Self.blockMask | UInt64(statusBits & 3) << 48 | (length >> 16) << 52
        word1 = physical & Self.blockMask | (length & 0xFFFF) << 48
        left = nilHandle
        right = nilHandle
        self.owner = owner
    }
    func clear() {
        word0 = 0
        word1 = 0
        owner = nilHandle
    }
    var mapping: ExtentMapping {
        ExtentMapping(logical: logical, length: UInt32(length), physical: physical, status: status)
    }
}

struct ExtentTree {
    static let maxLength: UInt64 = ExtentRef.maxLength

    let slab: SlabCache
    let owner: UInt32
    var root: UInt32
    var count: Int
    var dirty: Int
    /// Slab pages emptied by the frees of this value's operations (reclaim counts them).
    var pagesFreed = 0

    @inline(__always) func node(_ h: UInt32) -> ExtentRef { ExtentRef(slab.pointer(h)) }
    @inline(__always) func priority(_ h: UInt32) -> UInt32 { mix32(h) }

    // MARK: Treap primitives

    /// Splits `t` into (logical < key, logical >= key).
    func split(_ t: UInt32, _ key: UInt64) -> (UInt32, UInt32) {
        guard t != nilHandle else { return (nilHandle, nilHandle) }
        let e = node(t)
        if e.logical < key {
            let (l, r) = split(e.right, key)
            e.right = l
            return (t, r)
        } else {
            let (l, r) = split(e.left, key)
            e.left = r
            return (l, t)
        }
    }

    /// Joins two treaps where every key of `a` is below every key of `b`.
    func merge(_ a: UInt32, _ b: UInt32) -> UInt32 {
        if a == nilHandle { return b }
        if b == nilHandle { return a }
        if priority(a) > priority(b) {
            let e = node(a)
            e.right = merge(e.right, b)
            return a
        } else {
            let e = node(b)
            e.left = merge(a, e.left)
            return b
        }
    }

    func maxNode(_ t: UInt32) -> UInt32 {
        var cur = t
        guard cur != nilHandle else { return nilHandle }
        while node(cur).right != nilHandle { cur = node(cur).right }
        return cur
    }

    func minNode(_ t: UInt32) -> UInt32 {
        var cur = t
        guard cur != nilHandle else { return nilHandle }
        while node(cur).left != nilHandle { cur = node(cur).left }
        return cur
    }

    // MARK: Records

    private mutating func newNode(logical: UInt64, length: UInt64, physical: UInt64, statusBits: UInt32,
                                  dirty isDirty: Bool, referenced: Bool) -> UInt32 {
        guard let h = slab.allocate() else {
            fatalError("MetaCache: metafs_extent: reserved address range exhausted")
        }
        let e = node(h)
        e.initialize(logical: logical, length: length, physical: physical, statusBits: statusBits, owner: owner)
        count += 1
        if isDirty { e.isDirty = true; slab.count(h, .dirty, up: true); dirty += 1 }
        if referenced { e.isReferenced = true; slab.count(h, .referenced, up: true) }
        return h
    }

    private mutating func freeNode(_ h: UInt32) {
        let e = node(h)
        if e.isDirty { slab.count(h, .dirty, up: false); dirty -= 1 }
        if e.isReferenced { slab.count(h, .referenced, up: false) }
        e.clear()
        count -= 1
        if slab.free(h) { pagesFreed += slab.pagesPerSlab }
    }

    private mutating func freeSubtree(_ t: UInt32) {
        guard t != nilHandle else { return }
        let e = node(t)
        let l = e.left, r = e.right
        freeSubtree(l)
        freeSubtree(r)
        freeNode(t)
    }

    private func markReferenced(_ h: UInt32) {
        let e = node(h)
        if !e.isReferenced {
            e.isReferenced = true
            slab.count(h, .referenced, up: true)
        }
    }

    // MARK: Operations

    /// The extent covering `block`, or nilHandle. Sets its referenced bit.
    func lookup(_ block: UInt64) -> UInt32 {
        var cur = root
        while cur != nilHandle {
            let e = node(cur)
            if block < e.logical {
                cur = e.left
            } else if block >= e.end {
                cur = e.right
            } else {
                markReferenced(cur)
                return cur
            }
        }
        return nilHandle
    }

    /// Drops the mapping of blocks [from, to), trimming or splitting extents that straddle it.
    mutating func removeRange(_ from: UInt64, _ to: UInt64) {
        guard from < to, root != nilHandle else { return }
        let (a, rest) = split(root, from)
        var (b, c) = split(rest, to)
        var tail = nilHandle
        let am = maxNode(a)
        if am != nilHandle {
            let m = node(am)
            let mEnd = m.end
            if mEnd > from {
                if mEnd > to {
                    // m covers the whole range: keep [m.logical, from) and [to, mEnd).
                    let phys = m.statusBits == UInt32(ExtentStatus.hole.rawValue) ? 0 : m.physical &+ (to - m.logical)
                    tail = newNode(logical: to, length: mEnd - to, physical: phys, statusBits: m.statusBits,
                                   dirty: m.isDirty, referenced: m.isReferenced)
                }
                m.length = from - m.logical
            }
        }
        if b != nilHandle {
            let bm = maxNode(b)
            let m = node(bm)
            if m.end > to {
                // The last extent starting inside the range runs past it: keep its tail.
                let (rest, last) = split(b, m.logical)
                b = rest
                let mEnd = m.end
                if m.statusBits != UInt32(ExtentStatus.hole.rawValue) { m.physical &+= to - m.logical }
                m.logical = to
                m.length = mEnd - to
                c = merge(last, c)
            }
            freeSubtree(b)
        }
        root = merge(a, merge(tail, c))
    }

    private func joinable(_ l: ExtentRef, _ r: ExtentRef) -> Bool {
        l.end == r.logical && l.statusBits == r.statusBits && l.isDirty == r.isDirty
            && l.length + r.length <= Self.maxLength
            && (l.statusBits == UInt32(ExtentStatus.hole.rawValue) || l.physical &+ l.length == r.physical)
    }

    /// Maps [logical, logical+length) (length <= maxLength, no overflow), replacing what overlaps
    /// and merging with neighbours that continue it.
    mutating func insertPiece(logical: UInt64, length: UInt64, physical: UInt64, status: ExtentStatus, dirty isDirty: Bool) {
        let end = logical + length
        removeRange(logical, end)
        let statusBits = UInt32(status.rawValue)
        let phys = status == .hole ? 0 : physical
        var (a, c) = split(root, logical)
        let lh = maxNode(a), rh = minNode(c)
        // Probe record: compare as if the new mapping were a record.
        let lFits: Bool
        if lh != nilHandle {
            let l = node(lh)
            lFits = l.end == logical && l.statusBits == statusBits && l.isDirty == isDirty
                && l.length + length <= Self.maxLength
                && (status == .hole || l.physical &+ l.length == phys)
        } else {
            lFits = false
        }
        if lFits {
            let l = node(lh)
            l.length += length
            if rh != nilHandle, joinable(l, node(rh)) {
                let r = node(rh)
                l.length += r.length
                if r.isReferenced { markReferenced(lh) }
                let (single, rest) = split(c, r.logical &+ 1)
                freeNode(single)
                c = rest
            }
            root = merge(a, c)
            return
        }
        if rh != nilHandle {
            let r = node(rh)
            if r.logical == end && r.statusBits == statusBits && r.isDirty == isDirty
                && r.length + length <= Self.maxLength
                && (status == .hole || phys &+ length == r.physical) {
                r.logical = logical
                r.physical = phys
                r.length += length
                root = merge(a, c)
                return
            }
        }
        let n = newNode(logical: logical, length: length, physical: phys, statusBits: statusBits,
                        dirty: isDirty, referenced: false)
        a = merge(a, n)
        root = merge(a, c)
    }

    /// Maps a whole `ExtentMapping`, cut into records of at most maxLength blocks.
    mutating func insert(_ m: ExtentMapping, dirty isDirty: Bool) {
        var logical = m.logical
        guard logical < ExtentRef.blockLimit else { return }
        var remaining = min(UInt64(m.length), ExtentRef.blockLimit - logical)
        precondition(m.status == .hole || m.physical < ExtentRef.blockLimit - remaining,
                     "MetaCache: extent physical block \(m.physical) beyond 2^48")
        var physical = m.physical
        while remaining > 0 {
            let piece = min(remaining, Self.maxLength)
            insertPiece(logical: logical, length: piece, physical: physical, status: m.status, dirty: isDirty)
            logical += piece
            if m.status != .hole { physical &+= piece }
            remaining -= piece
        }
    }

    /// Visits every extent in logical order.
    func forEach(_ body: (UInt32) -> Void) {
        var stack: [UInt32] = []
        stack.reserveCapacity(64)
        var cur = root
        while cur != nilHandle || !stack.isEmpty {
            while cur != nilHandle {
                stack.append(cur)
                cur = node(cur).left
            }
            let h = stack.removeLast()
            body(h)
            cur = node(h).right
        }
    }

    func mappings() -> [ExtentMapping] {
        var out: [ExtentMapping] = []
        out.reserveCapacity(count)
        forEach { out.append(node($0).mapping) }
        return out
    }

    /// Copies out the dirty extents and marks them clean.
    mutating func takeDirty() -> [ExtentMapping] {
        var out: [ExtentMapping] = []
        forEach { h in
            let e = node(h)
            if e.isDirty {
                out.append(e.mapping)
                e.isDirty = false
                slab.count(h, .dirty, up: false)
            }
        }
        dirty = 0
        return out
    }

    /// Frees every extent (dirty ones too). Returns how many.
    mutating func removeAll() -> Int {
        let n = count
        freeSubtree(root)
        root = nilHandle
        return n
    }

    /// Frees the clean extents, keeping the dirty ones. Returns how many went.
    mutating func removeClean() -> Int {
        guard count > dirty else { return 0 }
        var kept: [UInt32] = []
        var clean: [UInt32] = []
        forEach { h in
            if node(h).isDirty { kept.append(h) } else { clean.append(h) }
        }
        rebuild(keeping: kept, freeing: clean)
        return clean.count
    }

    /// Frees `gone` and makes the tree of `kept` alone (handles in logical order, as `forEach`
    /// visits them): the bulk removals of `removeClean` and `shrink`.
    private mutating func rebuild(keeping kept: [UInt32], freeing gone: [UInt32]) {
        for h in gone { freeNode(h) }
        var t = nilHandle
        for h in kept {
            let e = node(h)
            e.left = nilHandle
            e.right = nilHandle
            t = merge(t, h)
        }
        root = t
    }

    /// The record `h` if it is in this tree (found by its start block; sets no bit).
    func contains(_ h: UInt32) -> Bool {
        let key = node(h).logical
        var cur = root
        while cur != nilHandle {
            if cur == h { return true }
            let e = node(cur)
            cur = key < e.logical ? e.left : e.right
        }
        return false
    }

    /// Frees the one extent `h` (which is in this tree). Its exact range is removed, so no
    /// record is split and nothing is allocated.
    mutating func removeExtent(_ h: UInt32) {
        let e = node(h)
        removeRange(e.logical, e.end)
    }

    /// The es shrinker's pass over one inode (ext4's es_reclaim_extents): up to `limit` extents
    /// looked at in logical order; dirty ones stay; a referenced one loses its bit and stays
    /// (second chance), unless `lastOnPage` says freeing it would free its slab (hybrid); the
    /// rest are freed. Returns (looked at, freed, referenced, the dirty ones looked at).
    mutating func shrink(limit: Int, lastOnPage: ((UInt32) -> Bool)?) -> (scanned: Int, freed: Int, referenced: Int, dirty: [UInt32]) {
        var kept: [UInt32] = []
        var victims: [UInt32] = []
        var dirtyKept: [UInt32] = []
        var scanned = 0, referenced = 0
        kept.reserveCapacity(count)
        forEach { h in
            let e = node(h)
            guard scanned < limit else { kept.append(h); return }
            scanned += 1
            if e.isReferenced && !(lastOnPage?(h) ?? false) && e.isDirty {
                e.isReferenced = false
                slab.count(h, .referenced, up: false)
                referenced += 1
                kept.append(h)
            } else if e.isDirty {
                dirtyKept.append(h)
                kept.append(h)
            } else if e.isReferenced && !(lastOnPage?(h) ?? false) {
                e.isReferenced = false
                slab.count(h, .referenced, up: false)
                referenced += 1
                kept.append(h)
            } else {
                victims.append(h)
            }
        }
        guard !victims.isEmpty else { return (scanned, 0, referenced, dirtyKept) }
        rebuild(keeping: kept, freeing: victims)
        return (scanned, victims.count, referenced, dirtyKept)
    }

    /// Structural check: order, no overlap, heap property, counts, owner. Empty when sound.
    func check() -> [String] {
        var problems: [String] = []
        var n = 0, d = 0
        var lastEnd: UInt64 = 0
        var first = true
        forEach { h in
            let e = node(h)
            n += 1
            if e.isDirty { d += 1 }
            if e.length == 0 { problems.append("extent \(h): zero length") }
            if !first && e.logical < lastEnd { problems.append("extent \(h): overlaps or out of order") }
            if e.owner != owner { problems.append("extent \(h): owner \(e.owner), expected \(owner)") }
            for child in [e.left, e.right] where child != nilHandle && priority(child) > priority(h) {
                problems.append("extent \(h): heap property broken")
            }
            first = false
            lastEnd = e.end
        }
        if n != count { problems.append("tree of \(owner): \(n) extents, count says \(count)") }
        if d != dirty { problems.append("tree of \(owner): \(d) dirty, count says \(dirty)") }
        return problems
    }
}
