/// How metafs presents itself to the kernel. The defaults are "exercise mode": the kernel caches
/// neither entries nor attributes (timeouts 0) and keeps no page cache for files (direct_io), so
/// every path walk, stat, read and write reaches metafs's own caches.
///
/// Note: with libfuse 3.14, files opened with direct_io cannot be mmap'd (mmap fails with ENODEV;
/// libfuse 3.17 adds FUSE_CAP_DIRECT_IO_ALLOW_MMAP). Programs that mmap files (some linkers, git
/// with core.packedGitWindowSize, databases) need `directIO = false` (`--no-direct-io`).
public struct FuseMountOptions: Sendable, Equatable {
    /// Seconds the kernel may cache a name → inode mapping (0: ask metafs every time).
    public var entryTimeout: Double = 0
    /// Seconds the kernel may cache attributes (0: ask metafs every time).
    public var attrTimeout: Double = 0
    /// Open every regular file with FOPEN_DIRECT_IO (no kernel page cache).
    public var directIO = true
    /// Let users other than the mounting one access the mount (needs user_allow_other for non-root).
    public var allowOther = false
    /// Number of worker threads (with `spinMicroseconds` 0: libfuse's maximum).
    public var maxThreads = 2
    /// How long a worker polls /dev/fuse for the next request before it sleeps in read(2)
    /// (Sources/CFuse/SessionLoop.c). 0: libfuse's own multi-threaded loop, which sleeps at once.
    public var spinMicroseconds = 50
    /// Use a cloned /dev/fuse descriptor per worker thread (libfuse's loop only: spin 0).
    public var cloneFD = true
    /// Largest write request, in bytes (libfuse caps it to its buffer: 1 MiB with 4 KiB pages).
    public var maxWrite = 1 << 20
    /// Extra `-o` options passed to libfuse as given (comma separated).
    public var extraOptions: [String] = []
    /// fsname shown in /proc/mounts (normally the store path).
    public var fsname = "metafs"
    /// libfuse debug output (`-d`).
    public var debug = false

    public init() {}
}
