import Testing
@testable import MetaCache
@Test func placeholder() { #expect(1 + 1 == 2) }
