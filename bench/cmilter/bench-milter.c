/*
 * The reference milters of relayguard's benchmark: the fastest milter one can write against
 * libmilter, so that relayguard's numbers have a floor to be compared with.
 *
 *   bench-milter -p SOCKET [-b]
 *
 *   (default)  "null": SMFIS_CONTINUE at every stage, one header added at end of message.
 *   -b         "body": the same, and the body is replaced by itself plus one appended line
 *              (the work a disclaimer milter must do at least: keep the body, send it back).
 *
 * Every callback is registered and answers SMFIS_CONTINUE ("continue everywhere"), so the MTA
 * sends this milter the same events as relayguard gets: the comparison is the cost of the
 * framework per event, not a difference in what is negotiated.
 *
 * SOCKET uses libmilter syntax: unix:/path or inet:PORT@HOST.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libmilter/mfapi.h>

#define HEADER_NAME "X-Bench-Milter"
#define APPENDED_LINE "\r\n-- appended by the benchmark's C milter --\r\n"
#define INITIAL_BODY_CAPACITY (128 * 1024)
#define LISTEN_BACKLOG 256
#define MILTER_TIMEOUT_S 300

static int replace_body = 0;

struct body_buffer {
	unsigned char *data;
	size_t len;
	size_t cap;
};

static struct body_buffer *buffer_of(SMFICTX *ctx)
{
	struct body_buffer *b = smfi_getpriv(ctx);
	if (b == NULL) {
		b = calloc(1, sizeof(*b));
		if (b == NULL)
			return NULL;
		smfi_setpriv(ctx, b);
	}
	return b;
}

static void reset_buffer(SMFICTX *ctx, int release)
{
	struct body_buffer *b = smfi_getpriv(ctx);
	if (b == NULL)
		return;
	b->len = 0;
	if (release) {
		free(b->data);
		free(b);
		smfi_setpriv(ctx, NULL);
	}
}

static int append(struct body_buffer *b, const unsigned char *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : INITIAL_BODY_CAPACITY;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *grown = realloc(b->data, cap);
		if (grown == NULL)
			return -1;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static sfsistat on_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)ctx; (void)host; (void)addr;
	return SMFIS_CONTINUE;
}

static sfsistat on_helo(SMFICTX *ctx, char *name)
{
	(void)ctx; (void)name;
	return SMFIS_CONTINUE;
}

static sfsistat on_envelope(SMFICTX *ctx, char **argv)
{
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx; (void)name; (void)value;
	return SMFIS_CONTINUE;
}

static sfsistat on_event(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	if (!replace_body)
		return SMFIS_CONTINUE;
	struct body_buffer *b = buffer_of(ctx);
	if (b == NULL || append(b, chunk, len) != 0)
		return SMFIS_TEMPFAIL;
	return SMFIS_CONTINUE;
}

static sfsistat on_eom(SMFICTX *ctx)
{
	if (smfi_addheader(ctx, HEADER_NAME, replace_body ? "body" : "null") != MI_SUCCESS)
		return SMFIS_TEMPFAIL;
	if (replace_body) {
		struct body_buffer *b = buffer_of(ctx);
		if (b == NULL || append(b, (const unsigned char *)APPENDED_LINE, strlen(APPENDED_LINE)) != 0)
			return SMFIS_TEMPFAIL;
		if (smfi_replacebody(ctx, b->data, (int)b->len) != MI_SUCCESS)
			return SMFIS_TEMPFAIL;
		reset_buffer(ctx, 0);
	}
	return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx)
{
	reset_buffer(ctx, 0);
	return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
	reset_buffer(ctx, 1);
	return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
	char *socket_spec = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "p:b")) != -1) {
		switch (opt) {
		case 'p': socket_spec = optarg; break;
		case 'b': replace_body = 1; break;
		default:
			fprintf(stderr, "usage: %s -p unix:/path|inet:PORT@HOST [-b]\n", argv[0]);
			return 2;
		}
	}
	if (socket_spec == NULL) {
		fprintf(stderr, "%s: -p SOCKET is required\n", argv[0]);
		return 2;
	}
	struct smfiDesc desc = {
		.xxfi_name = replace_body ? "bench-body" : "bench-null",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = SMFIF_ADDHDRS | (replace_body ? SMFIF_CHGBODY : 0),
		.xxfi_connect = on_connect,
		.xxfi_helo = on_helo,
		.xxfi_envfrom = on_envelope,
		.xxfi_envrcpt = on_envelope,
		.xxfi_header = on_header,
		.xxfi_eoh = on_event,
		.xxfi_data = on_event,
		.xxfi_body = on_body,
		.xxfi_eom = on_eom,
		.xxfi_abort = on_abort,
		.xxfi_close = on_close,
	};
	if (strncmp(socket_spec, "unix:", 5) == 0)
		unlink(socket_spec + 5); /* a stale socket of an earlier run */
	if (smfi_setconn(socket_spec) == MI_FAILURE || smfi_setbacklog(LISTEN_BACKLOG) == MI_FAILURE ||
	    smfi_settimeout(MILTER_TIMEOUT_S) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) {
		fprintf(stderr, "%s: cannot set up libmilter\n", argv[0]);
		return 1;
	}
	if (smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "%s: cannot open %s: %s\n", argv[0], socket_spec, strerror(errno));
		return 1;
	}
	if (strncmp(socket_spec, "unix:", 5) == 0)
		chmod(socket_spec + 5, 0666); /* Postfix's smtpd runs as user postfix */
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
