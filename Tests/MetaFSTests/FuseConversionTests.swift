import CFuse
import Glibc
import MetaCache
@testable import MetaFS
import Testing

@Suite struct FuseConversionTests {
    let sample = InodeAttributes(ino: 0x1_0000_0042, mode: 0o100640, nlink: 3, uid: 1000, gid: 100, rdev: 0x0801,
                                 size: 123_456_789_012, blocks: 241_128,
                                 atime: Timespec(seconds: 1_700_000_000, nanoseconds: 1),
                                 mtime: Timespec(seconds: -5, nanoseconds: 999_999_999),
                                 ctime: Timespec(seconds: 0, nanoseconds: 500), generation: 7, flags: 0)

    @Test func attributesToStatAndBack() {
        let st = StatConversion.stat(from: sample)
        #expect(st.st_ino == 0x1_0000_0042)
        #expect(st.st_mode == 0o100640)
        #expect(st.st_nlink == 3)
        #expect(st.st_uid == 1000 && st.st_gid == 100)
        #expect(st.st_rdev == 0x0801)
        #expect(st.st_size == 123_456_789_012)
        #expect(st.st_blocks == 241_128)
        #expect(st.st_blksize == 4096)
        #expect(st.st_atim.tv_sec == 1_700_000_000 && st.st_atim.tv_nsec == 1)
        #expect(st.st_mtim.tv_sec == -5 && st.st_mtim.tv_nsec == 999_999_999)
        #expect(st.st_ctim.tv_sec == 0 && st.st_ctim.tv_nsec == 500)
        var back = StatConversion.attributes(from: st)
        back.generation = sample.generation
        #expect(back == sample)
    }

    @Test func entryParameters() {
        let e = StatConversion.entry(from: sample, entryTimeout: 1.5, attrTimeout: 2.5)
        #expect(e.ino == sample.ino)
        #expect(e.generation == 7)
        #expect(e.entry_timeout == 1.5 && e.attr_timeout == 2.5)
        #expect(e.attr.st_ino == UInt(sample.ino) && e.attr.st_size == 123_456_789_012)
    }

    @Test func setattrDecoding() {
        var st = stat()
        st.st_mode = 0o104755
        st.st_uid = 5; st.st_gid = 6; st.st_size = 4097
        st.st_atim = timespec(tv_sec: 11, tv_nsec: 12)
        st.st_mtim = timespec(tv_sec: 21, tv_nsec: 22)
        st.st_ctim = timespec(tv_sec: 31, tv_nsec: 32)

        let none = StatConversion.changes(from: st, toSet: 0)
        #expect(none.mode == nil && none.uid == nil && none.gid == nil && none.size == nil && none.atime == nil && none.mtime == nil && none.ctime == nil)

        let all = StatConversion.changes(from: st, toSet: FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE
                                         | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_CTIME)
        #expect(all.mode == 0o104755 && all.uid == 5 && all.gid == 6 && all.size == 4097)
        guard case .set(let a)? = all.atime, case .set(let m)? = all.mtime else { Issue.record("times not decoded"); return }
        #expect(a == Timespec(seconds: 11, nanoseconds: 12))
        #expect(m == Timespec(seconds: 21, nanoseconds: 22))
        #expect(all.ctime == Timespec(seconds: 31, nanoseconds: 32))

        // touch: both times "now" (the kernel sets ATIME|ATIME_NOW).
        let now = StatConversion.changes(from: st, toSet: FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)
        guard case .now? = now.atime, case .now? = now.mtime else { Issue.record("NOW not decoded"); return }
        // utimensat with UTIME_OMIT for atime: only mtime set.
        let omit = StatConversion.changes(from: st, toSet: FUSE_SET_ATTR_MTIME)
        #expect(omit.atime == nil)
        guard case .set? = omit.mtime else { Issue.record("mtime not decoded"); return }
    }

    @Test func statfsConversion() {
        let u = FileSystemUsage(blockSize: 4096, blocks: 1000, freeBlocks: 400, files: 500, freeFiles: 123, nameMax: 255)
        let s = StatConversion.statvfs(from: u)
        #expect(s.f_bsize == 4096 && s.f_frsize == 4096 && s.f_blocks == 1000 && s.f_bfree == 400 && s.f_bavail == 400)
        #expect(s.f_files == 500 && s.f_ffree == 123 && s.f_namemax == 255)
    }

    @Test func mountOptionString() {
        var o = FuseMountOptions()
        o.fsname = "/tmp/a,b\\c.store"
        #expect(FuseSession.mountOptionString(o) == "default_permissions,fsname=/tmp/a\\,b\\\\c.store,subtype=metafs")
        o.allowOther = true
        #expect(FuseSession.mountOptionString(o).hasSuffix(",allow_other"))
        let d = FuseMountOptions()
        #expect(d.entryTimeout == 0 && d.attrTimeout == 0 && d.directIO, "exercise mode by default")
    }

    @Test func renderingFormats() {
        var stats = FileSystemStatistics(caches: [CacheStatistics(name: "metafs_dentry", activeObjects: 10, totalObjects: 64, objectSize: 64,
                                                                  objectsPerSlab: 64, pagesPerSlab: 1, activeSlabs: 1, totalSlabs: 1,
                                                                  hits: 5, misses: 2, slabBytes: 4096),
                                                  CacheStatistics(name: "metafs_inode", slabBytes: 8192)],
                                         cacheBytes: 20000, storeBytes: 1 << 30, storeUsedBytes: 1 << 20, storeBlocks: 262144,
                                         storeFreeBlocks: 262000, storeInodes: 65536, storeFreeInodes: 65000, commits: 3,
                                         committedObjects: 9, knownInodes: 4, openFiles: 1, rssBytes: 12345678,
                                         rssAnonymousBytes: 345678, rssFileBytes: 12000000)
        stats.openFiles = 1
        let fuse = FuseStatistics()
        fuse.count(.lookup); fuse.count(.lookup); fuse.error(.lookup); fuse.count(.read); fuse.bytes(.read, 4096)
        let snap = ControlSnapshot(statistics: stats, fuse: fuse.snapshot(), uptimeSeconds: 1.25)
        #expect(snap.slabBytes == 12288)

        let json = ControlRendering.json(snap)
        for key in ["\"slab_bytes\": 12288", "\"rss_bytes\": 12345678", "\"rss_anon_bytes\": 345678", "\"rss_file_bytes\": 12000000", "\"size_bytes\": 1073741824", "\"used_bytes\": 1048576",
                    "\"name\": \"metafs_dentry\"", "\"active_objects\": 10", "\"lookup\": {", "\"count\": 2", "\"errors\": 1",
                    "\"bytes\": 4096", "\"known_inodes\": 4", "\"free_inodes\": 65000"] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        let metrics = ControlRendering.metrics(snap)
        #expect(metrics.contains("# HELP metafs_slab_bytes "))
        #expect(metrics.contains("# TYPE metafs_slab_bytes gauge\nmetafs_slab_bytes 12288\n"))
        #expect(metrics.contains("metafs_cache_active_objects{cache=\"metafs_dentry\"} 10\n"))
        #expect(metrics.contains("# TYPE metafs_fuse_requests_total counter"))
        #expect(metrics.contains("metafs_fuse_requests_total{op=\"lookup\"} 2\n"))
        #expect(metrics.contains("metafs_fuse_errors_total{op=\"lookup\"} 1\n"))
        // Every sample line belongs to a family announced by HELP and TYPE.
        var announced = Set<String>()
        for line in metrics.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") { announced.insert(String(line.split(separator: " ")[2])) }
            else if !line.hasPrefix("#") {
                let name = line.prefix { $0 != "{" && $0 != " " }
                #expect(announced.contains(String(name)), "\(line)")
            }
        }
        let human = ControlRendering.stats(snap)
        #expect(human.contains("metafs_dentry") && human.contains("lookup") && human.contains("rss 11.8 MiB"))
        #expect(ControlRendering.jsonString("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
        #expect(ControlRendering.labelValue("x\"y\\z\n") == "x\\\"y\\\\z\\n")
    }
}
