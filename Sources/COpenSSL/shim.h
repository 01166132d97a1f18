// OpenSSL names that are macros (and so invisible to Swift), wrapped as inline functions.
// Only macros belong here; everything importable is called directly.
#ifndef EDGEPROXY_COPENSSL_SHIM_H
#define EDGEPROXY_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ocsp.h>

static inline long COpenSSL_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long COpenSSL_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return SSL_CTX_set_min_proto_version(ctx, v); }
static inline long COpenSSL_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return SSL_CTX_set_max_proto_version(ctx, v); }
static inline long COpenSSL_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *l) { return SSL_CTX_set1_groups_list(ctx, l); }
static inline long COpenSSL_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long m) { return SSL_CTX_set_session_cache_mode(ctx, m); }
static inline long COpenSSL_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *x) { return SSL_CTX_add1_chain_cert(ctx, x); }
static inline long COpenSSL_SSL_CTX_set_tlsext_ticket_key_evp_cb(SSL_CTX *ctx,
    int (*cb)(SSL *, unsigned char *, unsigned char *, EVP_CIPHER_CTX *, EVP_MAC_CTX *, int)) {
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, cb);
}

/// Our cipher order wins, except that a client listing ChaCha20-Poly1305 first (one without AES
/// instructions, typically) gets it: AES in software costs such a client more than ChaCha20.
static inline uint64_t COpenSSL_OP_defaults(void) {
    return SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA
         | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
}
static inline uint64_t COpenSSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
/// In both modes a certificate goes out with exactly the chain it was configured with, as nginx
/// sends it (without SSL_MODE_NO_AUTO_CHAIN OpenSSL completes a leaf-only chain from the context's
/// trust store, running X509_verify_cert in every handshake). Pooled upstream connections keep
/// their buffers: they carry request after request, and giving the buffers back when idle costs a
/// malloc and a free of each per exchange.
static inline long COpenSSL_MODE_pooled(void) {
    return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN;
}
static inline long COpenSSL_MODE_defaults(void) {
    return SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
         | SSL_MODE_NO_AUTO_CHAIN;
}
static inline int COpenSSL_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }
static inline int COpenSSL_TLS1_3_VERSION(void) { return TLS1_3_VERSION; }
static inline int COpenSSL_CLIENT_HELLO_SUCCESS(void) { return SSL_CLIENT_HELLO_SUCCESS; }
static inline int COpenSSL_CLIENT_HELLO_ERROR(void) { return SSL_CLIENT_HELLO_ERROR; }
static inline int COpenSSL_CLIENT_HELLO_RETRY(void) { return SSL_CLIENT_HELLO_RETRY; }
static inline long COpenSSL_SSL_set1_verify_cert_store(SSL *s, X509_STORE *st) { return SSL_set1_verify_cert_store(s, st); }
static inline unsigned long COpenSSL_XN_FLAG_RFC2253(void) { return XN_FLAG_RFC2253; }
static inline int COpenSSL_AD_UNRECOGNIZED_NAME(void) { return SSL_AD_UNRECOGNIZED_NAME; }
static inline long COpenSSL_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
static inline int COpenSSL_TLSEXT_ERR_OK(void) { return SSL_TLSEXT_ERR_OK; }
static inline int COpenSSL_TLSEXT_ERR_NOACK(void) { return SSL_TLSEXT_ERR_NOACK; }
static inline int COpenSSL_TLSEXT_ERR_ALERT_FATAL(void) { return SSL_TLSEXT_ERR_ALERT_FATAL; }
static inline void COpenSSL_free(void *p) { OPENSSL_free(p); }
static inline long COpenSSL_BIO_get_mem_data(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }
static inline int COpenSSL_SSL_get_ex_new_index(void) { return SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }
static inline X509 *COpenSSL_SSL_get_peer_certificate(const SSL *s) { return SSL_get1_peer_certificate(s); }
/// Keys an HMAC-SHA256 EVP_MAC_CTX. The OSSL_PARAM names are string macros: built here so
/// their storage outlives the call (a Swift String would be a temporary).
static inline int COpenSSL_HMAC_SHA256_set_key(EVP_MAC_CTX *mac, unsigned char *key, size_t len) {
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, len);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(mac, params);
}

// ACME client side (Sources/TLS/TLSClient.swift, CSR.swift): SNI on outgoing handshakes and the
// X509_REQ extension stack are macros too.
static inline long COpenSSL_SSL_set_tlsext_host_name(SSL *s, const char *name) { return SSL_set_tlsext_host_name(s, name); }
static inline STACK_OF(X509_EXTENSION) *COpenSSL_sk_X509_EXTENSION_new_null(void) { return sk_X509_EXTENSION_new_null(); }
static inline int COpenSSL_sk_X509_EXTENSION_push(STACK_OF(X509_EXTENSION) *sk, X509_EXTENSION *e) { return sk_X509_EXTENSION_push(sk, e); }
static inline void COpenSSL_sk_X509_EXTENSION_pop_free(STACK_OF(X509_EXTENSION) *sk) { sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free); }

// A certificate's intermediates, handed to SSL_use_cert_and_key (which takes its own references).
static inline STACK_OF(X509) *COpenSSL_sk_X509_new_null(void) { return sk_X509_new_null(); }
static inline int COpenSSL_sk_X509_push(STACK_OF(X509) *sk, X509 *x) { return sk_X509_push(sk, x); }
static inline void COpenSSL_sk_X509_pop_free(STACK_OF(X509) *sk) { sk_X509_pop_free(sk, X509_free); }
static inline int COpenSSL_AD_INTERNAL_ERROR(void) { return SSL_AD_INTERNAL_ERROR; }
static inline int COpenSSL_EVP_PKEY_KEYPAIR(void) { return EVP_PKEY_KEYPAIR; }

// Upstream TLS (Sources/TLS/UpstreamTLSContext.swift): sessions handed to the new-session callback only.
static inline long COpenSSL_SESS_CACHE_client_external(void) { return SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE; }
// OCSP stapling (Sources/TLS/OCSPStapling.swift): the status callback and the response setter are macros;
// the response handed over must come from OPENSSL_malloc (OpenSSL frees it with the connection).
static inline long COpenSSL_SSL_CTX_set_tlsext_status_cb(SSL_CTX *ctx, int (*cb)(SSL *, void *)) {
    return SSL_CTX_set_tlsext_status_cb(ctx, cb);
}
static inline long COpenSSL_SSL_set_tlsext_status_ocsp_resp(SSL *s, unsigned char *resp, long len) {
    return SSL_set_tlsext_status_ocsp_resp(s, resp, len);
}
static inline void *COpenSSL_malloc(size_t n) { return OPENSSL_malloc(n); }
#endif
