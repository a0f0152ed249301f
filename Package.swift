// swift-tools-version: 6.2
import PackageDescription

// Layers (see docs/ARCHITECTURE.md): CFuse (C shim) <- MetaFS (FUSE glue, POSIX file system, store,
// control directory) -> MetaCache (slab-backed caches, no FUSE, no store). Tools/metafs is the CLI.
let package = Package(
    name: "metafs",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MetaCache", targets: ["MetaCache"]),
        .library(name: "MetaFS", targets: ["MetaFS"]),
        .executable(name: "metafs", targets: ["metafs"]),
        .executable(name: "crashcheck", targets: ["crashcheck"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "CFuse",
            linkerSettings: [.linkedLibrary("fuse3")]
        ),
        .target(name: "MetaCache"),
        .target(
            name: "MetaFS",
            dependencies: ["CFuse", "MetaCache"]
        ),
        .executableTarget(
            name: "metafs",
            dependencies: ["MetaFS", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/metafs"
        ),
        // The crash harness (issue 6): a library the tests use, and its command-line tool.
        .target(name: "CrashHarness", dependencies: ["MetaFS", "MetaCache"], path: "Tools/crashcheck/Harness"),
        .executableTarget(
            name: "crashcheck",
            dependencies: ["CrashHarness", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/crashcheck/Main"
        ),
        .testTarget(name: "MetaCacheTests", dependencies: ["MetaCache"]),
        .testTarget(name: "MetaFSTests", dependencies: ["MetaFS", "MetaCache", "CrashHarness"]),
    ]
)
