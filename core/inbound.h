/* core/inbound — the relay's policy for the SMTP server application (core/smtp_server):
 * how each listener treats PROXY headers (DESIGN.md, "Inbound PROXY protocol"), the
 * connection limits, who may relay (relay.networks after PROXY, relay.domains), queue
 * ids, and the spool: a complete message is appended to the worker's spool and answered
 * 250 only when its commit has completed (451 when it failed). */
#ifndef CORE_INBOUND_H
#define CORE_INBOUND_H
#include <stdbool.h>

#include "cfg/config.h"
#include "core/smtp_server.h"
#include "core/spool.h"

struct inbound_conn {
	bool limited, relay_ok;
	bool mem_logged;                   /* event=data_memory_full said for this session */
	uint32_t limit_slot;
};

extern const struct smtp_server_ops inbound_ops;

/* The listeners' TLS contexts (certificate and key), built from cfg by the main thread at
 * start and on SIGHUP and swapped in for new connections (RCU: the old ones are dropped
 * after a grace period; a connection keeps the one it began with). -1 with the reason
 * in err when a certificate or key cannot be loaded: the old contexts stay. */
int inbound_tls_load(const struct config *cfg, char *err, size_t errlen);
void inbound_tls_fini(void);

/* The spool's verdict for a message (the spool's done callback; waiter is the conn). */
void inbound_spooled(void *waiter, bool ok, const struct spool_loc *loc);

#endif
