-- Option negotiation: relayguard asks for exactly what its rules use, copes with an MTA that
-- offers less, and refuses a protocol version it cannot speak.
dofile(lib)

-- A full offer (libmilter's defaults for version 6).
local conn = open()
step(negotiate(conn, 6, nil, nil), "negotiate version 6, everything offered")
ok(mt.test_action(conn, SMFIF_ADDHDRS), "asks to add headers (trace header)")
ok(mt.test_action(conn, SMFIF_QUARANTINE), "asks to quarantine (antivirus, outbound)")
ok(not mt.test_action(conn, SMFIF_ADDRCPT), "does not ask to add recipients")
ok(not mt.test_action(conn, SMFIF_DELRCPT), "does not ask to delete recipients")
ok(not mt.test_action(conn, SMFIF_CHGFROM), "does not ask to change the sender")
ok(not mt.test_option(conn, SMFIP_NOCONNECT), "wants the connect event")
ok(not mt.test_option(conn, SMFIP_NOMAIL), "wants MAIL")
ok(not mt.test_option(conn, SMFIP_NORCPT), "wants RCPT")
ok(not mt.test_option(conn, SMFIP_NOBODY), "wants the body (antivirus)")
ok(mt.test_option(conn, SMFIP_NOUNKNOWN), "skips unknown commands (no rule handles them)")
mt.disconnect(conn)

-- An MTA that only allows adding headers: relayguard degrades instead of failing.
conn = open()
step(negotiate(conn, 6, SMFIF_ADDHDRS, nil), "negotiate with only ADDHDRS offered")
ok(mt.test_action(conn, SMFIF_ADDHDRS), "still adds headers")
ok(not mt.test_action(conn, SMFIF_QUARANTINE), "does not claim an action that was not offered")
outside_client(conn, "mail.outside.test", "203.0.113.9")
step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL")
expect(conn, { SMFIR_CONTINUE }, "MAIL")
step(mt.rcptto(conn, "<bob@example.test>"), "RCPT")
expect(conn, { SMFIR_CONTINUE }, "RCPT")
content(conn, "degraded negotiation", "hello\r\n")
expect(conn, { SMFIR_CONTINUE, SMFIR_ACCEPT }, "end of message")
ok(mt.eom_check(conn, MT_HDRADD, "X-Relayguard"), "trace header added")
mt.disconnect(conn)

-- Protocol version 1 is too old: relayguard ends the connection.
conn = open()
ok(negotiate(conn, 1, nil, nil) ~= nil, "negotiation with version 1 fails")

done("negotiation")
