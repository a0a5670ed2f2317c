-- The trace header: at end of message relayguard adds X-Relayguard with the direction, the
-- connection reference, the queue id (macro i) and the gateway's name (macro j), and leaves
-- the body alone.
dofile(lib)

local conn = open()
outside_client(conn, "mail.outside.test", "203.0.113.9")
step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL")
expect(conn, { SMFIR_CONTINUE }, "MAIL")
mt.macro(conn, SMFIC_RCPT, "i", "4A1B2C3D4E")
step(mt.rcptto(conn, "<bob@example.test>"), "RCPT")
expect(conn, { SMFIR_CONTINUE }, "RCPT")
content(conn, "trace header", "just text\r\n")
expect(conn, { SMFIR_CONTINUE, SMFIR_ACCEPT }, "end of message")

ok(mt.eom_check(conn, MT_HDRADD, "X-Relayguard"), "X-Relayguard added at end of message")
local value = mt.getheader(conn, "X-Relayguard", 0)
ok(value ~= nil, "X-Relayguard has a value: " .. tostring(value))
ok(string.find(value, "^%s?direction=inbound; conn=[%w-]+; queue%-id=4A1B2C3D4E; host=mx%.miltertest%.test$") ~= nil,
  "value names direction, connection, queue id and host")
ok(mt.getheader(conn, "X-Relayguard", 1) == nil, "exactly one X-Relayguard")
ok(not mt.eom_check(conn, MT_BODYCHANGE), "body not replaced")
ok(not mt.eom_check(conn, MT_QUARANTINE), "not quarantined")
ok(not mt.eom_check(conn, MT_HDRDELETE, "Subject"), "Subject left alone")
mt.disconnect(conn)

done("trace-header")
