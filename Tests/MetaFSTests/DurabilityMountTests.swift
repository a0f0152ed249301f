import Foundation
import Glibc
@testable import MetaFS
import Testing

// Issue 6 on a live mount: ENOSPC, stale mounts, security, and SIGKILL of the daemon during a
// workload. Every test goes through MountFixture, which always unmounts.

@Suite(.serialized) struct DurabilityMountTests {
    func fsck(_ f: MountFixture, sourceLocation: SourceLocation = #_sourceLocation) {
        let r = Shell.run("'\((try? MountFixture.binary()) ?? "metafs")' fsck '\(f.store)'", timeout: 120)
        #expect(r.ok && r.stdout.contains("clean"), "fsck: \(r)", sourceLocation: sourceLocation)
    }

    @Test(.timeLimit(.minutes(3)))
    func enospcDataNothingLostAndWritingResumes() throws {
        let f = try MountFixture()
        defer { f.teardown() }
        f.storeSize = "16M"
        try f.mkfs()
        try f.mount()
        f.check("head -c 3000000 /dev/urandom > keep && sync keep && sha256sum keep > $DIR/keep.sum && mkdir d && echo small > d/s")
        let fill = f.sh("dd if=/dev/zero of=big bs=64k 2> $DIR/dd.err; echo rc=$?; cat $DIR/dd.err", timeout: 120)
        #expect(fill.stdout.contains("No space left on device"), "\(fill)")
        f.check("! head -c 100000 /dev/zero > more 2>/dev/null", "a further write fails too")
        f.check("mkdir e && for i in $(seq 1 300); do touch e/name-long-enough-to-fill-directory-leaves-$i || exit 1; done && mkdir e/sub && sync",
                "with data full, creates still commit (blocks are kept for metadata)")
        f.check("sha256sum -c $DIR/keep.sum && test \"$(cat d/s)\" = small", "nothing already written is lost")
        f.check("rm big more && head -c 1000000 /dev/urandom > again && sync again && test $(stat -c %s again) -eq 1000000", "writing works again after a delete")
        f.check("sha256sum -c $DIR/keep.sum")
        #expect(f.unmount())
        fsck(f)
    }

    @Test(.timeLimit(.minutes(3)))
    func enospcInodesNothingLostAndCreatingResumes() throws {
        let f = try MountFixture()
        defer { f.teardown() }
        f.storeSize = "16M"
        let r = Shell.run("'\(try MountFixture.binary())' mkfs '\(f.store)' --size 16M --inodes 64", timeout: 60)
        #expect(r.ok, "\(r)")
        try f.mount()
        let fill = f.sh("mkdir d; i=0; while echo $i > d/f$i 2> $DIR/err; do i=$((i+1)); done; echo created=$i; cat $DIR/err")
        #expect((fill.stdout + fill.stderr).contains("No space left on device"), "\(fill)")
        let created = Int(fill.stdout.split(separator: "\n").first { $0.hasPrefix("created=") }?.dropFirst(8) ?? "") ?? 0
        #expect(created > 40 && created < 64)
        f.check("for i in $(seq 0 \(created - 1)); do test \"$(cat d/f$i)\" = $i || exit 1; done", "every file made before ENOSPC is intact")
        f.check("rm d/f0 d/f1 && echo new > d/new && test \"$(cat d/new)\" = new", "creating works again after a delete")
        #expect(f.unmount())
        fsck(f)
    }

    @Test(.timeLimit(.minutes(2)))
    func staleMountIsExplainedAndCleared() throws {
        let f = try MountFixture()
        defer { f.teardown() }
        try f.mkfs()
        try f.mount()
        f.check("echo data > a && sync a")
        let pid = try #require(f.daemonPid)
        kill(pid, SIGKILL)
        usleep(200_000)
        let bin = try MountFixture.binary()
        let refused = Shell.run("'\(bin)' mount '\(f.store)' '\(f.mnt)'", timeout: 30)
        #expect(!refused.ok && refused.stderr.contains("dead FUSE mount") && refused.stderr.contains("--force-unmount-stale")
                && refused.stderr.contains("fusermount3 -u"), "\(refused)")
        try f.mount(extraArguments: "--force-unmount-stale")
        f.check("test \"$(cat a)\" = data", "the fsync'd file survived the kill")
        #expect(f.unmount())
        fsck(f)
    }

    @Test(.timeLimit(.minutes(2)))
    func busyStaleMountIsReportedNotHung() throws {
        let f = try MountFixture()
        defer { f.teardown() }
        try f.mkfs()
        try f.mount()
        // A process sits in the mount; then the daemon dies.
        let sleeper = f.sh("(cd '\(f.mnt)' && exec sleep 60) > /dev/null 2>&1 & echo $!")
        let sleeperPid = pid_t(sleeper.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        defer { if sleeperPid > 0 { kill(sleeperPid, SIGKILL) } }
        usleep(300_000)
        kill(try #require(f.daemonPid), SIGKILL)
        usleep(200_000)
        let start = Shell.monotonic()
        let r = Shell.run("'\(try MountFixture.binary())' mount '\(f.store)' '\(f.mnt)' --force-unmount-stale", timeout: 60)
        #expect(Shell.monotonic() - start < 30)
        #expect(!r.ok && r.stderr.contains("busy") && r.stderr.contains("fusermount3 -uz"), "\(r)")
        if sleeperPid > 0 { kill(sleeperPid, SIGKILL) }
        usleep(200_000)
        try f.mount(extraArguments: "--force-unmount-stale")
        #expect(f.unmount())
        fsck(f)
    }

    @Test(.timeLimit(.minutes(2)))
    func securityControlOwnerStoreModeAndExactNames() throws {
        // Without allow_other, nobody else can even look.
        try withMount { m in
            m.check("test $(stat -c %a \"$STORE\") = 600", "the store file is created 0600")
            m.check("chmod 711 \"$DIR\" && setpriv --reuid=65534 --regid=65534 --clear-groups stat \"$DIR\" > /dev/null", "others may reach the mount point")
            m.check("! setpriv --reuid=65534 --regid=65534 --clear-groups stat \"$MNT\" > /dev/null 2>&1", "no allow_other unless asked")
            m.check("grep \" $MNT \" /proc/mounts | grep -v allow_other > /dev/null")
            // Names: every byte but '/' and NUL, stored and returned exact.
            m.check("""
                python3 - <<'PY'
                import os
                names = set()
                allbytes = bytes(b for b in range(1, 256) if b != ord('/'))
                for i in range(0, len(allbytes), 50):
                    names.add(allbytes[i:i+50])
                names |= {b'\\xff\\xfe', b'\\x80', b'a\\nb', b' lead', b'trail ', b'\\t', b'\\xc3\\x28', b'x' * 255, b'..a', b'-'}
                for n in names:
                    with open(n, 'wb') as f: f.write(n)
                got = set(os.listdir(b'.'))
                assert got == names, (got ^ names)
                for n in names:
                    assert open(n, 'rb').read() == n
                    if len(n) < 254: os.rename(n, n + b'.r')
                assert set(os.listdir(b'.')) == {n + b'.r' if len(n) < 254 else n for n in names}
                PY
                """, "names with any bytes")
        }
        // With allow_other: others may read the statistics but not write control.
        try withMount(mountArguments: "--allow-other") { m in
            m.check("chmod 711 \"$DIR\"")
            m.check("setpriv --reuid=65534 --regid=65534 --clear-groups cat \"$CTL/stats\" > /dev/null", "others can read stats")
            m.check("! setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo sync > \"$CTL/control\"' 2>/dev/null", "only the owner writes control")
            m.check("echo sync > \"$CTL/control\" && grep -q 'sync: ok' \"$CTL/control\"", "the owner (root) does")
            m.check("test $(stat -c %a \"$CTL/control\") = 644 && test $(stat -c %u \"$CTL/control\") = $(id -u)")
        }
    }

    /// 20 rounds: a mixed workload, the daemon SIGKILLed during it, remount (journal replay),
    /// fsck clean, every file fsync'd before the kill intact.
    @Test(.timeLimit(.minutes(4)))
    func sigkillDuringWorkloadTwentyRounds() throws {
        let f = try MountFixture()
        defer { f.teardown() }
        f.storeSize = "64M"
        try f.mkfs()
        let bin = try MountFixture.binary()
        let rounds = Int(ProcessInfo.processInfo.environment["METAFS_SIGKILL_ROUNDS"] ?? "") ?? 20
        for round in 0..<rounds {
            try f.mount(extraArguments: round == 0 ? "" : "--force-unmount-stale")
            if round > 0 {
                f.check("cd \"$MNT\" && sha256sum -c --quiet $DIR/synced.sum", "round \(round): every file fsync'd before the kill is intact")
            }
            // The workload: durable files (written once, fsync'd, then recorded outside the mount)
            // amid unsynced creates, overwrites, renames and deletes.
            let script = """
                import os, random, hashlib, sys, time
                mnt, out, rnd = sys.argv[1], sys.argv[2], int(sys.argv[3])
                random.seed(rnd)
                os.makedirs(f'{mnt}/r{rnd}/tmp', exist_ok=True)
                man = open(out, 'a')
                i = 0
                end = time.time() + 3
                while time.time() < end:
                    i += 1
                    p = f'{mnt}/r{rnd}/f{i}'
                    data = os.urandom(random.choice([10, 4096, 5000, 70000]))
                    try:
                        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
                        os.write(fd, data)
                        if i % 3 == 0:
                            os.fsync(fd); os.close(fd)
                            man.write(f'{hashlib.sha256(data).hexdigest()}  r{rnd}/f{i}\\n'); man.flush(); os.fsync(man.fileno())
                        else:
                            os.close(fd)
                            q = f'{mnt}/r{rnd}/tmp/t{i}'
                            os.rename(p, q)
                            if i % 2: os.unlink(q)
                            else:
                                with open(q, 'r+b') as g: g.write(b'overwrite')
                    except OSError:
                        break
                """
            try script.write(toFile: f.dir + "/work.py", atomically: true, encoding: .utf8)
            let work = f.sh("python3 $DIR/work.py \"$MNT\" $DIR/synced.sum \(round) > $DIR/work.out 2>&1 & echo $!")
            let workPid = pid_t(work.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            usleep(UInt32(Int.random(in: 400_000...1_500_000)))
            let daemon = try #require(f.daemonPid)
            kill(daemon, SIGKILL)
            var status: Int32 = 0
            for _ in 0..<200 where kill(workPid, 0) == 0 { _ = waitpid(workPid, &status, WNOHANG); usleep(20_000) }
            if kill(workPid, 0) == 0 { kill(workPid, SIGKILL) }
            // Clear the dead mount, then fsck (the open replays the journal).
            let clear = Shell.run("fusermount3 -u '\(f.mnt)'", timeout: 30)
            #expect(clear.ok || !MountTable.isMounted(f.mnt), "round \(round): \(clear)")
            let r = Shell.run("'\(bin)' fsck '\(f.store)'", timeout: 120)
            #expect(r.ok && r.stdout.contains("clean"), "round \(round): fsck after SIGKILL: \(r)")
        }
        try f.mount()
        f.check("cd \"$MNT\" && sha256sum -c --quiet $DIR/synced.sum && test $(wc -l < $DIR/synced.sum) -gt 20", "after the last round")
        #expect(f.unmount())
        fsck(f)
    }
}
