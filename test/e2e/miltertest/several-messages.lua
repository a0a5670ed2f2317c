-- Several messages on one milter connection: each gets its own verdict and trace header, an
-- aborted transaction leaves nothing behind, and the connection reference stays the same.
dofile(lib)

local conn = open()
outside_client(conn, "mail.outside.test", "203.0.113.9")

local function message(qid, subject)
  step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL for " .. qid)
  expect(conn, { SMFIR_CONTINUE }, "MAIL for " .. qid)
  mt.macro(conn, SMFIC_RCPT, "i", qid)
  step(mt.rcptto(conn, "<bob@example.test>"), "RCPT for " .. qid)
  expect(conn, { SMFIR_CONTINUE }, "RCPT for " .. qid)
  content(conn, subject, "message " .. qid .. "\r\n")
  expect(conn, { SMFIR_CONTINUE, SMFIR_ACCEPT }, "end of message " .. qid)
  local value = mt.getheader(conn, "X-Relayguard", 0) or ""
  ok(string.find(value, "queue-id=" .. qid, 1, true) ~= nil, "trace header of " .. qid .. ": " .. value)
  ok(mt.getheader(conn, "X-Relayguard", 1) == nil, "one trace header for " .. qid)
  return string.match(value, "conn=([%w-]+)")
end

local first = message("AAAA000001", "first")
local second = message("AAAA000002", "second")
ok(first ~= nil and first == second, "same connection reference for both messages (" .. tostring(first) .. ")")

-- A transaction aborted after RCPT: the next one starts clean.
step(mt.mailfrom(conn, "<sender@outside.test>"), "MAIL (to be aborted)")
expect(conn, { SMFIR_CONTINUE }, "MAIL (to be aborted)")
step(mt.rcptto(conn, "<someone@elsewhere.test>"), "refused RCPT (to be aborted)")
expect(conn, { SMFIR_REPLYCODE, SMFIR_REJECT }, "refused RCPT before the abort")
step(mt.abort(conn), "abort")

local third = message("AAAA000003", "after an abort")
ok(third == first, "still the same connection after an abort")

done("several-messages")
