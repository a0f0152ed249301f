import Testing
@testable import MetaFS
@Test func placeholderFS() { #expect(1 + 1 == 2) }
