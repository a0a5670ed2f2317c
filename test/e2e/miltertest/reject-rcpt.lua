-- A refusal at RCPT: an outside client may not relay; the refusal concerns that recipient
-- only, and the message still goes to the local recipient.
dofile(lib)

local conn = open()
outside_client(conn, "mail.outside.test", "203.0.113.9")
step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL")
expect(conn, { SMFIR_CONTINUE }, "MAIL")
step(mt.rcptto(conn, "<victim@elsewhere.test>"), "RCPT to a foreign domain")
expect(conn, { SMFIR_REPLYCODE }, "RCPT to a foreign domain is refused with a reply code")
step(mt.rcptto(conn, "<a%b@example.test>"), "RCPT with a routing local part")
expect(conn, { SMFIR_REPLYCODE }, "RCPT a%b@example.test is refused")
step(mt.rcptto(conn, "<bob@example.test>"), "RCPT to the local domain")
expect(conn, { SMFIR_CONTINUE }, "RCPT to example.test is accepted in the same transaction")
content(conn, "relay attempt", "hello\r\n")
expect(conn, { SMFIR_CONTINUE, SMFIR_ACCEPT }, "the message itself is accepted")
ok(mt.eom_check(conn, MT_HDRADD, "X-Relayguard"), "and traced")
mt.disconnect(conn)

-- An internal client may relay anywhere.
conn = open()
outside_client(conn, "client.internal.test", "10.1.2.3")
step(mt.mailfrom(conn, "<alice@example.test>"), "MAIL from an internal client")
expect(conn, { SMFIR_CONTINUE }, "MAIL from an internal client")
step(mt.rcptto(conn, "<victim@elsewhere.test>"), "RCPT to a foreign domain from 10.1.2.3")
expect(conn, { SMFIR_CONTINUE }, "an internal client may relay")
mt.disconnect(conn)

done("reject-rcpt")
