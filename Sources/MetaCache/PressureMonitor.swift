// `--budget auto`: reclaim when the machine (or the cgroup the daemon runs in) is under memory
// pressure, instead of at a fixed budget. Beyond what any kernel offers today: a user-space cache
// that shrinks when the kernel reports stalls on memory.
//
// The monitor arms a Linux PSI trigger (Documentation/accounting/psi.rst): it writes
// "some 100000 1000000" to the cgroup's memory.pressure (cgroup v2) or to /proc/pressure/memory
// and polls the file for POLLPRI: an event means tasks stalled on memory for 100 ms within a 1 s
// window. Without CAP_SYS_RESOURCE the kernel takes only windows that are multiples of 2 s, so
// "some 200000 2000000" is tried next. Where PSI is missing or the trigger is refused, it falls back to reading
// /proc/meminfo once a second and treating MemAvailable under 5% of MemTotal as pressure. Each
// event asks the background reclaimer for an eighth of the slab pages (it may write back).

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class PressureMonitor: @unchecked Sendable {
    /// Where pressure is read from ("" until started).
    private(set) var source = ""
    let events = Atomic<UInt64>(0)
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)
    private var fd: Int32 = -1
    private let onPressure: @Sendable () -> Void

    init(onPressure: @escaping @Sendable () -> Void) {
        self.onPressure = onPressure
    }

    deinit { stop() }

    /// The PSI files to try, most specific first.
    static func candidates() -> [String] {
        var out: [String] = []
        if let text = readSmallFile("/proc/self/cgroup") {
            for line in text.split(separator: "\n") where line.hasPrefix("0::") {
                let path = line.dropFirst(3)
                if path != "/" { out.append("/sys/fs/cgroup" + path + "/memory.pressure") }
            }
        }
        out.append("/proc/pressure/memory")
        return out
    }

    /// Arms a trigger (or the fallback) and starts the polling thread. Idempotent.
    func start() {
        thread.withLock { t in
            guard t == nil else { return }
            stopping.store(false, ordering: .relaxed)
            fd = -1
            source = "/proc/meminfo (MemAvailable < 5%)"
            search: for path in Self.candidates() {
                for (trigger, label) in [("some 100000 1000000", "some 100ms/1s"), ("some 200000 2000000", "some 200ms/2s")] {
                    let f = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
                    guard f >= 0 else { continue search }
                    let ok = trigger.withCString { write(f, $0, strlen($0) + 1) } > 0
                    if ok { fd = f; source = path + " (\(label))"; break search }
                    close(f)
                }
            }
            t = spawnThread { [self] in loop() }
        }
    }

    func stop() {
        guard let tid = thread.withLock({ t -> pthread_t? in defer { t = nil }; return t }) else { return }
        stopping.store(true, ordering: .releasing)
        pthread_join(tid, nil)
        if fd >= 0 { close(fd); fd = -1 }
    }

    var running: Bool { thread.withLock { $0 != nil } }

    private func loop() {
        while !stopping.load(ordering: .acquiring) {
            if fd >= 0 {
                var p = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
                let n = poll(&p, 1, 500)
                if n > 0 && p.revents & Int16(POLLERR) != 0 { close(fd); fd = -1; continue }
                if n > 0 && p.revents & Int16(POLLPRI) != 0 { fire() }
            } else {
                usleep(1_000_000)
                if !stopping.load(ordering: .acquiring), Self.memAvailableFraction() < 0.05 { fire() }
            }
        }
    }

    /// A pressure event (also called by tests).
    func fire() {
        events.wrappingAdd(1, ordering: .relaxed)
        onPressure()
    }

    /// MemAvailable / MemTotal from /proc/meminfo (1 when unreadable).
    static func memAvailableFraction() -> Double {
        guard let text = readSmallFile("/proc/meminfo") else { return 1 }
        var total = 0.0, available = -1.0
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 2, let v = Double(f[1]) else { continue }
            if f[0] == "MemTotal:" { total = v } else if f[0] == "MemAvailable:" { available = v }
        }
        return total > 0 && available >= 0 ? available / total : 1
    }
}

/// The contents of a small text file (nil if unreadable).
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += buffer[0..<n]
        if bytes.count > 1 << 20 { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
