-- Shared helpers for relayguard's miltertest scripts, loaded with dofile(lib).
-- Globals set by the runner (miltertest -D): sock (libmilter syntax inet:PORT@HOST), lib.
-- miltertest does not print the message of error(), it only exits 1: every check is echoed
-- first, so a failure names itself.

checks = 0

function ok(cond, what)
  if cond then
    checks = checks + 1
    mt.echo("ok - " .. what)
  else
    mt.echo("not ok - " .. what)
    error(what)
  end
end

local names = {
  [SMFIR_CONTINUE] = "CONTINUE", [SMFIR_ACCEPT] = "ACCEPT", [SMFIR_REJECT] = "REJECT",
  [SMFIR_TEMPFAIL] = "TEMPFAIL", [SMFIR_DISCARD] = "DISCARD", [SMFIR_REPLYCODE] = "REPLYCODE",
  [SMFIR_SKIP] = "SKIP",
}

function reply_name(r)
  return names[r] or tostring(r)
end

-- The last reply must be one of the wanted ones (a list of SMFIR_* values).
function expect(conn, wanted, what)
  local got = mt.getreply(conn)
  local want = {}
  for _, w in ipairs(wanted) do
    if got == w then
      ok(true, what .. " -> " .. reply_name(got))
      return got
    end
    table.insert(want, reply_name(w))
  end
  ok(false, what .. " -> " .. reply_name(got) .. " (wanted " .. table.concat(want, " or ") .. ")")
end

-- A step function returns nil on success or an error text.
function step(err, what)
  ok(err == nil, what .. (err and (": " .. tostring(err)) or ""))
end

function open()
  local conn = mt.connect(sock, 40, 0.25)
  ok(conn ~= nil, "connect to " .. sock)
  return conn
end

-- mt.negotiate(conn, version, actions, steps) of miltertest 2.11 sends its third argument as the
-- protocol steps and its fourth as the actions (checked on the wire), the reverse of its manual.
-- nil keeps libmilter's default for either.
function negotiate(conn, version, actions, protocol)
  return mt.negotiate(conn, version, protocol, actions)
end

-- Connection from an outside client, as Postfix announces it.
function outside_client(conn, host, ip)
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.miltertest.test", "_", host .. " [" .. ip .. "]", "{daemon_name}", "mx.miltertest.test")
  step(mt.conninfo(conn, host, ip), "connect info " .. host .. " [" .. ip .. "]")
  expect(conn, { SMFIR_CONTINUE }, "connect from " .. ip)
  step(mt.helo(conn, host), "HELO " .. host)
  expect(conn, { SMFIR_CONTINUE }, "HELO " .. host)
end

-- Headers, end of headers, one body chunk and end of message.
function content(conn, subject, body)
  step(mt.header(conn, "From", "<sender@outside.test>"), "header From")
  step(mt.header(conn, "To", "<bob@example.test>"), "header To")
  step(mt.header(conn, "Subject", subject), "header Subject")
  step(mt.eoh(conn), "end of headers")
  expect(conn, { SMFIR_CONTINUE }, "end of headers")
  step(mt.bodystring(conn, body), "body chunk")
  expect(conn, { SMFIR_CONTINUE }, "body chunk")
  step(mt.eom(conn), "end of message")
end

function done(name)
  mt.echo("# " .. name .. ": all " .. checks .. " checks passed")
end
