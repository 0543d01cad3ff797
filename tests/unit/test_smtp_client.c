/* Tests for the SMTP client session (src/smtp/client.c): scripted fake
 * servers. Each scenario feeds replies and checks the exact bytes the
 * session writes, its events, the recipients' results and its error; every
 * scenario also runs with its replies fed one byte at a time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "smtp/client.h"

/* ---- the script ---- */

enum op {
	OP_END,
	OP_FEED,     /* s: server bytes; ev: the event returned */
	OP_OUT,      /* s: exactly the bytes written since the last OP_OUT */
	OP_BEGIN,    /* start the scenario's transaction; ev */
	OP_BODY,     /* s: a piece of the message */
	OP_BODY_END, /* ev */
	OP_TLS,      /* smtp_client_tls_started(); ev */
	OP_QUIT,     /* ev */
	OP_EOF,      /* ev */
	OP_EVENT,    /* smtp_client_event() is ev */
	OP_RCPT,     /* rcpt idx has code, status, text */
	OP_ERROR,    /* the error: code, status, text = stage, perm */
	OP_NOERROR,
	OP_TIMEOUT, /* ms */
	OP_TLS_ACTIVE,
};

struct step {
	enum op op;
	const char *s;
	enum smtp_client_event ev;
	int code;
	const char *status;
	const char *text;
	bool perm;
	size_t idx;
	uint64_t ms;
};

#define EV(e) SMTP_CLIENT_##e
#define FEED(str, e)                                                           \
	{                                                                      \
		.op = OP_FEED, .s = (str), .ev = EV(e)                         \
	}
#define OUT(str)                                                               \
	{                                                                      \
		.op = OP_OUT, .s = (str)                                       \
	}
#define BEGIN(e)                                                               \
	{                                                                      \
		.op = OP_BEGIN, .ev = EV(e)                                    \
	}
#define BODY(str)                                                              \
	{                                                                      \
		.op = OP_BODY, .s = (str)                                      \
	}
#define BODY_END(e)                                                            \
	{                                                                      \
		.op = OP_BODY_END, .ev = EV(e)                                 \
	}
#define TLS(e)                                                                 \
	{                                                                      \
		.op = OP_TLS, .ev = EV(e)                                      \
	}
#define QUIT(e)                                                                \
	{                                                                      \
		.op = OP_QUIT, .ev = EV(e)                                     \
	}
#define EOF_(e)                                                                \
	{                                                                      \
		.op = OP_EOF, .ev = EV(e)                                      \
	}
#define EVENT(e)                                                               \
	{                                                                      \
		.op = OP_EVENT, .ev = EV(e)                                    \
	}
#define RCPT(i, c, st, t)                                                      \
	{                                                                      \
		.op = OP_RCPT, .idx = (i), .code = (c), .status = (st),        \
		.text = (t)                                                    \
	}
#define ERROR(c, st, stage, p)                                                 \
	{                                                                      \
		.op = OP_ERROR, .code = (c), .status = (st), .text = (stage),  \
		.perm = (p)                                                    \
	}
#define NOERROR                                                                \
	{                                                                      \
		.op = OP_NOERROR                                               \
	}
#define TIMEOUT(n)                                                             \
	{                                                                      \
		.op = OP_TIMEOUT, .ms = (n)                                    \
	}
#define TLS_ACTIVE(b)                                                          \
	{                                                                      \
		.op = OP_TLS_ACTIVE, .perm = (b)                               \
	}
#define END                                                                    \
	{                                                                      \
		.op = OP_END                                                   \
	}

#define GREET "220 mx.example.net ESMTP ready\r\n"
#define EHLO "EHLO mail.example.org\r\n"
#define EHLO_BASIC "250 mx.example.net\r\n"
#define EHLO_PIPE                                                              \
	"250-mx.example.net Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"  \
	"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
/* Greeting and EHLO, then READY. */
#define START(ehlo_reply) FEED(GREET, WAIT), OUT(EHLO), FEED(ehlo_reply, READY)

#define MAIL_A "MAIL FROM:<a@example.org>"
#define RCPT_B "RCPT TO:<b@example.net>\r\n"
#define RCPT_C "RCPT TO:<c@example.net>\r\n"

struct txn_spec {
	const char *from;
	uint64_t size;
	bool body_8bit, smtputf8;
	const char *ret, *envid;
	size_t nrcpts;
	const char *rcpt[4];
	unsigned notify[4];
	const char *orcpt[4];
};

static const struct txn_spec txn_one = {.from = "a@example.org",
                                        .size = 123,
                                        .nrcpts = 1,
                                        .rcpt = {"b@example.net"}};
static const struct txn_spec txn_two = {
    .from = "a@example.org",
    .size = 123,
    .body_8bit = true,
    .nrcpts = 2,
    .rcpt = {"b@example.net", "c@example.net"}};
static const struct txn_spec txn_dsn = {
    .from = "a@example.org",
    .size = 123,
    .ret = "HDRS",
    .envid = "QQ314159",
    .nrcpts = 3,
    .rcpt = {"b@example.net", "c@example.net", "d@example.net"},
    .notify = {0x6, 0x1, 0xe},
    .orcpt = {"rfc822;b@example.net"}};
static const struct txn_spec txn_big = {.from = "a@example.org",
                                        .size = 5000,
                                        .nrcpts = 1,
                                        .rcpt = {"b@example.net"}};
static const struct txn_spec txn_utf8 = {.from = "a@example.org",
                                         .size = 123,
                                         .smtputf8 = true,
                                         .nrcpts = 1,
                                         .rcpt = {"b@example.net"}};
static const struct txn_spec txn_bad = {
    .from = "a@example.org",
    .nrcpts = 2,
    .rcpt = {"x@example.net>\r\nRSET", "c@example.net"}};
static const struct txn_spec txn_all_bad = {
    .from = "a@example.org", .nrcpts = 1, .rcpt = {"b@example.net\r\nDATA"}};
static const struct txn_spec txn_bad_from = {
    .from = "a@example.org>\nDATA", .nrcpts = 1, .rcpt = {"b@example.net"}};

struct scenario {
	const char *name;
	enum smtp_client_tls tls;
	bool auth, auth_without_tls, chunking;
	const struct txn_spec *txn;
	const struct step *steps;
};

static const struct scenario scenarios[] = {
    {
        .name = "ehlo_quit",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                TIMEOUT(300000),
                START(EHLO_BASIC),
                TIMEOUT(0),
                QUIT(WAIT),
                OUT("QUIT\r\n"),
                TIMEOUT(300000),
                FEED("221 2.0.0 Bye\r\n", CLOSED),
                NOERROR,
                END,
            },
    },
    {
        .name = "greeting_multiline_bare_lf",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("220-mx.example.net ESMTP\n220-no UCE\n220 ready\n", WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\n250 PIPELINING\n", READY),
                END,
            },
    },
    {
        .name = "helo_fallback_transaction",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("502 5.5.2 Error: command not recognized\r\n", WAIT),
                OUT("HELO mail.example.org\r\n"),
                FEED("250 mx.example.net\r\n", READY),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n"),
                TIMEOUT(300000),
                FEED("250 2.1.0 Ok\r\n", WAIT),
                OUT(RCPT_B),
                FEED("250 2.1.5 Ok\r\n", WAIT),
                OUT("DATA\r\n"),
                TIMEOUT(120000),
                FEED("354 go ahead\r\n", BODY),
                TIMEOUT(0),
                BODY("Subject: hi\n\nhello\n"),
                BODY_END(WAIT),
                OUT("Subject: hi\r\n\r\nhello\r\n.\r\n"),
                TIMEOUT(600000),
                FEED("250 2.0.0 Ok: queued as 4XyZ\r\n", TXN_DONE),
                EVENT(READY),
                RCPT(0, 250, "2.0.0", "2.0.0 Ok: queued as 4XyZ"),
                QUIT(WAIT),
                OUT("QUIT\r\n"),
                EOF_(CLOSED),
                NOERROR,
                END,
            },
    },
    {
        .name = "helo_rejected",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("500 what\r\n", WAIT),
                OUT("HELO mail.example.org\r\n"),
                FEED("550 5.7.1 go away\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(550, "5.7.1", "ehlo", true),
                END,
            },
    },
    {
        .name = "ehlo_4xx",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("451 4.3.2 try later\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(451, "4.3.2", "ehlo", false),
                END,
            },
    },
    {
        .name = "greeting_554",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("554 5.7.1 No SMTP service here\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(554, "5.7.1", "greeting", true),
                TIMEOUT(0),
                END,
            },
    },
    {
        .name = "greeting_421",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("421 4.7.0 Too many connections\r\n", CLOSED),
                ERROR(421, "4.7.0", "greeting", false),
                FEED("250 ignored\r\n", CLOSED),
                END,
            },
    },
    {
        .name = "greeting_450",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("450 busy\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(450, "4.0.0", "greeting", false),
                END,
            },
    },
    {
        .name = "pipelining_one_rcpt_rejected",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                     "550 5.1.1 <c@example.net>: no such user\r\n"
                     "354 End data with <CR><LF>.<CR><LF>\r\n",
                     BODY),
                BODY("hello\n"),
                BODY_END(WAIT),
                OUT("hello\r\n.\r\n"),
                FEED("250 2.0.0 Ok: queued\r\n", TXN_DONE),
                EVENT(READY),
                RCPT(0, 250, "2.0.0", "2.0.0 Ok: queued"),
                RCPT(1, 550, "5.1.1", "5.1.1 <c@example.net>: no such user"),
                END,
            },
    },
    {
        .name = "sync_two_rcpts",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250 8BITMIME\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A " BODY=8BITMIME\r\n"),
                FEED("250 Ok\r\n", WAIT),
                OUT(RCPT_B),
                FEED("550 no\r\n", WAIT),
                OUT(RCPT_C),
                FEED("251 will forward\r\n", WAIT),
                OUT("DATA\r\n"),
                FEED("354 go\r\n", BODY),
                BODY_END(WAIT),
                OUT(".\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 550, "5.0.0", "no"),
                RCPT(1, 250, "2.0.0", "Ok"),
                END,
            },
    },
    {
        .name = "all_rcpts_rejected",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 2.1.0 Ok\r\n550 5.1.1 no\r\n450 4.2.0 greylisted\r\n"
                     "554 5.5.1 Error: no valid recipients\r\n",
                     WAIT),
                OUT("RSET\r\n"),
                FEED("250 2.0.0 Ok\r\n", TXN_DONE),
                EVENT(READY),
                RCPT(0, 550, "5.1.1", "5.1.1 no"),
                RCPT(1, 450, "4.2.0", "4.2.0 greylisted"),
                END,
            },
    },
    {
        .name = "all_rcpts_rejected_data_354",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 Ok\r\n550 no\r\n550 no\r\n354 go\r\n", WAIT),
                OUT(".\r\n"),
                FEED("554 no valid recipients\r\n", WAIT),
                OUT("RSET\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 550, "5.0.0", "no"),
                RCPT(1, 550, "5.0.0", "no"),
                END,
            },
    },
    {
        .name = "mail_rejected_pipelined",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("553 5.7.1 <a@example.org>: sender rejected\r\n"
                     "503 5.5.1 Error: need MAIL command\r\n"
                     "503 5.5.1 Error: need MAIL command\r\n"
                     "503 5.5.1 Error: need RCPT command\r\n",
                     WAIT),
                OUT("RSET\r\n"),
                FEED("250 2.0.0 Ok\r\n", TXN_DONE),
                RCPT(0, 553, "5.7.1", "5.7.1 <a@example.org>: sender rejected"),
                RCPT(1, 553, "5.7.1", "5.7.1 <a@example.org>: sender rejected"),
                EVENT(READY),
                END,
            },
    },
    {
        .name = "mail_rejected_sync",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_BASIC),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n"),
                FEED("451 4.3.0 try again later\r\n", WAIT),
                OUT("RSET\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 451, "4.3.0", "4.3.0 try again later"),
                END,
            },
    },
    {
        .name = "size_too_big",
        .txn = &txn_big,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250 SIZE 1000\r\n"),
                BEGIN(TXN_DONE),
                EVENT(READY),
                RCPT(0, 552, "5.3.4",
                     "message too big for the remote server (5000 bytes, limit "
                     "1000)"),
                QUIT(WAIT),
                OUT("QUIT\r\n"),
                END,
            },
    },
    {
        .name = "size_without_limit",
        .txn = &txn_big,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250 SIZE\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=5000\r\n"),
                END,
            },
    },
    {
        .name = "smtputf8_missing",
        .txn = &txn_utf8,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(TXN_DONE),
                EVENT(READY),
                RCPT(0, 553, "5.6.7",
                     "the remote server does not support SMTPUTF8"),
                END,
            },
    },
    {
        .name = "smtputf8_offered",
        .txn = &txn_utf8,
        .steps =
            (const struct step[]){
                START(
                    "250-mx.example.net\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A " SMTPUTF8\r\n" RCPT_B "DATA\r\n"),
                END,
            },
    },
    {
        .name = "dsn_offered",
        .txn = &txn_dsn,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250-PIPELINING\r\n250 DSN\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A
                    " RET=HDRS ENVID=QQ314159\r\n"
                    "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE "
                    "ORCPT=rfc822;b@example.net\r\n"
                    "RCPT TO:<c@example.net> NOTIFY=NEVER\r\n"
                    "RCPT TO:<d@example.net> NOTIFY=SUCCESS,FAILURE,DELAY\r\n"
                    "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n",
                     BODY),
                BODY("x"),
                EOF_(TXN_DONE),
                EVENT(CLOSED),
                RCPT(0, 451, "4.4.2", "connection lost"),
                RCPT(2, 451, "4.4.2", "connection lost"),
                ERROR(0, "4.4.2", "data", false),
                OUT("x"),
                END,
            },
    },
    {
        .name = "dsn_not_offered",
        .txn = &txn_dsn,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B RCPT_C
                           "RCPT TO:<d@example.net>\r\nDATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n550 no\r\n250 Ok\r\n"
                     "554 5.7.1 not now\r\n",
                     WAIT),
                OUT("RSET\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 554, "5.7.1", "5.7.1 not now"),
                RCPT(1, 550, "5.0.0", "no"),
                RCPT(2, 554, "5.7.1", "5.7.1 not now"),
                END,
            },
    },
    {
        .name = "dot_stuffing_across_pieces",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_BASIC),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n"),
                FEED("250 Ok\r\n", WAIT),
                OUT(RCPT_B),
                FEED("250 Ok\r\n", WAIT),
                OUT("DATA\r\n"),
                FEED("354 go\r\n", BODY),
                BODY("a\n.b\r"),
                BODY("\nc"),
                BODY("\r"),
                BODY("\n..d\r\r\n.\n"),
                BODY("."),
                BODY_END(WAIT),
                OUT("a\r\n..b\r\nc\r\n...d\r\n\r\n..\r\n..\r\n.\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                END,
            },
    },
    {
        .name = "smuggling_defused",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY("x\n.\nMAIL FROM:<evil>\r\n"),
                BODY("y\r.\r"),
                BODY("\r\n.\r\n"),
                BODY_END(WAIT),
                OUT("x\r\n..\r\nMAIL "
                    "FROM:<evil>\r\ny\r\n..\r\n\r\n..\r\n.\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                END,
            },
    },
    {
        .name = "body_without_final_line_end",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY("abc\r"),
                BODY_END(WAIT),
                OUT("abc\r\n.\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY("abc"),
                BODY_END(WAIT),
                OUT("abc\r\n.\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY_END(WAIT),
                OUT(".\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                END,
            },
    },
    {
        .name = "bdat",
        .txn = &txn_one,
        .chunking = true,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
                      "250 8BITMIME\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n" RCPT_B),
                FEED("250 Ok\r\n250 Ok\r\n", BODY),
                TIMEOUT(0),
                BODY("hello\n.wor"),
                BODY("ld"),
                BODY_END(WAIT),
                OUT("BDAT 15 LAST\r\nhello\r\n.world\r\n"),
                TIMEOUT(600000),
                FEED("250 2.0.0 Ok: 15 bytes queued\r\n", TXN_DONE),
                RCPT(0, 250, "2.0.0", "2.0.0 Ok: 15 bytes queued"),
                EVENT(READY),
                END,
            },
    },
    {
        .name = "bdat_rejected",
        .txn = &txn_one,
        .chunking = true,
        .steps =
            (const struct step[]){
                START(
                    "250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n" RCPT_B),
                FEED("250 Ok\r\n250 Ok\r\n", BODY),
                BODY_END(WAIT),
                OUT("BDAT 0 LAST\r\n"),
                FEED("554 5.7.1 spam\r\n", WAIT),
                OUT("RSET\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 554, "5.7.1", "5.7.1 spam"),
                END,
            },
    },
    {
        .name = "chunking_without_pipelining",
        .txn = &txn_one,
        .chunking = true,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250 CHUNKING\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n"),
                FEED("250 Ok\r\n", WAIT),
                OUT(RCPT_B),
                FEED("250 Ok\r\n", WAIT),
                OUT("DATA\r\n"),
                END,
            },
    },
    {
        .name = "chunking_not_wanted",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(
                    "250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n" RCPT_B "DATA\r\n"),
                END,
            },
    },
    {
        .name = "final_4xx",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY("hi\r\n"),
                BODY_END(WAIT),
                OUT("hi\r\n.\r\n"),
                FEED("451 4.3.0 Error: queue file write error\r\n", TXN_DONE),
                EVENT(READY),
                RCPT(0, 451, "4.3.0", "4.3.0 Error: queue file write error"),
                RCPT(1, 451, "4.3.0", "4.3.0 Error: queue file write error"),
                END,
            },
    },
    {
        .name = "final_5xx_multiline",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY_END(WAIT),
                OUT(".\r\n"),
                FEED("554-5.7.1 Message\trejected\r\n554 5.7.1 as spam\r\n",
                     TXN_DONE),
                RCPT(0, 554, "5.7.1", "5.7.1 Message?rejected 5.7.1 as spam"),
                RCPT(1, 554, "5.7.1", "5.7.1 Message?rejected 5.7.1 as spam"),
                END,
            },
    },
    {
        .name = "status_class_mismatch",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n550 4.1.1 odd\r\n503 no\r\n", WAIT),
                OUT("RSET\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 550, "5.0.0", "4.1.1 odd"),
                END,
            },
    },
    {
        .name = "connection_reuse",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY("one\n"),
                BODY_END(WAIT),
                OUT("one\r\n.\r\n"),
                FEED("250 2.0.0 first\r\n", TXN_DONE),
                RCPT(0, 250, "2.0.0", "2.0.0 first"),
                EVENT(READY),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY("two\n"),
                BODY_END(WAIT),
                OUT("two\r\n.\r\n"),
                FEED("250 2.0.0 second\r\n", TXN_DONE),
                RCPT(0, 250, "2.0.0", "2.0.0 second"),
                QUIT(WAIT),
                OUT("QUIT\r\n"),
                FEED("221 Bye\r\n", CLOSED),
                NOERROR,
                END,
            },
    },
    {
        .name = "421_mid_transaction",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 2.1.0 Ok\r\n421 4.3.2 Service shutting down\r\n",
                     TXN_DONE),
                EVENT(CLOSED),
                RCPT(0, 421, "4.3.2", "4.3.2 Service shutting down"),
                RCPT(1, 421, "4.3.2", "4.3.2 Service shutting down"),
                ERROR(421, "4.3.2", "rcpt", false),
                FEED("250 Ok\r\n", CLOSED),
                EOF_(CLOSED),
                END,
            },
    },
    {
        .name = "421_after_body",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n550 5.1.1 no\r\n354 go\r\n", BODY),
                BODY_END(WAIT),
                OUT(".\r\n"),
                FEED("421 4.4.2 timeout\r\n", TXN_DONE),
                EVENT(CLOSED),
                RCPT(0, 421, "4.4.2", "4.4.2 timeout"),
                RCPT(1, 550, "5.1.1", "5.1.1 no"),
                ERROR(421, "4.4.2", "eod", false),
                END,
            },
    },
    {
        .name = "eof_mid_transaction",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY_END(WAIT),
                OUT(".\r\n"),
                EOF_(TXN_DONE),
                EVENT(CLOSED),
                RCPT(0, 451, "4.4.2", "connection lost"),
                ERROR(0, "4.4.2", "eod", false),
                TIMEOUT(0),
                END,
            },
    },
    {
        .name = "unsolicited_during_data",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                FEED("550 oops\r\n", TXN_DONE),
                EVENT(CLOSED),
                RCPT(0, 451, "4.5.0", "unexpected data from the server"),
                ERROR(0, "4.5.0", "data", false),
                BODY("ignored"),
                BODY_END(CLOSED),
                END,
            },
    },
    {
        .name = "data_250_is_no_success",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123\r\n" RCPT_B "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n250 Ok\r\n", TXN_DONE),
                RCPT(0, 451, "4.5.0", "unexpected reply to DATA"),
                ERROR(0, "4.5.0", "data", false),
                END,
            },
    },
    {
        .name = "unsolicited_when_ready",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_BASIC),
                FEED("250 surprise\r\n", CLOSED),
                ERROR(0, "4.5.0", "idle", false),
                END,
            },
    },
    {
        .name = "reply_without_code",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("hello there\r\n", CLOSED),
                ERROR(0, "4.5.0", "greeting", false),
                END,
            },
    },
    {
        .name = "reply_bad_separator",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("220_mx.example.net\r\n", CLOSED),
                ERROR(0, "4.5.0", "greeting", false),
                END,
            },
    },
    {
        .name = "reply_code_1xx",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED("120 wait\r\n", CLOSED),
                ERROR(0, "4.5.0", "greeting", false),
                END,
            },
    },
    {
        .name = "reply_mixed_codes",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n251 PIPELINING\r\n", CLOSED),
                ERROR(0, "4.5.0", "ehlo", false),
                END,
            },
    },
    {
        .name = "invalid_rcpt_address_not_sent",
        .txn = &txn_bad,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=0\r\n" RCPT_C "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", BODY),
                BODY_END(WAIT),
                OUT(".\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 501, "5.1.3", "invalid recipient address"),
                RCPT(1, 250, "2.0.0", "Ok"),
                END,
            },
    },
    {
        .name = "invalid_sender_not_sent",
        .txn = &txn_bad_from,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(TXN_DONE),
                RCPT(0, 501, "5.5.4", "invalid sender or envelope parameters"),
                END,
            },
    },
    {
        .name = "starttls_opportunistic",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250-STARTTLS\r\n250 PIPELINING\r\n",
                     WAIT),
                OUT("STARTTLS\r\n"),
                FEED("220 2.0.0 Ready to start TLS\r\n", STARTTLS),
                TIMEOUT(0),
                TLS_ACTIVE(false),
                TLS(WAIT),
                TLS_ACTIVE(true),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 PIPELINING\r\n", READY),
                END,
            },
    },
    {
        .name = "starttls_injection_dropped",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 STARTTLS\r\n", WAIT),
                OUT("STARTTLS\r\n"),
                FEED("220 2.0.0 Ready to start TLS\r\n250-evil\r\n250 AUTH "
                     "PLAIN\r\n",
                     STARTTLS),
                FEED("250 more plaintext\r\n", STARTTLS),
                TLS(WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 PIPELINING\r\n", READY),
                NOERROR,
                END,
            },
    },
    {
        .name = "starttls_opportunistic_refused",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 STARTTLS\r\n", WAIT),
                OUT("STARTTLS\r\n"),
                FEED("454 4.7.0 TLS not available\r\n", READY),
                TLS_ACTIVE(false),
                END,
            },
    },
    {
        .name = "starttls_opportunistic_not_offered",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                TLS_ACTIVE(false),
                END,
            },
    },
    {
        .name = "starttls_required_not_offered",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED(EHLO_PIPE, CLOSED),
                OUT("QUIT\r\n"),
                ERROR(0, "4.7.4", "starttls", false),
                END,
            },
    },
    {
        .name = "starttls_required_refused",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 STARTTLS\r\n", WAIT),
                OUT("STARTTLS\r\n"),
                FEED("454 4.7.0 TLS not available due to local problem\r\n",
                     CLOSED),
                OUT("QUIT\r\n"),
                ERROR(454, "4.7.0", "starttls", false),
                END,
            },
    },
    {
        .name = "starttls_required_after_helo",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("502 no\r\n", WAIT),
                OUT("HELO mail.example.org\r\n"),
                FEED("250 mx\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(0, "4.7.4", "starttls", false),
                END,
            },
    },
    {
        .name = "implicit_tls",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                TLS_ACTIVE(true),
                START("250-mx.example.net\r\n250 STARTTLS\r\n"),
                END,
            },
    },
    {
        .name = "tls_none",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START("250-mx.example.net\r\n250 STARTTLS\r\n"),
                TLS_ACTIVE(false),
                END,
            },
    },
    {
        .name = "auth_plain",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH LOGIN PLAIN\r\n", WAIT),
                OUT("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"),
                TIMEOUT(300000),
                FEED("235 2.7.0 Authentication successful\r\n", READY),
                END,
            },
    },
    {
        .name = "auth_login",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH=LOGIN\r\n", WAIT),
                OUT("AUTH LOGIN\r\n"),
                FEED("334 VXNlcm5hbWU6\r\n", WAIT),
                OUT("dXNlcg==\r\n"),
                FEED("334 UGFzc3dvcmQ6\r\n", WAIT),
                OUT("c2VjcmV0\r\n"),
                FEED("235 2.7.0 ok\r\n", READY),
                END,
            },
    },
    {
        .name = "auth_refused",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH PLAIN\r\n", WAIT),
                OUT("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"),
                FEED("535 5.7.8 Error: authentication failed\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(535, "5.7.8", "auth", false),
                END,
            },
    },
    {
        .name = "auth_login_refused_user",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH LOGIN\r\n", WAIT),
                OUT("AUTH LOGIN\r\n"),
                FEED("504 5.5.4 no\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(504, "5.5.4", "auth", false),
                END,
            },
    },
    {
        .name = "auth_without_tls_refused",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH PLAIN LOGIN\r\n", CLOSED),
                OUT("QUIT\r\n"),
                ERROR(0, "4.7.0", "auth", false),
                END,
            },
    },
    {
        .name = "auth_without_tls_allowed",
        .auth = true,
        .auth_without_tls = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH PLAIN LOGIN\r\n", WAIT),
                OUT("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"),
                FEED("235 ok\r\n", READY),
                END,
            },
    },
    {
        .name = "auth_not_offered",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n",
                     CLOSED),
                OUT("QUIT\r\n"),
                ERROR(0, "4.7.0", "auth", false),
                END,
            },
    },
    {
        .name = "starttls_then_auth",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .auth = true,
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                FEED(GREET, WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 STARTTLS\r\n", WAIT),
                OUT("STARTTLS\r\n"),
                FEED("220 go\r\n", STARTTLS),
                TLS(WAIT),
                OUT(EHLO),
                FEED("250-mx.example.net\r\n250 AUTH PLAIN\r\n", WAIT),
                OUT("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"),
                FEED("235 ok\r\n", READY),
                END,
            },
    },
    {
        .name = "quit_eof",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_BASIC),
                QUIT(WAIT),
                OUT("QUIT\r\n"),
                EOF_(CLOSED),
                NOERROR,
                END,
            },
    },
    {
        .name = "quit_bad_reply",
        .txn = &txn_one,
        .steps =
            (const struct step[]){
                START(EHLO_BASIC),
                QUIT(WAIT),
                OUT("QUIT\r\n"),
                FEED("bye\r\n", CLOSED),
                NOERROR,
                END,
            },
    },
    {
        .name = "no_valid_rcpt_nothing_sent",
        .txn = &txn_all_bad,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(TXN_DONE),
                EVENT(READY),
                RCPT(0, 501, "5.1.3", "invalid recipient address"),
                END,
            },
    },
    {
        .name = "rcpt_intermediate_reply",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_PIPE),
                BEGIN(WAIT),
                OUT(MAIL_A " SIZE=123 BODY=8BITMIME\r\n" RCPT_B RCPT_C
                           "DATA\r\n"),
                FEED("250 Ok\r\n250 Ok\r\n354 go\r\n", TXN_DONE),
                EVENT(CLOSED),
                RCPT(0, 451, "4.5.0",
                     "unexpected intermediate reply from the server"),
                RCPT(1, 451, "4.5.0",
                     "unexpected intermediate reply from the server"),
                ERROR(0, "4.5.0", "rcpt", false),
                END,
            },
    },
    {
        .name = "sync_all_rcpts_rejected",
        .txn = &txn_two,
        .steps =
            (const struct step[]){
                START(EHLO_BASIC),
                BEGIN(WAIT),
                OUT(MAIL_A "\r\n"),
                FEED("250 Ok\r\n", WAIT),
                OUT(RCPT_B),
                FEED("550 no\r\n", WAIT),
                OUT(RCPT_C),
                FEED("450 later\r\n", WAIT),
                OUT("RSET\r\n"),
                FEED("250 Ok\r\n", TXN_DONE),
                RCPT(0, 550, "5.0.0", "no"),
                RCPT(1, 450, "4.0.0", "later"),
                END,
            },
    },
};

#define NSCENARIOS (sizeof(scenarios) / sizeof(*scenarios))

/* ---- the runner ---- */

struct run {
	const struct scenario *sc;
	bool trickle;
	char name[96];
};

static enum smtp_client_event
feed(struct smtp_client *c, const char *s, size_t len, bool trickle)
{
	enum smtp_client_event ev;
	bool done = false;

	if (!trickle)
		return smtp_client_input(c, (const uint8_t *)s, len);
	ev = smtp_client_event(c);
	for (size_t i = 0; i < len; i++) {
		ev = smtp_client_input(c, (const uint8_t *)s + i, 1);
		done |= ev == SMTP_CLIENT_TXN_DONE;
	}
	return done ? SMTP_CLIENT_TXN_DONE : ev;
}

/* The output so far (NUL-terminated copy), consumed. */
static char *
take_output(struct smtp_client *c)
{
	size_t len;
	const uint8_t *p = smtp_client_output(c, &len);
	char *s = xmalloc(len + 1);

	if (len > 0)
		memcpy(s, p, len);
	s[len] = '\0';
	smtp_client_output_consume(c, len);
	return s;
}

static void
assert_output(struct smtp_client *c, const char *expect)
{
	char *s = take_output(c);

	assert_string_equal(s, expect);
	free(s);
}

static void
txn_build(const struct txn_spec *sp, struct smtp_client_txn *t,
          struct smtp_client_rcpt *r)
{
	memset(t, 0, sizeof(*t));
	t->mail_from = sp->from;
	t->size = sp->size;
	t->body_8bit = sp->body_8bit;
	t->smtputf8 = sp->smtputf8;
	t->ret = sp->ret;
	t->envid = sp->envid;
	t->rcpts = r;
	t->nrcpts = sp->nrcpts;
	for (size_t i = 0; i < sp->nrcpts; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].address = sp->rcpt[i];
		r[i].notify = sp->notify[i];
		r[i].orcpt = sp->orcpt[i];
	}
}

static void
run_step(struct smtp_client *c, struct smtp_client_txn *t,
         const struct step *st, bool trickle)
{
	const struct smtp_client_error *e;
	const struct smtp_client_rcpt *r;

	switch (st->op) {
	case OP_FEED:
		assert_int_equal(feed(c, st->s, strlen(st->s), trickle),
		                 st->ev);
		break;
	case OP_OUT:
		assert_output(c, st->s);
		break;
	case OP_BEGIN:
		smtp_client_txn_clear(t);
		assert_int_equal(smtp_client_begin(c, t), st->ev);
		break;
	case OP_BODY:
		smtp_client_body(c, (const uint8_t *)st->s, strlen(st->s));
		break;
	case OP_BODY_END:
		assert_int_equal(smtp_client_body_end(c), st->ev);
		break;
	case OP_TLS:
		assert_int_equal(smtp_client_tls_started(c), st->ev);
		break;
	case OP_QUIT:
		assert_int_equal(smtp_client_quit(c), st->ev);
		break;
	case OP_EOF:
		assert_int_equal(smtp_client_eof(c), st->ev);
		break;
	case OP_EVENT:
		assert_int_equal(smtp_client_event(c), st->ev);
		break;
	case OP_RCPT:
		assert_true(st->idx < t->nrcpts);
		r = &t->rcpts[st->idx];
		assert_int_equal(r->code, st->code);
		assert_string_equal(r->status, st->status);
		assert_non_null(r->reply);
		assert_string_equal(r->reply, st->text);
		break;
	case OP_ERROR:
		e = smtp_client_error(c);
		assert_non_null(e);
		assert_int_equal(e->code, st->code);
		assert_string_equal(e->status, st->status);
		assert_string_equal(e->stage, st->text);
		assert_int_equal(e->permanent, st->perm);
		assert_true(e->text[0] != '\0');
		break;
	case OP_NOERROR:
		assert_null(smtp_client_error(c));
		break;
	case OP_TIMEOUT:
		assert_int_equal(smtp_client_timeout_ms(c), st->ms);
		break;
	case OP_TLS_ACTIVE:
		assert_int_equal(smtp_client_tls_active(c), st->perm);
		break;
	case OP_END:
		break;
	}
}

static void
test_scenario(void **state)
{
	const struct run *run = *state;
	const struct scenario *sc = run->sc;
	struct smtp_client_options o = {
	    .helo_name = "mail.example.org",
	    .tls = sc->tls,
	    .auth_user = sc->auth ? "user" : NULL,
	    .auth_password = sc->auth ? "secret" : NULL,
	    .auth_without_tls = sc->auth_without_tls,
	    .use_chunking = sc->chunking,
	    .log_id = "test",
	};
	struct smtp_client_rcpt rcpts[4];
	struct smtp_client_txn t;
	struct smtp_client *c = smtp_client_new(&o);

	txn_build(sc->txn, &t, rcpts);
	for (const struct step *st = sc->steps; st->op != OP_END; st++)
		run_step(c, &t, st, run->trickle);
	assert_output(c, ""); /* every byte written was checked */
	smtp_client_txn_clear(&t);
	smtp_client_free(&c);
	assert_null(c);
}

/* ---- tests with generated input ---- */

static struct smtp_client *
session(const struct smtp_client_options *o, const char *ehlo_reply)
{
	struct smtp_client *c = smtp_client_new(o);

	assert_int_equal(feed(c, GREET, strlen(GREET), false), EV(WAIT));
	assert_output(c, EHLO);
	assert_int_equal(feed(c, ehlo_reply, strlen(ehlo_reply), false),
	                 EV(READY));
	return c;
}

static void
test_ehlo_extensions(void **state)
{
	struct smtp_client_options o = {.helo_name = "mail.example.org"};
	struct smtp_client *c;
	const struct smtp_client_ext *x;

	(void)state;
	c = session(&o, "250-mx.example.net greets you\r\n"
	                "250-pipelining\r\n250-Size 35882577\r\n"
	                "250-8bitmime\r\n250-SMTPUTF8\r\n250-dsn\r\n"
	                "250-CHUNKING\r\n250-STARTTLS\r\n"
	                "250-ENHANCEDSTATUSCODES\r\n250-AUTH=PLAIN\r\n"
	                "250-AUTH GSSAPI login\r\n250-VRFY\r\n"
	                "250 SIZEX 12\r\n");
	x = smtp_client_ext(c);
	assert_true(x->esmtp);
	assert_true(x->pipelining && x->eightbitmime && x->smtputf8);
	assert_true(x->dsn && x->chunking && x->starttls);
	assert_true(x->enhancedstatuscodes);
	assert_true(x->auth_plain && x->auth_login);
	assert_int_equal(x->size_max, 35882577);
	smtp_client_free(&c);

	/* The greeting line names the host: not a keyword. */
	c = session(&o,
	            "250-PIPELINING\r\n250 SIZE 99999999999999999999999\r\n");
	x = smtp_client_ext(c);
	assert_false(x->pipelining);
	assert_int_equal(x->size_max, 0);
	smtp_client_free(&c);

	c = session(&o, "250 mx.example.net\r\n");
	x = smtp_client_ext(c);
	assert_true(x->esmtp);
	assert_false(x->pipelining || x->auth_plain || x->starttls);
	smtp_client_free(&c);
}

static void
check_long_reply(const char *reply, size_t len, bool ok)
{
	struct smtp_client_options o = {.helo_name = "mail.example.org"};

	for (int trickle = 0; trickle < 2; trickle++) {
		struct smtp_client *c = smtp_client_new(&o);
		const struct smtp_client_error *e;

		assert_int_equal(feed(c, reply, len, trickle),
		                 ok ? EV(WAIT) : EV(CLOSED));
		assert_output(c, ok ? EHLO : "");
		e = smtp_client_error(c);
		if (ok) {
			assert_null(e);
		} else {
			assert_non_null(e);
			assert_int_equal(e->code, 0);
			assert_false(e->permanent);
			assert_string_equal(e->stage, "greeting");
		}
		smtp_client_free(&c);
	}
}

static void
test_line_limit(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	/* Exactly SMTP_CLIENT_LINE_MAX bytes before the CRLF: fine. */
	buf_append_str(&b, "220 ");
	for (size_t i = 4; i < SMTP_CLIENT_LINE_MAX; i++)
		buf_append_byte(&b, 'x');
	buf_append_str(&b, "\r\n");
	check_long_reply((const char *)b.data, b.len, true);
	/* One more: the session ends, with or without a line end. */
	b.len -= 2;
	buf_append_str(&b, "x\r\n");
	check_long_reply((const char *)b.data, b.len, false);
	check_long_reply((const char *)b.data, b.len - 2, false);
	/* A bare LF ends a line too. */
	b.len -= 3;
	buf_append_str(&b, "\n");
	check_long_reply((const char *)b.data, b.len, true);
	buf_free(&b);
}

static void
test_reply_lines_limit(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	for (size_t i = 1; i < SMTP_CLIENT_REPLY_LINES_MAX; i++)
		buf_append_str(&b, "220-hello\r\n");
	buf_append_str(&b, "220 last\r\n");
	check_long_reply((const char *)b.data, b.len, true);
	buf_reset(&b);
	for (size_t i = 0; i < SMTP_CLIENT_REPLY_LINES_MAX; i++)
		buf_append_str(&b, "220-hello\r\n");
	buf_append_str(&b, "220 last\r\n");
	check_long_reply((const char *)b.data, b.len, false);
	buf_free(&b);
}

static void
test_reply_text_bounded(void **state)
{
	struct smtp_client_options o = {.helo_name = "mail.example.org"};
	struct smtp_client *c = smtp_client_new(&o);
	const struct smtp_client_error *e;
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	for (int i = 0; i < 10; i++) {
		buf_append_str(&b, "554-");
		for (int j = 0; j < 1000; j++)
			buf_append_byte(&b, (uint8_t)('a' + j % 26));
		buf_append_str(&b, "\r\n");
	}
	buf_append_str(&b, "554 \x1b[31mend\r\n");
	assert_int_equal(feed(c, (const char *)b.data, b.len, false),
	                 EV(CLOSED));
	e = smtp_client_error(c);
	assert_non_null(e);
	assert_int_equal(e->code, 554);
	assert_true(e->permanent);
	assert_int_equal(strlen(e->text), SMTP_CLIENT_REPLY_TEXT_MAX - 1);
	assert_memory_equal(e->text, "abcdefghij", 10);
	assert_output(c, "QUIT\r\n");
	smtp_client_free(&c);
	buf_free(&b);

	c = smtp_client_new(&o);
	feed(c, "554-a\x01z\r\n554 \x7f\r\n", 16, false);
	assert_string_equal(smtp_client_error(c)->text, "a?z ?");
	smtp_client_free(&c);
}

/* Reach BODY with one recipient; ehlo_reply decides DATA or BDAT. */
static struct smtp_client *
to_body(const char *ehlo_reply, bool chunking, struct smtp_client_txn *t,
        struct smtp_client_rcpt *r)
{
	struct smtp_client_options o = {.helo_name = "mail.example.org",
	                                .use_chunking = chunking};
	struct smtp_client *c = session(&o, ehlo_reply);

	txn_build(&txn_one, t, r);
	assert_int_equal(smtp_client_begin(c, t), EV(WAIT));
	free(take_output(c));
	assert_int_equal(feed(c, "250 Ok\r\n250 Ok\r\n354 go\r\n",
	                      chunking ? 16 : 24, false),
	                 EV(BODY));
	return c;
}

/* Reference: the body as one piece, CRLF line ends, dots stuffed. */
static void
reference_body(const uint8_t *p, size_t len, struct buf *out)
{
	bool bol = true;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r' || p[i] == '\n') {
			if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
				i++;
			buf_append_str(out, "\r\n");
			bol = true;
			continue;
		}
		if (bol && p[i] == '.')
			buf_append_byte(out, '.');
		buf_append_byte(out, p[i]);
		bol = false;
	}
	if (!bol)
		buf_append_str(out, "\r\n");
	buf_append_str(out, ".\r\n");
}

static void
test_body_random_pieces(void **state)
{
	static const char alphabet[] = "a.\r\n";
	uint32_t seed = 12345;
	uint8_t body[64];

	(void)state;
	for (int round = 0; round < 2000; round++) {
		struct smtp_client_rcpt r[1];
		struct smtp_client_txn t;
		struct smtp_client *c = to_body(EHLO_PIPE, false, &t, r);
		size_t len, off = 0, olen;
		const uint8_t *o;
		struct buf want;

		seed = seed * 1103515245 + 12345;
		len = (seed >> 16) % sizeof(body);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			body[i] = (uint8_t)alphabet[(seed >> 16) % 4];
		}
		while (off < len) {
			size_t n;

			seed = seed * 1103515245 + 12345;
			n = 1 + (seed >> 16) % 5;
			if (n > len - off)
				n = len - off;
			smtp_client_body(c, body + off, n);
			off += n;
		}
		assert_int_equal(smtp_client_body_end(c), EV(WAIT));
		o = smtp_client_output(c, &olen);
		buf_init(&want, 0);
		reference_body(body, len, &want);
		assert_int_equal(olen, want.len);
		assert_memory_equal(o, want.data, olen);
		/* No bare CR or LF; the only "CRLF.CRLF" is the end. */
		for (size_t i = 0; i < olen; i++) {
			if (o[i] == '\r')
				assert_true(i + 1 < olen && o[i + 1] == '\n');
			if (o[i] == '\n')
				assert_true(i > 0 && o[i - 1] == '\r');
			if (i + 5 <= olen && memcmp(o + i, "\r\n.\r\n", 5) == 0)
				assert_int_equal(i + 5, olen);
		}
		buf_free(&want);
		smtp_client_free(&c);
		smtp_client_txn_clear(&t);
	}
}

#define EHLO_CHUNKING "250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n"

static void
test_bdat_chunks(void **state)
{
	struct smtp_client_rcpt r[1];
	struct smtp_client_txn t;
	struct smtp_client *c = to_body(EHLO_CHUNKING, true, &t, r);
	uint8_t piece[1000];
	size_t len;
	const uint8_t *o;
	char *s;

	(void)state;
	memset(piece, 'x', sizeof(piece));
	piece[sizeof(piece) - 1] = '\n';
	for (int i = 0; i < 70; i++)
		smtp_client_body(c, piece, sizeof(piece));
	/* 70 lines of 999 x and CRLF: 70070 bytes, one full chunk out. */
	o = smtp_client_output(c, &len);
	assert_int_equal(len, strlen("BDAT 65536\r\n") + 65536);
	assert_memory_equal(o, "BDAT 65536\r\n", 12);
	assert_memory_equal(o + 12 + 998, "x\r\nx", 4);
	smtp_client_output_consume(c, len);
	assert_int_equal(smtp_client_timeout_ms(c), 600000);
	assert_int_equal(feed(c, "250 2.0.0 65536 bytes\r\n", 23, false),
	                 EV(BODY));
	assert_int_equal(smtp_client_timeout_ms(c), 0);
	assert_int_equal(smtp_client_body_end(c), EV(WAIT));
	s = take_output(c);
	assert_int_equal(strlen(s), strlen("BDAT 4534 LAST\r\n") + 4534);
	assert_memory_equal(s, "BDAT 4534 LAST\r\n", 16);
	assert_string_equal(s + strlen(s) - 4, "xx\r\n");
	free(s);
	assert_int_equal(feed(c, "250 2.0.0 Ok\r\n", 14, false), EV(TXN_DONE));
	assert_int_equal(r[0].code, 250);
	assert_int_equal(smtp_client_event(c), EV(READY));
	smtp_client_txn_clear(&t);
	smtp_client_free(&c);
}

static void
test_bdat_chunk_rejected(void **state)
{
	struct smtp_client_rcpt r[1];
	struct smtp_client_txn t;
	struct smtp_client *c = to_body(EHLO_CHUNKING, true, &t, r);
	uint8_t big[65536];
	size_t len;

	(void)state;
	memset(big, 'y', sizeof(big));
	smtp_client_body(c, big, sizeof(big));
	smtp_client_body(c, big, sizeof(big));
	smtp_client_output(c, &len);
	assert_int_equal(len, 2 * (12 + 65536));
	smtp_client_output_consume(c, len);
	assert_int_equal(feed(c, "552 5.3.4 message too big\r\n", 27, false),
	                 EV(BODY));
	/* No more chunks after a failure (RFC 3030), not even the LAST. */
	smtp_client_body(c, big, sizeof(big));
	assert_int_equal(smtp_client_body_end(c), EV(WAIT));
	assert_output(c, "");
	assert_int_equal(feed(c, "250 2.0.0 Ok\r\n", 14, false), EV(WAIT));
	assert_output(c, "RSET\r\n");
	assert_int_equal(feed(c, "250 2.0.0 Ok\r\n", 14, false), EV(TXN_DONE));
	assert_int_equal(r[0].code, 552);
	assert_string_equal(r[0].status, "5.3.4");
	assert_string_equal(r[0].reply, "5.3.4 message too big");
	smtp_client_txn_clear(&t);
	smtp_client_free(&c);

	/* Every chunk answered before the end: RSET at once. */
	c = to_body(EHLO_CHUNKING, true, &t, r);
	smtp_client_body(c, big, sizeof(big));
	free(take_output(c));
	assert_int_equal(feed(c, "452 4.3.1 full\r\n", 16, false), EV(BODY));
	assert_int_equal(smtp_client_body_end(c), EV(WAIT));
	assert_output(c, "RSET\r\n");
	assert_int_equal(feed(c, "250 2.0.0 Ok\r\n", 14, false), EV(TXN_DONE));
	assert_int_equal(r[0].code, 452);
	smtp_client_txn_clear(&t);
	smtp_client_free(&c);
}

static void
test_txn_clear(void **state)
{
	struct smtp_client_rcpt r[2] = {{.address = "a"}, {.address = "b"}};
	struct smtp_client_txn t = {.rcpts = r, .nrcpts = 2};
	struct smtp_client *c = NULL;

	(void)state;
	r[0].code = 250;
	r[0].reply = xstrdup("ok");
	smtp_client_txn_clear(&t);
	assert_null(r[0].reply);
	assert_int_equal(r[0].code, 0);
	smtp_client_free(&c); /* NULL is fine */
}

int
main(void)
{
	static struct run runs[2 * NSCENARIOS];
	const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_ehlo_extensions),
	    cmocka_unit_test(test_line_limit),
	    cmocka_unit_test(test_reply_lines_limit),
	    cmocka_unit_test(test_reply_text_bounded),
	    cmocka_unit_test(test_body_random_pieces),
	    cmocka_unit_test(test_bdat_chunks),
	    cmocka_unit_test(test_bdat_chunk_rejected),
	    cmocka_unit_test(test_txn_clear),
	};
	size_t nfixed = sizeof(fixed) / sizeof(*fixed);
	struct CMUnitTest *tests =
	    xcalloc(2 * NSCENARIOS + nfixed, sizeof(*tests));
	int rc;

	for (size_t i = 0; i < 2 * NSCENARIOS; i++) {
		struct run *run = &runs[i];

		run->sc = &scenarios[i / 2];
		run->trickle = i % 2 == 1;
		snprintf(run->name, sizeof(run->name), "%s%s", run->sc->name,
		         run->trickle ? " (trickle)" : "");
		tests[i].name = run->name;
		tests[i].test_func = test_scenario;
		tests[i].initial_state = run;
	}
	memcpy(tests + 2 * NSCENARIOS, fixed, sizeof(fixed));
	rc = _cmocka_run_group_tests("smtp_client", tests,
	                             2 * NSCENARIOS + nfixed, NULL, NULL);
	free(tests);
	return rc;
}
