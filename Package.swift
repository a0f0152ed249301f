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
        .testTarget(name: "MetaCacheTests", dependencies: ["MetaCache"]),
        .testTarget(name: "MetaFSTests", dependencies: ["MetaFS", "MetaCache"]),
    ]
)
