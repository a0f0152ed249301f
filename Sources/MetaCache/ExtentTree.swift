// One inode's extent status tree: a treap of 32-byte extent records in slab memory.
//
// Extent record (32 bytes):
//
//     0  logical   u64   first file block
//     8  physical  u64   first store block (0 for holes)
//    16  lenFlags  u32   length (bits 0-27) | status (bits 28-29) | referenced (30) | dirty (31)
//    20  left      u32   treap children (handles)
//    24  right     u32
//    28  owner     u32   handle of the inode record whose tree this is
//
// The treap's heap priority is a hash of the record's handle, so no bits are spent on it and the
// shape is random whatever order extents arrive in: expected depth O(log n). Split and merge are
// the only structural operations; range removal, insertion and neighbour merging are built from
// them. Extents never overlap; a record covers at most 2^28 - 1 blocks (a longer mapping is
// stored as several records). All of it runs under the owning inode's shard lock; allocation and
// freeing take the extent slab cache's mutex inside it (slab mutexes are leaves).

struct ExtentRef {
    let p: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { self.p = p }

    static let lengthMask: UInt32 = (1 << 28) - 1
    static let referencedBit: UInt32 = 1 << 30
    static let dirtyBit: UInt32 = 1 << 31

    var logical: UInt64 {
        get { p.load(as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, as: UInt64.self) }
    }
    var physical: UInt64 {
        get { p.load(fromByteOffset: 8, as: UInt64.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 8, as: UInt64.self) }
    }
    var lenFlags: UInt32 {
        get { p.load(fromByteOffset: 16, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 16, as: UInt32.self) }
    }
    var left: UInt32 {
        get { p.load(fromByteOffset: 20, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 20, as: UInt32.self) }
    }
    var right: UInt32 {
        get { p.load(fromByteOffset: 24, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 24, as: UInt32.self) }
    }
    var owner: UInt32 {
        get { p.load(fromByteOffset: 28, as: UInt32.self) }
        nonmutating set { p.storeBytes(of: newValue, toByteOffset: 28, as: UInt32.self) }
    }
    var length: UInt64 {
        get { UInt64(lenFlags & Self.lengthMask) }
        nonmutating set { lenFlags = lenFlags & ~Self.lengthMask | UInt32(newValue) }
    }
    var end: UInt64 { logical &+ length }
    var statusBits: UInt32 { (lenFlags >> 28) & 3 }
    var status: ExtentStatus { ExtentStatus(rawValue: UInt8(statusBits)) ?? .written }
    var isDirty: Bool { lenFlags & Self.dirtyBit != 0 }
    var isReferenced: Bool { lenFlags & Self.referencedBit != 0 }
    var mapping: ExtentMapping {
        ExtentMapping(logical: logical, length: UInt32(length), physical: physical, status: status)
    }
}

struct ExtentTree {
    static let maxLength: UInt64 = UInt64(ExtentRef.lengthMask)

    let slab: SlabCache
    let owner: UInt32
    var root: UInt32
    var count: Int
    var dirty: Int

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
        e.logical = logical
        e.physical = physical
        e.lenFlags = UInt32(length) | statusBits << 28
        e.left = nilHandle
        e.right = nilHandle
        e.owner = owner
        count += 1
        if isDirty { e.lenFlags |= ExtentRef.dirtyBit; slab.count(h, .dirty, up: true); dirty += 1 }
        if referenced { e.lenFlags |= ExtentRef.referencedBit; slab.count(h, .referenced, up: true) }
        return h
    }

    private mutating func freeNode(_ h: UInt32) {
        let e = node(h)
        if e.isDirty { slab.count(h, .dirty, up: false); dirty -= 1 }
        if e.isReferenced { slab.count(h, .referenced, up: false) }
        e.lenFlags = 0
        e.owner = nilHandle
        count -= 1
        slab.free(h)
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
            e.lenFlags |= ExtentRef.referencedBit
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
        var remaining = min(UInt64(m.length), UInt64.max - logical)
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
                e.lenFlags &= ~ExtentRef.dirtyBit
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
        for h in clean { freeNode(h) }
        var t = nilHandle
        for h in kept {
            let e = node(h)
            e.left = nilHandle
            e.right = nilHandle
            t = merge(t, h)
        }
        root = t
        return clean.count
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
