-- Macros: relayguard reads the client's authentication ({auth_authen}), the gateway name (j)
-- and the queue id (i) from the macros the MTA sends, at the stage they belong to.
dofile(lib)

local conn = open()
outside_client(conn, "mail.outside.test", "203.0.113.9")

-- No {auth_authen}: an outside client may not relay.
step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL without authentication")
expect(conn, { SMFIR_CONTINUE }, "MAIL without authentication")
step(mt.rcptto(conn, "<someone@elsewhere.test>"), "RCPT to a foreign domain")
expect(conn, { SMFIR_REPLYCODE, SMFIR_REJECT }, "RCPT to a foreign domain without authentication")
step(mt.abort(conn), "abort the transaction")

-- The same client, authenticated ({auth_authen} at MAIL): it is internal and may relay.
mt.macro(conn, SMFIC_MAIL, "{auth_type}", "PLAIN", "{auth_authen}", "alice")
step(mt.mailfrom(conn, "<alice@example.test>"), "MAIL as alice")
expect(conn, { SMFIR_CONTINUE }, "MAIL with {auth_authen}=alice")
mt.macro(conn, SMFIC_RCPT, "i", "5B6C7D8E9F")
step(mt.rcptto(conn, "<someone@elsewhere.test>"), "RCPT to a foreign domain as alice")
expect(conn, { SMFIR_CONTINUE }, "RCPT to a foreign domain with {auth_authen}")
content(conn, "macros", "from alice\r\n")
expect(conn, { SMFIR_CONTINUE, SMFIR_ACCEPT }, "end of message")
local value = mt.getheader(conn, "X-Relayguard", 0) or ""
ok(string.find(value, "direction=outbound", 1, true) ~= nil, "an authenticated client sends outbound mail: " .. value)
ok(string.find(value, "queue-id=5B6C7D8E9F", 1, true) ~= nil, "queue id from macro i")
ok(string.find(value, "host=mx.miltertest.test", 1, true) ~= nil, "host from macro j")
mt.disconnect(conn)

-- A connection that never sent j: the header still comes, without a host.
conn = open()
step(mt.conninfo(conn, "mail.outside.test", "203.0.113.9"), "connect info without macros")
expect(conn, { SMFIR_CONTINUE }, "connect without macros")
step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL")
expect(conn, { SMFIR_CONTINUE }, "MAIL")
step(mt.rcptto(conn, "<bob@example.test>"), "RCPT")
expect(conn, { SMFIR_CONTINUE }, "RCPT")
content(conn, "no macros", "text\r\n")
expect(conn, { SMFIR_CONTINUE, SMFIR_ACCEPT }, "end of message")
value = mt.getheader(conn, "X-Relayguard", 0) or ""
ok(string.find(value, "direction=inbound", 1, true) ~= nil, "trace header without macros: " .. value)
ok(string.find(value, "host=", 1, true) == nil, "no host without macro j")
mt.disconnect(conn)

done("macros")
