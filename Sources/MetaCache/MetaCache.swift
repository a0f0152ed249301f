/// PLACEHOLDER: the real MetaCache (slab allocator and the three caches) replaces this file.
public struct CacheConfiguration: Sendable { public init() {} }
public final class MetaCache: @unchecked Sendable {
    public init(configuration: CacheConfiguration = .init()) {}
    public func slabinfo() -> String { "" }
    public func statistics() -> [CacheStatistics] { [] }
}
