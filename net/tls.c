/* net/tls — see tls.h.
 *
 * wolfSSL's IO callbacks read from the octets of the feed in progress (rp, rn, roff) and
 * append to the output buffer; wolfSSL keeps a partial record in its own input buffer, so
 * every octet it read is "taken". Nothing here blocks: with no octet left the read
 * callback says WANT_READ, and the send callback never refuses (the output buffer grows;
 * the stream's back-pressure bounds how much plaintext its owner writes). */
#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

struct net_tls_ctx {
	WOLFSSL_CTX *ctx;
	enum net_tls_role role;
	bool verify;
	unsigned refs;                      /* the owner's and one per filter (atomic) */
};

struct net_tls {
	struct net_tls_ctx *c;
	WOLFSSL *ssl;
	const uint8_t *rp;                  /* the feed in progress */
	size_t rn, roff;
	struct buf plain, out;
	bool established, failed, closed, peer_eof, close_sent;
	uint8_t rec_hdr_n;                  /* record framing of what was taken: header */
	uint8_t rec_hdr[5];                 /* octets seen ... */
	size_t rec_left;                    /* ... and body octets still to come */
	char error[96];
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_init_res;

static void tls_global_init(void)
{
	tls_init_res = wolfSSL_Init();
}

static int tls_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	(void)ssl;
	struct net_tls *t = arg;
	size_t left = t->rn - t->roff;
	if (left == 0)
		return t->peer_eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
	size_t k = (size_t)sz < left ? (size_t)sz : left;
	memcpy(buf, t->rp + t->roff, k);
	t->roff += k;
	return (int)k;
}

static int tls_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	(void)ssl;
	struct net_tls *t = arg;
	if (sz <= 0)
		return 0;
	if (buf_append(&t->out, buf, (size_t)sz) < 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	return sz;
}

static void ctx_err(char *err, size_t errlen, const char *what, const char *file, int rc)
{
	char why[80];
	if (rc == WOLFSSL_FAILURE || rc == 0)   /* no code of its own: say what it means */
		snprintf(why, sizeof why, "cannot be used (not PEM, or not of a supported kind)");
	else
		wolfSSL_ERR_error_string_n((unsigned long)(long)(rc > 0 ? -rc : rc), why, sizeof why);
	snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", why);
}

struct net_tls_ctx *net_tls_ctx_new(const struct net_tls_conf *conf, char *err, size_t errlen)
{
	struct net_tls_ctx *c = NULL;
	WOLFSSL_CTX *ctx = NULL;
	int rc;
	pthread_once(&tls_once, tls_global_init);
	if (tls_init_res != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "wolfSSL_Init failed");
		return NULL;
	}
	if (conf->role == NET_TLS_SERVER && (!conf->cert_file || !conf->key_file)) {
		snprintf(err, errlen, "a TLS server needs a certificate and a key");
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	bool srv = conf->role == NET_TLS_SERVER;
	WOLFSSL_METHOD *m = conf->version == 12 ? (srv ? wolfTLSv1_2_server_method()
	                                               : wolfTLSv1_2_client_method())
	                  : conf->version == 13 ? (srv ? wolfTLSv1_3_server_method()
	                                               : wolfTLSv1_3_client_method())
	                  : (srv ? wolfSSLv23_server_method() : wolfSSLv23_client_method());
	ctx = m ? wolfSSL_CTX_new(m) : NULL;
	if (!ctx) {
		snprintf(err, errlen, "wolfSSL_CTX_new failed");
		goto fail;
	}
	rc = wolfSSL_CTX_SetMinVersion(ctx, conf->version == 13 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2);
	if (rc != WOLFSSL_SUCCESS) {
		ctx_err(err, errlen, "TLS minimum version", NULL, rc);
		goto fail;
	}
	if (conf->cert_file) {
		rc = wolfSSL_CTX_use_certificate_chain_file(ctx, conf->cert_file);
		if (rc != WOLFSSL_SUCCESS) {
			ctx_err(err, errlen, "certificate", conf->cert_file, rc);
			goto fail;
		}
	}
	if (conf->key_file) {
		rc = wolfSSL_CTX_use_PrivateKey_file(ctx, conf->key_file, WOLFSSL_FILETYPE_PEM);
		if (rc != WOLFSSL_SUCCESS) {
			ctx_err(err, errlen, "key", conf->key_file, rc);
			goto fail;
		}
		if (conf->cert_file && wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "key %s does not match certificate %s", conf->key_file,
			         conf->cert_file);
			goto fail;
		}
	}
	if (conf->ca_file) {
		rc = wolfSSL_CTX_load_verify_locations(ctx, conf->ca_file, NULL);
		if (rc != WOLFSSL_SUCCESS) {
			ctx_err(err, errlen, "CA file", conf->ca_file, rc);
			goto fail;
		}
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
		c->verify = true;
	} else {
		/* Opportunistic (RFC 7435): a client that was given no CA takes any peer. */
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	wolfSSL_CTX_SetIORecv(ctx, tls_recv);
	wolfSSL_CTX_SetIOSend(ctx, tls_send);
	c->ctx = ctx;
	c->role = conf->role;
	c->refs = 1;
	return c;
fail:
	if (ctx)
		wolfSSL_CTX_free(ctx);
	free(c);
	return NULL;
}

static void ctx_unref(struct net_tls_ctx *c)
{
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		wolfSSL_CTX_free(c->ctx);
		free(c);
	}
}

void net_tls_ctx_free(struct net_tls_ctx *c)
{
	if (c)
		ctx_unref(c);
}

struct net_tls_ctx *net_tls_ctx_ref(struct net_tls_ctx *c)
{
	if (c)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

struct net_tls *net_tls_new(struct net_tls_ctx *c, const char *server_name)
{
	struct net_tls *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ssl = wolfSSL_new(c->ctx);
	if (!t->ssl) {
		free(t);
		return NULL;
	}
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	if (server_name && c->role == NET_TLS_CLIENT) {
		size_t len = strlen(server_name);
		if (len > 0 && len < 256 &&
		    wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, server_name, (unsigned short)len)
		        != WOLFSSL_SUCCESS)
			goto fail;
		if (c->verify && wolfSSL_check_domain_name(t->ssl, server_name) != WOLFSSL_SUCCESS)
			goto fail;
	}
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	t->c = c;
	return t;
fail:
	wolfSSL_free(t->ssl);
	free(t);
	return NULL;
}

void net_tls_free(struct net_tls *t)
{
	if (!t)
		return;
	wolfSSL_free(t->ssl);
	buf_fini(&t->plain);
	buf_fini(&t->out);
	ctx_unref(t->c);
	free(t);
}

static enum net_tls_res tls_fail(struct net_tls *t, int rc)
{
	int e = wolfSSL_get_error(t->ssl, rc);
	char why[80];
	/* wolfSSL's own codes are negative (a positive one is "unknown error number") */
	wolfSSL_ERR_error_string_n((unsigned long)(long)(e > 0 ? -e : e), why, sizeof why);
	snprintf(t->error, sizeof t->error, "%s (%d)", why, e);
	t->failed = true;
	return NET_TLS_ERR;
}

/* wolfSSL says "want more" or a real error. */
static bool tls_wants(struct net_tls *t, int rc)
{
	int e = wolfSSL_get_error(t->ssl, rc);
	return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

static enum net_tls_res tls_read_plain(struct net_tls *t)
{
	while (t->plain.len < NET_TLS_PLAIN_MAX) {
		uint8_t tmp[16384];
		int rc = wolfSSL_read(t->ssl, tmp, (int)sizeof tmp);
		if (rc > 0) {
			if (buf_append(&t->plain, tmp, (size_t)rc) < 0) {
				snprintf(t->error, sizeof t->error, "out of memory");
				t->failed = true;
				return NET_TLS_ERR;
			}
			continue;
		}
		if (wolfSSL_get_error(t->ssl, rc) == WOLFSSL_ERROR_ZERO_RETURN) {
			t->closed = true;
			return NET_TLS_CLOSED;
		}
		if (tls_wants(t, rc))
			return t->plain.len > 0 ? NET_TLS_OK : NET_TLS_AGAIN;
		int e = wolfSSL_get_error(t->ssl, rc);
		if (t->peer_eof && (e == SOCKET_PEER_CLOSED_E || e == SOCKET_ERROR_E) &&
		    t->rec_hdr_n == 0 && t->rec_left == 0) {
			/* TCP ended without close_notify, after a whole record. Many SMTP peers
			 * do that; SMTP's own framing (QUIT, the dot) tells its owner whether
			 * anything was cut. Inside a record it is an error. */
			t->closed = true;
			return NET_TLS_CLOSED;
		}
		return tls_fail(t, rc);
	}
	return NET_TLS_OK;
}

/* Follow the record framing of the octets taken, so that an EOF can tell a cut record
 * from a peer that just did not say close_notify. */
static void tls_track_records(struct net_tls *t, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (t->rec_left > 0) {
			size_t k = n < t->rec_left ? n : t->rec_left;
			t->rec_left -= k;
			p += k;
			n -= k;
			continue;
		}
		t->rec_hdr[t->rec_hdr_n++] = *p++;
		n--;
		if (t->rec_hdr_n == 5) {
			t->rec_left = (size_t)t->rec_hdr[3] << 8 | t->rec_hdr[4];
			t->rec_hdr_n = 0;
		}
	}
}

enum net_tls_res net_tls_feed(struct net_tls *t, const uint8_t *p, size_t n, size_t *taken,
                              struct net_tls_budget *b)
{
	enum net_tls_res res;
	*taken = 0;
	if (t->failed)
		return NET_TLS_ERR;
	if (t->closed)
		return NET_TLS_CLOSED;
	if (!t->established && b) {
		if (b->left == 0) {
			b->spent++;
			return NET_TLS_BUDGET;
		}
		b->left--;
	}
	t->rp = p;
	t->rn = n;
	t->roff = 0;
	if (!t->established) {
		int rc = t->c->role == NET_TLS_SERVER ? wolfSSL_accept(t->ssl)
		                                      : wolfSSL_connect(t->ssl);
		if (rc == WOLFSSL_SUCCESS) {
			t->established = true;
		} else {
			res = tls_wants(t, rc) ? NET_TLS_AGAIN : tls_fail(t, rc);
			goto out;
		}
	}
	res = tls_read_plain(t);
out:
	tls_track_records(t, p, t->roff);
	*taken = t->roff;
	t->rp = NULL;
	t->rn = t->roff = 0;
	return res;
}

void net_tls_peer_eof(struct net_tls *t)
{
	t->peer_eof = true;
}

const uint8_t *net_tls_plain(const struct net_tls *t, size_t *n)
{
	*n = t->plain.len;
	return t->plain.p;
}

void net_tls_plain_used(struct net_tls *t, size_t n)
{
	buf_consume(&t->plain, n <= t->plain.len ? n : t->plain.len);
}

void net_tls_discard(struct net_tls *t)
{
	buf_consume(&t->plain, t->plain.len);
}

int net_tls_write(struct net_tls *t, const void *p, size_t n)
{
	if (t->failed || t->close_sent)
		return -EPIPE;
	if (!t->established)
		return -EAGAIN;
	const uint8_t *q = p;
	while (n > 0) {
		int k = n > (size_t)INT_MAX / 2 ? INT_MAX / 2 : (int)n;
		int rc = wolfSSL_write(t->ssl, q, k);
		if (rc <= 0) {
			tls_fail(t, rc);
			return wolfSSL_get_error(t->ssl, rc) == MEMORY_E ? -ENOMEM : -EPIPE;
		}
		q += rc;
		n -= (size_t)rc;
	}
	return 0;
}

void net_tls_close(struct net_tls *t)
{
	if (t->close_sent || t->failed)
		return;
	t->close_sent = true;
	(void)wolfSSL_shutdown(t->ssl);      /* queues close_notify; we do not wait for the peer's */
}

const uint8_t *net_tls_out(const struct net_tls *t, size_t *n)
{
	*n = t->out.len;
	return t->out.p;
}

void net_tls_out_used(struct net_tls *t, size_t n)
{
	buf_consume(&t->out, n <= t->out.len ? n : t->out.len);
}

bool net_tls_established(const struct net_tls *t)
{
	return t->established;
}

bool net_tls_is_client(const struct net_tls *t)
{
	return t->c->role == NET_TLS_CLIENT;
}

bool net_tls_verified(const struct net_tls *t)
{
	return t->established && t->c->verify && t->c->role == NET_TLS_CLIENT;
}

/* A session is wolfSSL's own, reference counted (wolfSSL_get1_session). */
struct net_tls_session *net_tls_session_get(struct net_tls *t)
{
	if (!t->established || t->failed || t->c->role != NET_TLS_CLIENT)
		return NULL;
	return (struct net_tls_session *)wolfSSL_get1_session(t->ssl);
}

bool net_tls_ask_ticket(struct net_tls *t)
{
#ifdef HAVE_SESSION_TICKET
	return t->c->role == NET_TLS_CLIENT && !t->established &&
	       wolfSSL_UseSessionTicket(t->ssl) == WOLFSSL_SUCCESS;
#else
	(void)t;
	return false;
#endif
}

void net_tls_session_use(struct net_tls *t, struct net_tls_session *s)
{
	if (s && !t->established)
		(void)wolfSSL_set_session(t->ssl, (WOLFSSL_SESSION *)s);  /* refused: a full one */
}

void net_tls_session_free(struct net_tls_session *s)
{
	if (s)
		wolfSSL_SESSION_free((WOLFSSL_SESSION *)s);
}

bool net_tls_resumed(const struct net_tls *t)
{
	return t->established && wolfSSL_session_reused(t->ssl) == 1;
}

const char *net_tls_version(const struct net_tls *t)
{
	return t->established ? wolfSSL_get_version(t->ssl) : "-";
}

/* The IANA name (TLS_AES_128_GCM_SHA256, as Postfix and OpenSSL 3 log it), else
 * wolfSSL's own (TLS13-AES128-GCM-SHA256). */
const char *net_tls_cipher(const struct net_tls *t)
{
	if (!t->established)
		return "-";
	int cs = wolfSSL_get_current_cipher_suite(t->ssl);
	const char *s = cs < 0 ? NULL
	              : wolfSSL_get_cipher_name_iana_from_suite((unsigned char)(cs >> 8),
	                                                        (unsigned char)cs);
	if (!s || !s[0] || strcmp(s, "None") == 0)
		s = wolfSSL_get_cipher_name(t->ssl);
	return s ? s : "-";
}

const char *net_tls_error(const struct net_tls *t)
{
	return t->error;
}
