// The header shared by every cached object that lives on an LRU (dentries and inodes), and the
// intrusive lists threaded through it.
//
// Header, at offset 0 of the record (20 bytes):
//
//     0  lruPrev   u32   LRU links (handles); also the zombie list while an object is unhashed
//     4  lruNext   u32
//     8  dirtyPrev u32   dirty-list links
//    12  dirtyNext u32
//    16  state     u32   pins << 8 | flags
//
// flags: bit 0 referenced (second chance), bit 1 dirty, bit 2 on the LRU, bit 3 hashed (reachable
// from the hash table); bits 4-7 belong to the cache (dentry: the DT_* type; inode: stub).
// Pins: up to 2^24 - 1; a pin that would overflow is refused, never wrapped.
//
// Every flag change that a per-slab counter mirrors (referenced, dirty, pinned) goes through the
// helpers below, which keep the slab's counters exact. The header of an object is guarded by the
// lock of the hash shard that owns the object; the per-slab counters are atomics because one slab
// holds objects of many shards.

enum ObjectFlag {
    static let referenced: UInt32 = 1 << 0
    static let dirty: UInt32 = 1 << 1
    static let onLRU: UInt32 = 1 << 2
    static let hashed: UInt32 = 1 << 3
    /// Bits 4...7 are the owning cache's.
    static let cacheShift: UInt32 = 4
}

let maxPins: UInt32 = (1 << 24) - 1

/// A view of an object header in slab memory.
struct HeaderRef {
    let p: UnsafeMutableRawPointer
    @inline(__always) init(_ p: UnsafeMutableRawPointer) { self.p = p }

    var state: UInt32 {
        @inline(__always) get { p.load(fromByteOffset: 16, as: UInt32.self) }
        @inline(__always) nonmutating set { p.storeBytes(of: newValue, toByteOffset: 16, as: UInt32.self) }
    }
    var pins: UInt32 { @inline(__always) get { state >> 8 } }
    @inline(__always) func has(_ flag: UInt32) -> Bool { state & flag != 0 }
    @inline(__always) func set(_ flag: UInt32) { state |= flag }
    @inline(__always) func clear(_ flag: UInt32) { state &= ~flag }
    /// The cache-specific nibble (bits 4...7).
    var cacheBits: UInt32 {
        @inline(__always) get { (state >> ObjectFlag.cacheShift) & 0xF }
        @inline(__always) nonmutating set { state = state & ~0xF0 | (newValue & 0xF) << ObjectFlag.cacheShift }
    }
    /// Initialises a fresh header: no links, no pins, the given flags.
    @inline(__always) func initialize(flags: UInt32) {
        p.storeBytes(of: nilHandle, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: nilHandle, toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: nilHandle, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: nilHandle, toByteOffset: 12, as: UInt32.self)
        state = flags
    }
}

extension SlabCache {
    @inline(__always)
    func header(_ h: UInt32) -> HeaderRef { HeaderRef(pointer(h)) }

    /// Sets the referenced bit (second chance) without moving the object.
    @inline(__always)
    func markReferenced(_ h: UInt32) {
        let hd = header(h)
        if !hd.has(ObjectFlag.referenced) {
            hd.set(ObjectFlag.referenced)
            count(h, .referenced, up: true)
        }
    }

    @inline(__always)
    func clearReferenced(_ h: UInt32) {
        let hd = header(h)
        if hd.has(ObjectFlag.referenced) {
            hd.clear(ObjectFlag.referenced)
            count(h, .referenced, up: false)
        }
    }

    /// Sets or clears the dirty flag; returns whether it changed.
    @inline(__always) @discardableResult
    func setDirtyFlag(_ h: UInt32, _ dirty: Bool) -> Bool {
        let hd = header(h)
        guard hd.has(ObjectFlag.dirty) != dirty else { return false }
        if dirty { hd.set(ObjectFlag.dirty) } else { hd.clear(ObjectFlag.dirty) }
        count(h, .dirty, up: dirty)
        return true
    }

    /// Takes a pin; false (and no change) if the count is saturated.
    @inline(__always)
    func pinObject(_ h: UInt32) -> Bool {
        let hd = header(h)
        let pins = hd.pins
        guard pins < maxPins else { return false }
        hd.state &+= 1 << 8
        if pins == 0 { count(h, .pinned, up: true) }
        return true
    }

    /// Drops a pin; returns the pins left.
    @inline(__always)
    func unpinObject(_ h: UInt32) -> UInt32 {
        let hd = header(h)
        let pins = hd.pins
        precondition(pins > 0, "MetaCache: \(name): unpin of an unpinned object")
        hd.state &-= 1 << 8
        if pins == 1 { count(h, .pinned, up: false) }
        return pins - 1
    }

    /// Clears referenced and dirty (keeping the counters exact) before the object is freed.
    @inline(__always)
    func clearCountedFlags(_ h: UInt32) {
        clearReferenced(h)
        setDirtyFlag(h, false)
    }
}

/// Which pair of u32 fields of a record links it into a list.
struct Links: Sendable {
    let prev: Int
    let next: Int
    init(prev: Int, next: Int) { self.prev = prev; self.next = next }
    static let lru = Links(prev: 0, next: 4)
    static let dirty = Links(prev: 8, next: 12)
}

/// What an LRU walk's isolate function decided about one object (as list_lru_walk's callbacks).
enum WalkResult {
    /// The callback took the object off the list.
    case removed
    /// Move the object to the head (second chance).
    case rotate
    /// Leave it where it is and go on.
    case skip
    /// Stop the walk.
    case stop
}

/// An intrusive doubly linked list of handles (head = most recent). One per hash shard for each
/// of LRU and dirty: together, a cache's per-shard lists are its list_lru, the shards playing
/// the part of list_lru's per-node lists, each under its own lock.
struct ObjectList: Sendable {
    var head: UInt32 = nilHandle
    var tail: UInt32 = nilHandle
    var count: Int = 0
    init() {}

    @inline(__always) private static func prev(_ p: UnsafeMutableRawPointer, _ l: Links) -> UInt32 {
        p.load(fromByteOffset: l.prev, as: UInt32.self)
    }
    @inline(__always) private static func next(_ p: UnsafeMutableRawPointer, _ l: Links) -> UInt32 {
        p.load(fromByteOffset: l.next, as: UInt32.self)
    }
    @inline(__always) private static func setPrev(_ p: UnsafeMutableRawPointer, _ l: Links, _ v: UInt32) {
        p.storeBytes(of: v, toByteOffset: l.prev, as: UInt32.self)
    }
    @inline(__always) private static func setNext(_ p: UnsafeMutableRawPointer, _ l: Links, _ v: UInt32) {
        p.storeBytes(of: v, toByteOffset: l.next, as: UInt32.self)
    }

    mutating func pushFront(_ h: UInt32, _ slab: SlabCache, _ l: Links) {
        let p = slab.pointer(h)
        Self.setPrev(p, l, nilHandle)
        Self.setNext(p, l, head)
        if head != nilHandle { Self.setPrev(slab.pointer(head), l, h) } else { tail = h }
        head = h
        count += 1
    }

    mutating func pushBack(_ h: UInt32, _ slab: SlabCache, _ l: Links) {
        let p = slab.pointer(h)
        Self.setNext(p, l, nilHandle)
        Self.setPrev(p, l, tail)
        if tail != nilHandle { Self.setNext(slab.pointer(tail), l, h) } else { head = h }
        tail = h
        count += 1
    }

    mutating func remove(_ h: UInt32, _ slab: SlabCache, _ l: Links) {
        let p = slab.pointer(h)
        let pr = Self.prev(p, l), nx = Self.next(p, l)
        if pr != nilHandle { Self.setNext(slab.pointer(pr), l, nx) } else { head = nx }
        if nx != nilHandle { Self.setPrev(slab.pointer(nx), l, pr) } else { tail = pr }
        Self.setPrev(p, l, nilHandle)
        Self.setNext(p, l, nilHandle)
        count -= 1
    }

    mutating func moveToFront(_ h: UInt32, _ slab: SlabCache, _ l: Links) {
        guard head != h else { return }
        remove(h, slab, l)
        pushFront(h, slab, l)
    }

    /// The object after `h` towards the tail.
    func next(of h: UInt32, _ slab: SlabCache, _ l: Links) -> UInt32 { Self.next(slab.pointer(h), l) }
    /// The object before `h` towards the head.
    func prev(of h: UInt32, _ slab: SlabCache, _ l: Links) -> UInt32 { Self.prev(slab.pointer(h), l) }

    /// Walks from the tail (least recent) towards the head, visiting at most `limit` objects, as
    /// list_lru_walk does. Each object is visited once even if the callback rotates it.
    mutating func walk(_ slab: SlabCache, _ l: Links, limit: Int, _ isolate: (UInt32) -> WalkResult) -> Int {
        var visited = 0
        var cur = tail
        let budget = min(limit, count)
        while cur != nilHandle && visited < budget {
            let before = Self.prev(slab.pointer(cur), l)
            visited += 1
            switch isolate(cur) {
            case .removed, .skip: break
            case .rotate: moveToFront(cur, slab, l)
            case .stop: return visited
            }
            cur = before
        }
        return visited
    }

    /// Handles from head to tail (for checks and tests).
    func handles(_ slab: SlabCache, _ l: Links) -> [UInt32] {
        var out: [UInt32] = []
        var cur = head
        while cur != nilHandle && out.count <= count {
            out.append(cur)
            cur = Self.next(slab.pointer(cur), l)
        }
        return out
    }
}
