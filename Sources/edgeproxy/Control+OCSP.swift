import Admin
import Config
import EventLoop
import Logs
import OCSP

/// OCSP stapling (`tls.ocsp_stapling`): the stapler follows the update transaction like a
/// certificate source's mirror image, and asks responders once the listeners serve.
extension Control {
    /// Before the first certificate loads, so start-up's certificates are stapled too.
    func prepareOCSP() {
        guard settings.tls.ocspStapling else { return }
        let stapler = OCSPStapler(cacheDirectory: settings.tls.ocspCache)
        transaction.observe { stapler.changed(upserts: $0, removals: $1) }
        ocsp = stapler
    }

    func startOCSP() { ocsp?.start() }

    func reloadOCSP(_ old: TLSSettings, _ new: TLSSettings) {
        guard old.ocspStapling != new.ocspStapling || old.ocspCache != new.ocspCache else { return }
        Log.warning("tls.ocsp_stapling and tls.ocsp_cache take a restart; stapling carries on as before")
    }

    var ocspMetrics: PrometheusText.OCSP? {
        ocsp.map { let counts = $0.counts(); return PrometheusText.OCSP(staples: counts.staples, fetches: counts.fetches) }
    }

    func ocspListing(_ id: String) -> CertificateListing.OCSP? {
        guard let status = ocsp?.status(id) else { return nil }
        return CertificateListing.OCSP(status: status.label(), responder: status.url, nextUpdate: status.nextUpdate, error: status.error)
    }
}
