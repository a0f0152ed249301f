import Glibc

/// A per-thread scratch buffer for read and readdir replies, so that a request does not allocate.
/// Grows to the largest size asked for on that thread; freed when the thread exits.
enum ThreadBuffer {
    static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in free(p) }
        return k
    }()

    /// At least `size` bytes, valid until the next call on this thread. The first 16 bytes of the
    /// allocation hold its capacity.
    static func get(_ size: Int) -> UnsafeMutableRawBufferPointer {
        let header = 16
        if let p = pthread_getspecific(key) {
            let capacity = p.load(as: Int.self)
            if capacity >= size { return UnsafeMutableRawBufferPointer(start: p + header, count: size) }
            free(p)
        }
        let capacity = max(size, 64 * 1024)
        guard let p = malloc(capacity + header) else { fatalError("metafs: out of memory for a \(capacity)-byte buffer") }
        p.storeBytes(of: capacity, as: Int.self)
        pthread_setspecific(key, p)
        return UnsafeMutableRawBufferPointer(start: p + header, count: size)
    }
}
