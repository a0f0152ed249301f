import ArgumentParser
import CrashHarness
import Glibc

/// `crashcheck`: generate ACE-style workloads, run each against FileSystem with the store in
/// persisted-image mode, and check every crash state it can leave (see docs/DURABILITY.md).
@main
struct CrashCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crashcheck",
        abstract: "Check metafs's crash consistency over generated workloads (persisted-image crash states).",
        discussion: "Exit status 0 when every crash state passes, 1 when any fails (each failure is printed with a reproducer).")

    @Option(help: "Seed of the workload generator.") var seed: UInt64 = 1
    @Option(help: "Number of workloads.") var workloads = 300
    @Option(help: "Check only workload N of the seed (a reproducer).") var only: Int?
    @Option(help: "Partial crash images sampled per multi-unit barrier.") var partials = 1
    @Option(help: "Unit of a partial barrier in bytes: 64 (cache lines) or 4096 (pages).") var granularity = 64
    @Option(help: "Directory for the store files (a tmpfs is fastest).") var directory = "/dev/shm"
    @Flag(help: "Also crash images where stores not yet persisted were written back early (cache evictions on persistent memory).")
    var earlyLanding = false
    @Flag(help: "Print each workload.") var verbose = false

    func run() throws {
        var o = HarnessOptions()
        o.seed = seed
        o.workloads = workloads
        o.only = only
        o.partialsPerBarrier = partials
        o.granularity = granularity
        o.directory = directory
        o.verbose = verbose
        o.earlyLanding = earlyLanding
        o.log = { line in print(line); fflush(nil) }
        let report = CrashHarness.run(o)
        print("crashcheck: seed \(seed): \(report.summary)")
        if !report.failures.isEmpty { throw ExitCode(1) }
    }
}
