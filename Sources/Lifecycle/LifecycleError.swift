/// Why socket activation, the service manager or a binary upgrade could not go ahead: `code` is
/// stable for scripts, `reason` says what happened and what to do next.
public struct LifecycleError: Error, CustomStringConvertible, Sendable {
    public let code: String
    public let reason: String

    init(_ code: String, _ reason: String) { self.code = code; self.reason = reason }

    public var description: String { "\(reason) [\(code)]" }

    static func activation(_ reason: String) -> LifecycleError { LifecycleError("socket-activation", reason) }
    static func upgrade(_ reason: String) -> LifecycleError { LifecycleError("upgrade", reason) }
    static func upgradeSocket(_ reason: String) -> LifecycleError { LifecycleError("upgrade-socket", reason) }
    /// A live process answers on the upgrade socket's path: starting beside it is a mistake.
    public static let inUseCode = "upgrade-socket-in-use"
}
