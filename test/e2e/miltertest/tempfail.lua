-- Fail closed: with clamd unreachable a message cannot be scanned, so relayguard answers 4xx
-- at end of message (nothing unscanned gets through). Once the circuit breaker knows clamd is
-- down, the next transaction is refused with 4xx already at MAIL.
-- Runs against test/e2e/fixtures/miltertest-clamd-down.yaml (breaker: 3 failures).
dofile(lib)

local FAILURES_TO_OPEN = 3

local conn = open()
outside_client(conn, "mail.outside.test", "203.0.113.9")
for n = 1, FAILURES_TO_OPEN do
  step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL " .. n)
  expect(conn, { SMFIR_CONTINUE }, "MAIL " .. n .. " (breaker still closed)")
  step(mt.rcptto(conn, "<bob@example.test>"), "RCPT " .. n)
  expect(conn, { SMFIR_CONTINUE }, "RCPT " .. n)
  content(conn, "unscannable " .. n, "cannot be scanned\r\n")
  -- miltertest 2.11 shows only the reply type (its MT_SMTPREPLY check never matches a
  -- REPLYCODE): the 4xx text is checked through Postfix in antivirus.test.ts.
  expect(conn, { SMFIR_REPLYCODE, SMFIR_TEMPFAIL }, "end of message " .. n .. " without a scanner")
  ok(not mt.eom_check(conn, MT_HDRADD, "X-Relayguard"), "no trace header on a refused message " .. n)
end

step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL after the breaker opened")
expect(conn, { SMFIR_REPLYCODE, SMFIR_TEMPFAIL }, "MAIL is refused temporarily once clamd is known to be down")
mt.disconnect(conn)

done("tempfail")
