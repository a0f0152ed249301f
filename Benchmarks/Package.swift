// swift-tools-version: 6.2
// Benchmarks for MetaCache, kept in a nested package so that `swift build` and `swift test` of
// metafs do not build them. Run: swift run -c release MetaCacheBench   (see README.md)
import PackageDescription

let package = Package(
    name: "MetaCacheBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "metafs", path: "../"),
    ],
    targets: [
        .executableTarget(
            name: "MetaCacheBench",
            dependencies: [.product(name: "MetaCache", package: "metafs")]
        ),
    ]
)
