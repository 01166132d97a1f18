/*
 * hscost: server-side CPU cost of one full TLS 1.3 handshake (X25519, P-256 ECDSA certificate,
 * TLS_AES_128_GCM_SHA256, no resumption, no client certificate), measured two ways:
 *   prims  the libcrypto primitives alone, contexts reused as a tuned server would
 *   ssl    OpenSSL's libssl doing the handshake in memory (BIO pair), server calls timed only
 * Throw-away benchmark harness (issue 12, item 7). See bench/README.md.
 *
 *   ./hscost [-n handshakes] [-r runs] [-w prims,ssl,ssl-prefetch,ssl-sigalgs,ssl-reuse]
 *
 * Times are thread CPU time (CLOCK_THREAD_CPUTIME_ID). Workloads are interleaved run by run,
 * so drift on a shared machine hits them alike; medians (and min/max) over runs are printed.
 */
#define _GNU_SOURCE
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #x); \
    ERR_print_errors_fp(stderr); exit(1); } } while (0)

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---------- the server's certificate: a P-256 leaf with the usual extensions ---------- */

static EVP_PKEY *srv_key;
static X509 *srv_cert;
static int cert_der_len;

static void add_ext(X509 *c, int nid, const char *value) {
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, c, c, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    CHECK(e && X509_add_ext(c, e, -1));
    X509_EXTENSION_free(e);
}

static void make_cert(void) {
    CHECK(srv_key = EVP_EC_gen("P-256"));
    CHECK(srv_cert = X509_new());
    X509_set_version(srv_cert, 2);
    ASN1_INTEGER_set_int64(X509_get_serialNumber(srv_cert), 0x1234567890abcdefLL);
    X509_gmtime_adj(X509_getm_notBefore(srv_cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(srv_cert), 90L * 86400);
    X509_NAME *n = X509_get_subject_name(srv_cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (unsigned char *)"www.bench.example", -1, -1, 0);
    X509_set_issuer_name(srv_cert, n);
    X509_set_pubkey(srv_cert, srv_key);
    add_ext(srv_cert, NID_subject_alt_name, "DNS:www.bench.example,DNS:bench.example");
    add_ext(srv_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(srv_cert, NID_key_usage, "critical,digitalSignature");
    add_ext(srv_cert, NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(srv_cert, NID_subject_key_identifier, "hash");
    add_ext(srv_cert, NID_authority_key_identifier, "keyid:always");
    add_ext(srv_cert, NID_info_access, "OCSP;URI:http://ocsp.bench.example,caIssuers;URI:http://ca.bench.example/ca.der");
    CHECK(X509_sign(srv_cert, srv_key, EVP_sha256()));
    cert_der_len = i2d_X509(srv_cert, NULL);
}

/* ---------- (a) primitives ---------- */

/* Message sizes of the handshake, bytes including the 4-byte handshake header. */
enum { CH_LEN = 250, SH_LEN = 90, EE_LEN = 6, CV_LEN = 80, FIN_LEN = 36 };
static int cert_msg_len(void) { return 4 + 1 + 3 + 3 + cert_der_len + 2; }

typedef struct {
    EVP_PKEY_CTX *x_keygen;                   /* X25519 keygen context, reused */
    unsigned char peer_pub[32];               /* the client's key share */
    EVP_MD *sha256;
    EVP_MD_CTX *th, *th_snap;                 /* transcript hash and its snapshots */
    EVP_MD_CTX *sign_tmpl, *sign;             /* DigestSign context initialised once, copied per handshake */
    EVP_KDF_CTX *hkdf;                        /* HKDF with SHA-256 set once */
    EVP_MAC_CTX *hmac;                        /* HMAC with SHA-256 set once */
    EVP_CIPHER *aes;
    EVP_CIPHER_CTX *wr, *rd;                  /* AES-128-GCM, server write / read */
    unsigned char msg[4096], rec[4096];
    unsigned char empty_hash[32];
} prims_t;

static unsigned char *hkdf_label(unsigned char *p, const char *label, const unsigned char *ctx,
                                 size_t ctxlen, size_t outlen) {
    size_t ll = 6 + strlen(label);
    *p++ = outlen >> 8; *p++ = outlen & 0xff;
    *p++ = ll; memcpy(p, "tls13 ", 6); memcpy(p + 6, label, ll - 6); p += ll;
    *p++ = ctxlen; memcpy(p, ctx, ctxlen); p += ctxlen;
    return p;
}

static void hkdf_extract(prims_t *P, const unsigned char *salt, const unsigned char *ikm, size_t ikmlen,
                         unsigned char out[32]) {
    int mode = EVP_KDF_HKDF_MODE_EXTRACT_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
        OSSL_PARAM_construct_end() };
    CHECK(EVP_KDF_derive(P->hkdf, out, 32, p) == 1);
}

static void hkdf_expand_label(prims_t *P, const unsigned char secret[32], const char *label,
                              const unsigned char *ctx, size_t ctxlen, unsigned char *out, size_t outlen) {
    unsigned char info[2 + 1 + 255 + 1 + 255];
    size_t infolen = hkdf_label(info, label, ctx, ctxlen, outlen) - info;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, infolen),
        OSSL_PARAM_construct_end() };
    CHECK(EVP_KDF_derive(P->hkdf, out, outlen, p) == 1);
}

static void prims_init(prims_t *P) {
    memset(P, 0, sizeof *P);
    CHECK(P->x_keygen = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL));
    CHECK(EVP_PKEY_keygen_init(P->x_keygen) == 1);
    EVP_PKEY *peer = NULL;
    size_t len = 32;
    CHECK(EVP_PKEY_keygen(P->x_keygen, &peer) == 1);
    CHECK(EVP_PKEY_get_raw_public_key(peer, P->peer_pub, &len) == 1);
    EVP_PKEY_free(peer);

    CHECK(P->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL));
    CHECK((P->th = EVP_MD_CTX_new()) && (P->th_snap = EVP_MD_CTX_new()));
    unsigned int hl;
    CHECK(EVP_Digest("", 0, P->empty_hash, &hl, P->sha256, NULL));

    CHECK((P->sign_tmpl = EVP_MD_CTX_new()) && (P->sign = EVP_MD_CTX_new()));
    CHECK(EVP_DigestSignInit_ex(P->sign_tmpl, NULL, "SHA256", NULL, NULL, srv_key, NULL) == 1);

    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    CHECK(kdf && (P->hkdf = EVP_KDF_CTX_new(kdf)));
    EVP_KDF_free(kdf);
    OSSL_PARAM dp[] = { OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_construct_end() };
    CHECK(EVP_KDF_CTX_set_params(P->hkdf, dp) == 1);

    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    CHECK(mac && (P->hmac = EVP_MAC_CTX_new(mac)));
    EVP_MAC_free(mac);
    OSSL_PARAM mp[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_construct_end() };
    CHECK(EVP_MAC_CTX_set_params(P->hmac, mp) == 1);

    CHECK(P->aes = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL));
    CHECK((P->wr = EVP_CIPHER_CTX_new()) && (P->rd = EVP_CIPHER_CTX_new()));
    CHECK(EVP_CipherInit_ex2(P->wr, P->aes, NULL, NULL, 1, NULL) == 1);
    CHECK(EVP_CipherInit_ex2(P->rd, P->aes, NULL, NULL, 0, NULL) == 1);
    RAND_bytes(P->msg, sizeof P->msg);
}

/* Each step is one part of the server's work in a handshake; the state they share: */
typedef struct {
    EVP_PKEY *eph;
    unsigned char pub[32], ecdhe[32], random[32];
    unsigned char h_sh[32], h_cert[32], h_cv[32], h_sfin[32], h_cfin[32];
    unsigned char hs[32], c_hs[32], s_hs[32], master[32], c_ap[32], s_ap[32], exp[32], res[32];
    unsigned char wkey[16], wiv[12], rkey[16], riv[12], akey[2][16], aiv[2][12];
    unsigned char s_fk[32], c_fk[32], s_fin[32], c_fin[32];
    unsigned char sig[80];
    size_t siglen;
} hs_t;

static void step_random(prims_t *P, hs_t *H) { (void)P; CHECK(RAND_bytes(H->random, 32) == 1); }

static void step_x25519_keygen(prims_t *P, hs_t *H) {
    size_t len = 32;
    EVP_PKEY_free(H->eph);
    H->eph = NULL;
    CHECK(EVP_PKEY_keygen(P->x_keygen, &H->eph) == 1);
    CHECK(EVP_PKEY_get_raw_public_key(H->eph, H->pub, &len) == 1);
}

static void step_x25519_derive(prims_t *P, hs_t *H) {
    size_t len = 32;
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, P->peer_pub, 32);
    EVP_PKEY_CTX *d = EVP_PKEY_CTX_new_from_pkey(NULL, H->eph, NULL);
    CHECK(peer && d && EVP_PKEY_derive_init(d) == 1 && EVP_PKEY_derive_set_peer(d, peer) == 1);
    CHECK(EVP_PKEY_derive(d, H->ecdhe, &len) == 1 && len == 32);
    EVP_PKEY_CTX_free(d);
    EVP_PKEY_free(peer);
}

static void snap(prims_t *P, unsigned char out[32]) {
    CHECK(EVP_MD_CTX_copy_ex(P->th_snap, P->th) == 1 && EVP_DigestFinal_ex(P->th_snap, out, NULL) == 1);
}

/* Transcript: ClientHello, ServerHello | EE, Certificate | CertificateVerify | server Finished |
 * client Finished, with a hash snapshot where the key schedule or a signature/MAC needs one. */
static void step_transcript(prims_t *P, hs_t *H) {
    unsigned char *m = P->msg;
    CHECK(EVP_DigestInit_ex(P->th, P->sha256, NULL) == 1);
    EVP_DigestUpdate(P->th, m, CH_LEN);
    EVP_DigestUpdate(P->th, m, SH_LEN);
    snap(P, H->h_sh);
    EVP_DigestUpdate(P->th, m, EE_LEN);
    EVP_DigestUpdate(P->th, m, cert_msg_len());
    snap(P, H->h_cert);
    EVP_DigestUpdate(P->th, m, CV_LEN);
    snap(P, H->h_cv);
    EVP_DigestUpdate(P->th, m, FIN_LEN);
    snap(P, H->h_sfin);
    EVP_DigestUpdate(P->th, m, FIN_LEN);
    snap(P, H->h_cfin);
}

/* RFC 8446 §7.1 and §7.3, server side, no PSK. */
static void step_key_schedule(prims_t *P, hs_t *H) {
    static const unsigned char zero[32];
    unsigned char early[32], derived[32];
    hkdf_extract(P, zero, zero, 32, early);
    hkdf_expand_label(P, early, "derived", P->empty_hash, 32, derived, 32);
    hkdf_extract(P, derived, H->ecdhe, 32, H->hs);
    hkdf_expand_label(P, H->hs, "c hs traffic", H->h_sh, 32, H->c_hs, 32);
    hkdf_expand_label(P, H->hs, "s hs traffic", H->h_sh, 32, H->s_hs, 32);
    hkdf_expand_label(P, H->s_hs, "key", NULL, 0, H->wkey, 16);
    hkdf_expand_label(P, H->s_hs, "iv", NULL, 0, H->wiv, 12);
    hkdf_expand_label(P, H->c_hs, "key", NULL, 0, H->rkey, 16);
    hkdf_expand_label(P, H->c_hs, "iv", NULL, 0, H->riv, 12);
    hkdf_expand_label(P, H->s_hs, "finished", NULL, 0, H->s_fk, 32);
    hkdf_expand_label(P, H->c_hs, "finished", NULL, 0, H->c_fk, 32);
    hkdf_expand_label(P, H->hs, "derived", P->empty_hash, 32, derived, 32);
    hkdf_extract(P, derived, zero, 32, H->master);
    hkdf_expand_label(P, H->master, "c ap traffic", H->h_sfin, 32, H->c_ap, 32);
    hkdf_expand_label(P, H->master, "s ap traffic", H->h_sfin, 32, H->s_ap, 32);
    hkdf_expand_label(P, H->master, "exp master", H->h_sfin, 32, H->exp, 32);
    hkdf_expand_label(P, H->s_ap, "key", NULL, 0, H->akey[0], 16);
    hkdf_expand_label(P, H->s_ap, "iv", NULL, 0, H->aiv[0], 12);
    hkdf_expand_label(P, H->c_ap, "key", NULL, 0, H->akey[1], 16);
    hkdf_expand_label(P, H->c_ap, "iv", NULL, 0, H->aiv[1], 12);
    hkdf_expand_label(P, H->master, "res master", H->h_cfin, 32, H->res, 32);
}

static void step_sign(prims_t *P, hs_t *H) {
    unsigned char content[64 + 34 + 32];
    memset(content, 0x20, 64);
    memcpy(content + 64, "TLS 1.3, server CertificateVerify", 34); /* with its 0 byte */
    memcpy(content + 98, H->h_cert, 32);
    H->siglen = sizeof H->sig;
    CHECK(EVP_MD_CTX_copy_ex(P->sign, P->sign_tmpl) == 1);
    CHECK(EVP_DigestSign(P->sign, H->sig, &H->siglen, content, sizeof content) == 1);
}

static void hmac(prims_t *P, const unsigned char key[32], const unsigned char h[32], unsigned char out[32]) {
    size_t len;
    CHECK(EVP_MAC_init(P->hmac, key, 32, NULL) == 1 && EVP_MAC_update(P->hmac, h, 32) == 1);
    CHECK(EVP_MAC_final(P->hmac, out, &len, 32) == 1);
}

static void step_finished(prims_t *P, hs_t *H) {
    hmac(P, H->s_fk, H->h_cv, H->s_fin);   /* the server's Finished */
    hmac(P, H->c_fk, H->h_sfin, H->c_fin); /* the expected client Finished, compared */
    (void)CRYPTO_memcmp(H->c_fin, P->msg, 32);
}

/* One TLS 1.3 record: 5-byte header as AAD, nonce = iv ^ seq, content + type byte, 16-byte tag. */
static int record(EVP_CIPHER_CTX *c, int enc, const unsigned char iv[12], uint64_t seq,
                  unsigned char *buf, int len /* plaintext incl. type byte */) {
    unsigned char nonce[12], hdr[5] = { 23, 3, 3, (len + 16) >> 8, (len + 16) & 0xff };
    int out;
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= seq >> (8 * i);
    CHECK(EVP_CipherInit_ex2(c, NULL, NULL, nonce, enc, NULL) == 1);
    CHECK(EVP_CipherUpdate(c, NULL, &out, hdr, 5) == 1);
    CHECK(EVP_CipherUpdate(c, buf, &out, buf, len) == 1);
    if (enc) {
        CHECK(EVP_CipherFinal_ex(c, buf + len, &out) == 1);
        return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, buf + len) == 1;
    }
    CHECK(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, buf + len) == 1);
    return EVP_CipherFinal_ex(c, buf + len, &out) == 1;
}

/* Handshake keys in, the server's four encrypted records out, the client Finished record in
 * (its tag only matches in the self-check: the client's key changes every handshake), then
 * the application keys in. */
static int step_aead(prims_t *P, hs_t *H) {
    static const int sizes[] = { EE_LEN, 0 /* Certificate */, CV_LEN, FIN_LEN };
    CHECK(EVP_CipherInit_ex2(P->wr, NULL, H->wkey, NULL, 1, NULL) == 1);
    CHECK(EVP_CipherInit_ex2(P->rd, NULL, H->rkey, NULL, 0, NULL) == 1);
    for (int i = 0; i < 4; i++)
        record(P->wr, 1, H->wiv, i, P->rec, (sizes[i] ? sizes[i] : cert_msg_len()) + 1);
    int ok = record(P->rd, 0, H->riv, 0, P->rec + 2048, FIN_LEN + 1);
    CHECK(EVP_CipherInit_ex2(P->wr, NULL, H->akey[0], NULL, 1, NULL) == 1);
    CHECK(EVP_CipherInit_ex2(P->rd, NULL, H->akey[1], NULL, 0, NULL) == 1);
    return ok;
}

typedef struct { const char *name; void (*fn)(prims_t *, hs_t *); } step_t;
static void step_aead_v(prims_t *P, hs_t *H) { step_aead(P, H); }
static const step_t steps[] = {
    { "X25519 keygen (+ raw public key)", step_x25519_keygen },
    { "X25519 derive (peer key from raw bytes)", step_x25519_derive },
    { "ECDSA P-256 sign, CertificateVerify", step_sign },
    { "key schedule: 3 HKDF-Extract + 18 Expand-Label", step_key_schedule },
    { "transcript SHA-256 (6 messages, 5 snapshots)", step_transcript },
    { "Finished: 2 HMAC-SHA256", step_finished },
    { "AES-128-GCM: 4 records out, 1 in, 4 key setups", step_aead_v },
    { "ServerHello.random (RAND_bytes 32)", step_random },
};
#define NSTEPS (int)(sizeof steps / sizeof steps[0])

static void handshake_prims(prims_t *P, hs_t *H) {
    step_random(P, H);
    step_x25519_keygen(P, H);
    step_x25519_derive(P, H);
    step_transcript(P, H); /* hashing in one go; the snapshots it yields feed the rest */
    step_key_schedule(P, H);
    step_sign(P, H);
    step_finished(P, H);
    step_aead(P, H);
}

/* Known answers: RFC 8448 §3 early secret and first derived secret; one Expand-Label against
 * OpenSSL's own TLS13-KDF; an AEAD round trip; the signature verifies. */
static void prims_selfcheck(prims_t *P) {
    static const unsigned char zero[32];
    static const unsigned char early_8448[32] = {
        0x33,0xad,0x0a,0x1c,0x60,0x7e,0xc0,0x3b,0x09,0xe6,0xcd,0x98,0x93,0x68,0x0c,0xe2,
        0x10,0xad,0xf3,0x00,0xaa,0x1f,0x26,0x60,0xe1,0xb2,0x2e,0x10,0xf1,0x70,0xf9,0x2a };
    static const unsigned char derived_8448[32] = {
        0x6f,0x26,0x15,0xa1,0x08,0xc7,0x02,0xc5,0x67,0x8f,0x54,0xfc,0x9d,0xba,0xb6,0x97,
        0x16,0xc0,0x76,0x18,0x9c,0x48,0x25,0x0c,0xeb,0xea,0xc3,0x57,0x6c,0x36,0x11,0xba };
    unsigned char e[32], d[32], t[32];
    hkdf_extract(P, zero, zero, 32, e);
    CHECK(memcmp(e, early_8448, 32) == 0);
    hkdf_expand_label(P, e, "derived", P->empty_hash, 32, d, 32);
    CHECK(memcmp(d, derived_8448, 32) == 0);

    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, e, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, "derived", 7),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, P->empty_hash, 32),
        OSSL_PARAM_construct_end() };
    CHECK(k && EVP_KDF_derive(k, t, 32, p) == 1 && memcmp(t, d, 32) == 0);
    EVP_KDF_CTX_free(k);
    EVP_KDF_free(kdf);

    hs_t H = { 0 };
    handshake_prims(P, &H);
    /* the client's Finished record, encrypted under the client handshake key, must decrypt */
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    CHECK(EVP_CipherInit_ex2(c, P->aes, H.rkey, NULL, 1, NULL) == 1);
    memset(P->rec + 2048, 0x14, FIN_LEN + 1);
    record(c, 1, H.riv, 0, P->rec + 2048, FIN_LEN + 1);
    EVP_CIPHER_CTX_free(c);
    CHECK(step_aead(P, &H) == 1);
    EVP_MD_CTX *v = EVP_MD_CTX_new();
    unsigned char content[130];
    memset(content, 0x20, 64);
    memcpy(content + 64, "TLS 1.3, server CertificateVerify", 34);
    memcpy(content + 98, H.h_cert, 32);
    CHECK(EVP_DigestVerifyInit_ex(v, NULL, "SHA256", NULL, NULL, srv_key, NULL) == 1);
    CHECK(EVP_DigestVerify(v, H.sig, H.siglen, content, sizeof content) == 1);
    EVP_MD_CTX_free(v);
    EVP_PKEY_free(H.eph);
}

/* For comparison only (not in the sum): what libssl 3.0 does instead of reusing contexts —
 * a DigestSignInit per signature, and a TLS13-KDF fetch + context per Expand-Label. */
static void alt_sign_init_each(prims_t *P, hs_t *H) {
    unsigned char content[130] = { 0 };
    memcpy(content + 98, H->h_cert, 32);
    H->siglen = sizeof H->sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    CHECK(EVP_DigestSignInit_ex(m, NULL, "SHA256", NULL, NULL, srv_key, NULL) == 1);
    CHECK(EVP_DigestSign(m, H->sig, &H->siglen, content, sizeof content) == 1);
    EVP_MD_CTX_free(m);
    (void)P;
}
static void alt_expand_fetch_each(prims_t *P, hs_t *H) {
    for (int i = 0; i < 18; i++) {
        EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
        EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
        EVP_KDF_free(kdf);
        int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
        OSSL_PARAM p[] = {
            OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, H->hs, 32),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, "c hs traffic", 12),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, H->h_sh, 32),
            OSSL_PARAM_construct_end() };
        CHECK(k && EVP_KDF_derive(k, H->c_hs, 32, p) == 1);
        EVP_KDF_CTX_free(k);
    }
    (void)P;
}
static void step_expand_reused_18(prims_t *P, hs_t *H) {
    for (int i = 0; i < 18; i++) hkdf_expand_label(P, H->hs, "c hs traffic", H->h_sh, 32, H->c_hs, 32);
}
static const step_t alts[] = {
    { "ECDSA sign, DigestSignInit per signature", alt_sign_init_each },
    { "18 Expand-Label, ctx reused (as in the sum)", step_expand_reused_18 },
    { "18 Expand-Label, TLS13-KDF fetch+ctx each", alt_expand_fetch_each },
};
#define NALTS (int)(sizeof alts / sizeof alts[0])

/* ---------- (b) libssl in memory ---------- */

enum { SSL_PLAIN, SSL_PREFETCH, SSL_SIGALGS, SSL_REUSE, NSSL };
static const char *ssl_names[NSSL] = {
    "libssl: SSL_new..SSL_free",
    "libssl: + algorithms pre-fetched and held",
    "libssl: + server sigalgs ECDSA+SHA256 only",
    "libssl: SSL_clear reuse, no SSL_new/free",
};
static SSL_CTX *sctx, *cctx;
static void *held[16]; /* see prefetch_hold */

static SSL_CTX *new_ctx(int server) {
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    CHECK(c);
    CHECK(SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) && SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION));
    CHECK(SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256"));
    CHECK(SSL_CTX_set1_groups_list(c, "X25519"));
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c, 0);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (server) {
        CHECK(SSL_CTX_use_certificate(c, srv_cert) == 1 && SSL_CTX_use_PrivateKey(c, srv_key) == 1);
        CHECK(SSL_CTX_check_private_key(c) == 1);
    }
    return c;
}

/* The 3.0 "fetch once, keep" advice, from the outside: hold a reference on every algorithm the
 * server's handshake fetches by name, so the method store keeps them constructed. */
static void prefetch_hold(void) {
    int i = 0;
    held[i++] = EVP_MD_fetch(NULL, "SHA256", NULL);
    held[i++] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    held[i++] = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    held[i++] = EVP_KDF_fetch(NULL, "HKDF", NULL);
    held[i++] = EVP_MAC_fetch(NULL, "HMAC", NULL);
    held[i++] = EVP_KEYMGMT_fetch(NULL, "X25519", NULL);
    held[i++] = EVP_KEYEXCH_fetch(NULL, "X25519", NULL);
    held[i++] = EVP_KEYMGMT_fetch(NULL, "EC", NULL);
    held[i++] = EVP_SIGNATURE_fetch(NULL, "ECDSA", NULL);
    for (int j = 0; j < i; j++) CHECK(held[j]);
}
static void prefetch_release(void) {
    EVP_MD_free(held[0]); EVP_CIPHER_free(held[1]); EVP_KDF_free(held[2]); EVP_KDF_free(held[3]);
    EVP_MAC_free(held[4]); EVP_KEYMGMT_free(held[5]); EVP_KEYEXCH_free(held[6]);
    EVP_KEYMGMT_free(held[7]); EVP_SIGNATURE_free(held[8]);
    memset(held, 0, sizeof held);
}

static SSL *reuse_ssl;

/* The server's calls, not inlined, so that a profile can tell them from the client's. */
__attribute__((noinline)) static SSL *srv_new(int variant) {
    if (variant != SSL_REUSE) return SSL_new(sctx);
    if (!reuse_ssl) reuse_ssl = SSL_new(sctx);
    CHECK(SSL_clear(reuse_ssl) == 1);
    return reuse_ssl;
}
__attribute__((noinline)) static int srv_handshake(SSL *s) { return SSL_do_handshake(s); }
__attribute__((noinline)) static void srv_free(SSL *s, int variant) {
    if (variant == SSL_REUSE) SSL_set_bio(s, NULL, NULL); /* frees the BIO */
    else SSL_free(s);
}

/* One handshake; returns the server's CPU µs (its SSL calls only). */
static double handshake_ssl(int variant) {
    BIO *sb, *cb;
    CHECK(BIO_new_bio_pair(&sb, 0, &cb, 0) == 1);
    SSL *c = SSL_new(cctx);
    CHECK(c);
    SSL_set_bio(c, cb, cb);
    SSL_set_connect_state(c);
    SSL_set_tlsext_host_name(c, "www.bench.example");
    double t = 0, t0 = now_us();
    SSL *s = srv_new(variant);
    CHECK(s);
    SSL_set_bio(s, sb, sb);
    SSL_set_accept_state(s);
    t += now_us() - t0;
    int cdone = 0, sdone = 0;
    for (int rounds = 0; !(cdone && sdone); rounds++) {
        CHECK(rounds < 10);
        if (!cdone) {
            int r = SSL_do_handshake(c);
            if (r == 1) cdone = 1;
            else CHECK(SSL_get_error(c, r) == SSL_ERROR_WANT_READ);
        }
        if (!sdone) {
            t0 = now_us();
            int r = srv_handshake(s);
            t += now_us() - t0;
            if (r == 1) sdone = 1;
            else CHECK(SSL_get_error(s, r) == SSL_ERROR_WANT_READ);
        }
    }
    CHECK(SSL_version(s) == TLS1_3_VERSION && !SSL_session_reused(s));
    CHECK(strcmp(SSL_get_cipher_name(s), "TLS_AES_128_GCM_SHA256") == 0);
    t0 = now_us();
    srv_free(s, variant);
    t += now_us() - t0;
    SSL_free(c);
    return t;
}

/* ---------- driver ---------- */

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void stats(double *v, int n, double *med, double *lo, double *hi) {
    qsort(v, n, sizeof *v, cmpd);
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    *lo = v[0];
    *hi = v[n - 1];
}

#define MAXRUNS 64
int main(int argc, char **argv) {
    int n = 2000, runs = 7;
    const char *what = "prims,ssl,ssl-prefetch,ssl-sigalgs,ssl-reuse";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-w")) what = argv[i + 1];
        else { fprintf(stderr, "usage: %s [-n handshakes] [-r runs] [-w list]\n", argv[0]); return 2; }
    }
    if (runs > MAXRUNS) runs = MAXRUNS;
    static const char *ssl_keys[NSSL] = { "ssl", "ssl-prefetch", "ssl-sigalgs", "ssl-reuse" };
    int do_prims = 0, do_ssl[NSSL] = { 0 };
    char list[256];
    snprintf(list, sizeof list, "%s", what);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int found = !strcmp(tok, "prims");
        do_prims |= found;
        for (int v = 0; v < NSSL; v++)
            if (!strcmp(tok, ssl_keys[v])) do_ssl[v] = found = 1;
        if (!found) { fprintf(stderr, "unknown workload %s\n", tok); return 2; }
    }

    make_cert();
    printf("OpenSSL %s; certificate %d B DER (Certificate message %d B); %d handshakes x %d runs\n",
           OpenSSL_version(OPENSSL_VERSION), cert_der_len, cert_msg_len(), n, runs);
    prims_t P;
    prims_init(&P);
    prims_selfcheck(&P);
    sctx = new_ctx(1);
    cctx = new_ctx(0);
    SSL_CTX *sctx_plain = sctx, *sctx_sigalgs = new_ctx(1);
    CHECK(SSL_CTX_set1_sigalgs_list(sctx_sigalgs, "ECDSA+SHA256"));

    /* clock overhead: one timed empty region */
    double t0 = now_us();
    for (int i = 0; i < 10000; i++) { double a = now_us(); (void)a; }
    double clock_cost = (now_us() - t0) / 10000;

    static double step_v[NSTEPS][MAXRUNS], alt_v[NALTS][MAXRUNS], sum_v[MAXRUNS], whole_v[MAXRUNS];
    static double ssl_v[NSSL][MAXRUNS];
    hs_t H = { 0 };
    handshake_prims(&P, &H);
    for (int i = 0; i < 50; i++) handshake_ssl(SSL_PLAIN); /* warm-up */
    for (int r = 0; r < runs; r++) {
        if (do_prims) {
            sum_v[r] = 0;
            for (int s = 0; s < NSTEPS; s++) {
                t0 = now_us();
                for (int i = 0; i < n; i++) steps[s].fn(&P, &H);
                step_v[s][r] = (now_us() - t0) / n;
                sum_v[r] += step_v[s][r];
            }
            t0 = now_us();
            for (int i = 0; i < n; i++) handshake_prims(&P, &H);
            whole_v[r] = (now_us() - t0) / n;
            for (int s = 0; s < NALTS; s++) {
                t0 = now_us();
                for (int i = 0; i < n; i++) alts[s].fn(&P, &H);
                alt_v[s][r] = (now_us() - t0) / n;
            }
        }
        for (int k = 0; k < NSSL; k++) {
            int v = (k + r) % NSSL; /* the variants' order rotates from run to run */
            if (!do_ssl[v]) continue;
            if (v == SSL_PREFETCH) prefetch_hold();
            sctx = v == SSL_SIGALGS ? sctx_sigalgs : sctx_plain;
            double t = 0;
            for (int i = 0; i < n; i++) t += handshake_ssl(v);
            ssl_v[v][r] = t / n;
            if (v == SSL_PREFETCH) prefetch_release();
        }
        fprintf(stderr, "run %d/%d done\n", r + 1, runs);
    }
    double med, lo, hi;
    printf("\n| part (server side, one handshake) | median µs | min | max |\n|---|---:|---:|---:|\n");
    if (do_prims) {
        for (int s = 0; s < NSTEPS; s++) {
            stats(step_v[s], runs, &med, &lo, &hi);
            printf("| %s | %.1f | %.1f | %.1f |\n", steps[s].name, med, lo, hi);
        }
        stats(sum_v, runs, &med, &lo, &hi);
        printf("| **(a) sum of the primitives** | **%.1f** | %.1f | %.1f |\n", med, lo, hi);
        stats(whole_v, runs, &med, &lo, &hi);
        printf("| (a) the same, run back to back as one handshake | %.1f | %.1f | %.1f |\n", med, lo, hi);
        for (int s = 0; s < NALTS; s++) {
            stats(alt_v[s], runs, &med, &lo, &hi);
            printf("| _for comparison:_ %s | %.1f | %.1f | %.1f |\n", alts[s].name, med, lo, hi);
        }
    }
    for (int v = 0; v < NSSL; v++) {
        if (!do_ssl[v]) continue;
        stats(ssl_v[v], runs, &med, &lo, &hi);
        printf("| **(b) %s** | **%.1f** | %.1f | %.1f |\n", ssl_names[v], med, lo, hi);
    }
    /* Paired per run (the workloads of one run are seconds apart): robust to the machine's drift. */
    if (do_prims && do_ssl[SSL_PLAIN]) {
        double d[MAXRUNS], q[MAXRUNS];
        for (int r = 0; r < runs; r++) d[r] = ssl_v[SSL_PLAIN][r] - sum_v[r], q[r] = ssl_v[SSL_PLAIN][r] / sum_v[r];
        stats(d, runs, &med, &lo, &hi);
        printf("| **(b) − (a): libssl's own work, paired per run** | **%.1f** | %.1f | %.1f |\n", med, lo, hi);
        stats(q, runs, &med, &lo, &hi);
        printf("| (b) / (a), paired per run | %.2f× | %.2f× | %.2f× |\n", med, lo, hi);
    }
    for (int v = 1; v < NSSL; v++) {
        if (!do_ssl[v] || !do_ssl[SSL_PLAIN]) continue;
        double q[MAXRUNS];
        for (int r = 0; r < runs; r++) q[r] = ssl_v[v][r] / ssl_v[SSL_PLAIN][r];
        stats(q, runs, &med, &lo, &hi);
        printf("| %s ÷ plain libssl, paired per run | %.2f× | %.2f× | %.2f× |\n", ssl_names[v], med, lo, hi);
    }
    printf("\nclock_gettime(CLOCK_THREAD_CPUTIME_ID): %.2f µs per call (libssl figures include ~%d per handshake)\n",
           clock_cost, 2 * 5);
    return 0;
}
