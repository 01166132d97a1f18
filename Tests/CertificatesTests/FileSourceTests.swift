import Testing
@testable import Certificates

@Suite struct DebouncerTests {
    @Test func certificateThenKeyBecomeOneUpdate() {
        var d = Debouncer(quiet: 0.02, maxDelay: 0.25)
        #expect(d.event("a.test", at: 10.000) == 10.020)
        #expect(d.event("a.test", at: 10.005) == 10.025)   // the key, 5 ms later
        #expect(d.fire(at: 10.010) == nil)
        #expect(d.fire(at: 10.025) == ["a.test"])
        #expect(d.deadline == nil)
        #expect(d.fire(at: 11) == nil)
    }

    @Test func aBurstThatNeverStopsStillFiresAtMaxDelay() {
        var d = Debouncer(quiet: 0.02, maxDelay: 0.1)
        var t = 0.0
        while t < 0.2 { _ = d.event("n\(Int(t * 1000))", at: t); t += 0.01 }
        #expect(d.deadline == 0.1)
        let batch = d.fire(at: 0.2)
        #expect(batch?.count == 20)
    }

    @Test func separateNamesAreBatchedTogether() {
        var d = Debouncer()
        _ = d.event("a", at: 1)
        _ = d.event("b", at: 1.001)
        #expect(d.fire(at: 1.1) == ["a", "b"])
    }
}

@Suite struct ChangeDetectionTests {
    let s1 = FileStamp(device: 1, inode: 10, size: 100, mtimeSeconds: 5, mtimeNanoseconds: 0)
    let s2 = FileStamp(device: 1, inode: 11, size: 100, mtimeSeconds: 6, mtimeNanoseconds: 0)

    @Test func sameStampsReadNothing() {
        var read = false
        let c = FileChange.decide(known: ([s1], [1, 2]), stamps: [s1]) { read = true; return [1, 2] }
        #expect(c == .unchanged)
        #expect(!read)
    }

    @Test func newStampsSameBytesKeepTheBundle() {
        #expect(FileChange.decide(known: ([s1], [1, 2]), stamps: [s2]) { [1, 2] } == .sameContent)
    }

    @Test func newBytesAreAChange() {
        #expect(FileChange.decide(known: ([s1], [1, 2]), stamps: [s2]) { [3] } == .changed)
        #expect(FileChange.decide(known: nil, stamps: [s1]) { [3] } == .changed)
    }

    @Test func missingFiles() {
        #expect(FileChange.decide(known: ([s1], [1]), stamps: nil) { [1] } == .missing)
        #expect(FileChange.decide(known: ([s1], [1]), stamps: [s2]) { nil } == .missing)
    }

    @Test func eventNamesMapToCertificateBases() {
        #expect(CertificateFileSet.baseName(ofEvent: "a.test.crt") == "a.test")
        #expect(CertificateFileSet.baseName(ofEvent: "a.test.key") == "a.test")
        #expect(CertificateFileSet.baseName(ofEvent: "b.pem") == "b")
        #expect(CertificateFileSet.baseName(ofEvent: "a.test.crt.tmp-write") == nil)
        #expect(CertificateFileSet.baseName(ofEvent: ".a.crt") == nil)
        #expect(CertificateFileSet.baseName(ofEvent: "README") == nil)
    }
}

