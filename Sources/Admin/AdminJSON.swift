import Foundation

/// Every JSON answer of the admin API goes through one encoder: snake_case keys, ISO 8601 dates,
/// keys sorted (stable answers for scripts and diffs). The types it encodes are this module's
/// `Encodable` responses, one per endpoint; `openapi.json` documents each, and
/// the integration tests check every answer against it.
public enum AdminJSON {
    public static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value)) + [UInt8(ascii: "\n")]
        } catch {
            // Only non-finite numbers fail, and no response carries one; say so rather than send half a document.
            return Array("{\"error\":\"the answer could not be encoded: \(error)\"}\n".utf8)
        }
    }
}

/// An optional written as `null` when absent (the synthesised `Encodable` leaves it out), so
/// scripts can tell "none" from a field that does not exist.
@propertyWrapper
public struct Nullable<Value: Encodable & Sendable>: Encodable, Sendable {
    public var wrappedValue: Value?
    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

extension AdminResponse {
    /// `value` as the JSON body.
    public static func json(_ value: some Encodable, status: Int = 200, headers: [(String, String)] = []) -> AdminResponse {
        AdminResponse(status: status, contentType: "application/json", bytes: AdminJSON.encode(value), headers: headers)
    }
}

/// `{"error": reason}`: every refusal.
public struct ErrorAnswer: Encodable, Sendable {
    public var error: String
}

/// `DELETE /certificates/NAME`; `cluster: true` when the certificate was the fleet's (etcd).
public struct DeletedAnswer: Encodable, Sendable {
    public var deleted: String
    public var cluster: Bool?
    public init(deleted: String, cluster: Bool? = nil) { self.deleted = deleted; self.cluster = cluster }
}

/// `POST /acme/revoke/NAME`: the serial revoked; its replacement is being obtained.
public struct RevokedAnswer: Encodable, Sendable {
    public var revoked: String
    public var name: String
    public var reason: String
    public var replacement = "being obtained"
    public init(revoked: String, name: String, reason: String) { self.revoked = revoked; self.name = name; self.reason = reason }
}

/// `POST /acme/renew/NAME` (202): the serial served until the new one arrives.
public struct RenewingAnswer: Encodable, Sendable {
    public var renewing: String
    @Nullable public var serial: String?
    public init(renewing: String, serial: String?) { self.renewing = renewing; self.serial = serial }
}
