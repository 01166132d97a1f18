import Foundation

/// The dashboard's way in. A browser cannot send `Authorization: Bearer`, so with a token
/// configured the page first shows a login form (POST, so the token stays out of addresses and
/// logs); `GET /dashboard?token=T` does the same for a bookmark or a script, then redirects to the
/// bare address. Either sets the token in a cookie the page's scripts cannot read (HttpOnly), that
/// no other site's page can make the browser send (SameSite=Strict), and that `authorize` accepts
/// for GET and HEAD only. Without a token the admin API answers loopback clients only, and so
/// does the page.
public enum DashboardPage {
    static let cookieName = "edgeproxy_admin"

    public static func respond(_ route: AdminRoute, _ request: AdminRequest, token: String?) -> AdminResponse {
        guard let token else {
            if let denied = AdminRouter.authorize(token: nil, authorization: nil, peerIsLoopback: request.peerIsLoopback) { return denied }
            return route == .dashboardLogin ? redirect() : page()
        }
        let offered: String?
        if route == .dashboardLogin {
            offered = formValue(request.body, "token")
        } else if let query = AdminRouter.query(request.path, "token") {
            offered = query
        } else {
            let denied = AdminRouter.authorize(token: token, authorization: request.authorization, peerIsLoopback: request.peerIsLoopback,
                                               cookie: request.cookie, method: request.method)
            return denied == nil ? page() : login(status: 401, message: nil)
        }
        guard let offered, AdminRouter.constantTimeEquals(Array(offered.utf8), Array(token.utf8)) else {
            return login(status: 401, message: "That token is not this node's admin.token.")
        }
        return redirect(setting: offered)
    }

    /// The token from `Cookie: …; edgeproxy_admin=VALUE; …` (percent-decoded), if present.
    public static func session(fromCookie cookie: String?) -> String? {
        guard let cookie else { return nil }
        for pair in cookie.split(separator: ";") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == Substring(cookieName) { return String(parts[1]).removingPercentEncoding }
        }
        return nil
    }

    /// `application/x-www-form-urlencoded`: `+` is a space, the rest percent-decoded.
    static func formValue(_ body: [UInt8], _ key: String) -> String? {
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.first == Substring(key) else { continue }
            let raw = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ") : ""
            return raw.removingPercentEncoding
        }
        return nil
    }

    /// 303 to the page, the cookie set when a token was given. No Max-Age: it lasts as long as the
    /// browser session.
    static func redirect(setting session: String? = nil) -> AdminResponse {
        var headers = [("Location", "/dashboard"), ("Cache-Control", "no-store")]
        if let session {
            // Cookie values may not hold spaces, commas, semicolons or quotes: percent-encoded.
            let value = session.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? session
            headers.append(("Set-Cookie", "\(cookieName)=\(value); Path=/; HttpOnly; SameSite=Strict"))
        }
        return AdminResponse(status: 303, contentType: "text/plain; charset=utf-8", body: "see /dashboard\n", headers: headers)
    }

    /// No outside resource may load, and only this listener may be asked (connect-src 'self').
    static let headers = [
        ("Content-Security-Policy", "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
            + "img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"),
    ]

    // Dashboard/*.html, compiled into the binary (SwiftPM's embedInCode): nothing to install beside it.
    static func page() -> AdminResponse {
        AdminResponse(status: 200, contentType: "text/html; charset=utf-8", bytes: PackageResources.dashboard_html, headers: headers)
    }

    static func login(status: Int, message: String?) -> AdminResponse {
        let note = message.map { "<p class=\"error\">\($0)</p>" } ?? ""
        let html = String(decoding: PackageResources.login_html, as: UTF8.self).replacingOccurrences(of: "<!--MESSAGE-->", with: note)
        return AdminResponse(status: status, contentType: "text/html; charset=utf-8", body: html, headers: headers)
    }
}
