#!/usr/bin/env bash
# The real-component test stack for relayguard's end-to-end tests (Debian, run as root).
#
#   stack.sh up              install missing packages, write configs, start every part, wait until ready
#   stack.sh packages        only install the missing Debian packages (the unit tests need redis-server)
#   stack.sh down [--purge]  stop what `up` started (by pid file); --purge also deletes the state
#   stack.sh status          one line per part; exit 0 only when every part answers
#   stack.sh env             the derived ports and paths as shell assignments
#   stack.sh clamd-stop | clamd-start   (used by the harness for the "clamd down" tests)
#
# Parts, all on 127.0.0.1 (ports shown for slot 0, which are exactly the reference gateway's):
#   Postfix instance  smtpd :2525, milter inet:127.0.0.1:10025, relays everything to smtp-sink
#   smtp-sink         :2526, one file per delivered message
#   clamd             tcp :3310 and a unix socket; hand-made EICAR signatures only
#   rbldnsd           udp :5353, zones bl.test (ip4set) and dbl.test (dnset)
#   redis-server      :6379, no persistence
# relayguard itself is NOT started here: the test harness owns the milter port.
#
# Environment:
#   RG_E2E_SLOT=N    0..49; every port is base+100*N and state lives in /tmp/rg-e2e-N, so several
#                    developers can run their own stack on one machine.
#   E2E_OPEN_RELAY=1 Postfix relays for anyone (as outside checks may configure it), so only
#                    relayguard stands between the Internet and an open relay.
#   E2E_APT_UPDATE=1 run apt-get update before installing missing packages.
set -Eeuo pipefail

readonly MAX_SLOT=49 # above this, smtpd ports of high slots would meet milter ports of low ones
SLOT=${RG_E2E_SLOT:-0}
[[ $SLOT =~ ^[0-9]+$ ]] && ((SLOT <= MAX_SLOT)) || { echo "stack.sh: RG_E2E_SLOT must be 0..$MAX_SLOT" >&2; exit 2; }
SLOT=$((10#$SLOT))
OFFSET=$((100 * SLOT))

SMTPD_PORT=$((2525 + OFFSET))
SINK_PORT=$((2526 + OFFSET))
MILTER_PORT=$((10025 + OFFSET))
CLAMD_PORT=$((3310 + OFFSET))
RBL_PORT=$((5353 + OFFSET))
METRICS_PORT=$((9464 + OFFSET))
REDIS_PORT=$((6379 + OFFSET))

BASE=/tmp/rg-e2e-$SLOT
PF_DIR=$BASE/pf
PF_CONF=$PF_DIR/etc
MAILLOG=$PF_DIR/log/maillog
SINK_DIR=$PF_DIR/sink
CLAMD_DIR=$BASE/clamd
CLAMD_SOCKET=$CLAMD_DIR/clamd.sock
RBL_DIR=$BASE/rbl
REDIS_DIR=$BASE/redis

readonly READY_TIMEOUT_S=30
readonly STOP_TIMEOUT_S=10
# gcc and libmilter-dev build bench/cmilter, the C milter `relayguard milter-check` is tested against.
# libmaxmind-db-writer-perl writes the test .mmdb files of the origin rule; mmdb-bin (mmdblookup) cross-checks them.
# nsd serves the outside domains' DKIM keys, SPF and DMARC records to the authentication tests
# (test/e2e/auth/outside-dns.ts starts it); python3-dkim (dkimpy) is their independent verifier.
readonly PACKAGES=(postfix clamav-daemon clamdscan rbldnsd swaks miltertest bind9-dnsutils openssl
  libsasl2-modules redis-server gcc libmilter-dev prometheus
  libmaxmind-db-writer-perl mmdb-bin nsd python3-dkim python3-nacl python3-dnspython)

started_ms=$(date +%s%3N)
say() { printf 'stack[%s] %5sms %s\n' "$SLOT" "$(($(date +%s%3N) - started_ms))" "$*"; }
fail() { say "ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- process helpers
# A process counts as running when /proc says so and it is not a zombie: our daemons are
# re-parented to PID 1, and a slow-reaping init leaves zombies that `kill -0` still reports.
running() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n $state && $state != Z ]]; }
pid_from() { [[ -s $1 ]] && tr -dc '0-9' <"$1"; }
# The pid in file $1 is running and its command line mentions $2 (so a recycled pid is never hit).
owns_pid() {
  local pid; pid=$(pid_from "$1") || return 1; [[ -n $pid ]] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}
stop_by_pidfile() { # pidfile cmdline-fragment label
  local pid i
  if owns_pid "$1" "$2"; then
    pid=$(pid_from "$1"); kill "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT_S * 20; i++)); do running "$pid" || break; sleep 0.05; done
    if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; say "$3: killed pid $pid"; else say "$3: stopped"; fi
  else
    say "$3: not running"
  fi
  rm -f "$1"
}
wait_for() { # seconds command...
  local deadline=$(($(date +%s%3N) + $1 * 1000)); shift
  until "$@" >/dev/null 2>&1; do (($(date +%s%3N) < deadline)) || return 1; sleep 0.05; done
}

# ---------------------------------------------------------------- probes (bash only, no clients needed)
greets_220() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && head -c 3 <&3" 2>/dev/null | grep -q '^220'; }
clamd_says() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$CLAMD_PORT && printf 'z%s\0' '$1' >&3 && tr -d '\0' <&3" 2>/dev/null; }
clamd_ready() { [[ $(clamd_says PING) == PONG ]]; }
rbl_ready() { [[ $(dig +short +time=1 +tries=1 -p "$RBL_PORT" @127.0.0.1 2.0.0.127.bl.test A 2>/dev/null) == 127.0.0.2 ]]; }
redis_ready() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null | grep -q '+PONG'
}
postfix_running() { [[ -f $PF_CONF/main.cf ]] && postfix -c "$PF_CONF" status >/dev/null 2>&1; }
master_pid() { pid_from "$PF_DIR/spool/pid/master.pid"; }

# Writes stdin to $1 only when the content differs; returns 0 when the file changed.
install_file() {
  local tmp; tmp=$(mktemp "$1.XXXXXX"); cat >"$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  chmod 644 "$tmp"; mv -f "$tmp" "$1"
}

# ---------------------------------------------------------------- packages
missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || echo "$pkg"
  done
}
apt_lists_empty() { ! ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'; }

ensure_packages() {
  local missing; mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  say "packages: installing ${missing[*]}"
  local aptlog=$BASE/apt.log policy=/usr/sbin/policy-rc.d made_policy= rc=0
  # One installer at a time across all slots (dpkg has its own lock, but it fails instead of waiting).
  exec 8>/tmp/rg-e2e-apt.lock; flock -w 600 8 || fail "another apt run holds /tmp/rg-e2e-apt.lock"
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} > 0)); then
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": the package writes no /etc/postfix/main.cf, so no system Postfix runs.
    debconf-set-selections <<<'postfix postfix/main_mailer_type select No configuration'
    debconf-set-selections <<<'postfix postfix/mailname string e2e.test'
    # Maintainer scripts must not start system services (postfix, clamav, rbldnsd, redis).
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1; fi
    : >"$aptlog"
    if [[ ${E2E_APT_UPDATE:-0} == 1 ]] || apt_lists_empty; then apt-get update -q >>"$aptlog" 2>&1 || rc=$?; fi
    if ((rc == 0)); then
      apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1 || {
        apt-get update -q >>"$aptlog" 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1
      } || rc=$?
    fi
    [[ -n $made_policy ]] && rm -f "$policy"
    ((rc == 0)) || { tail -n 20 "$aptlog" >&2; fail "apt-get install failed (see $aptlog)"; }
    say "packages: installed (log $aptlog)"
  fi
  exec 8>&-
}

# ---------------------------------------------------------------- postfix + smtp-sink
relay_restrictions() {
  if [[ ${E2E_OPEN_RELAY:-0} == 1 ]]; then
    # Postfix refuses a bare "permit"; this is an open relay that still passes its sanity check.
    echo 'check_client_access static:OK, reject_unauth_destination'
  else
    echo 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination'
  fi
}

write_main_cf() {
  cat <<EOF
# Throwaway Postfix instance for relayguard's e2e tests (slot $SLOT). Written by test/e2e/stack.sh;
# the harness may change it for one test and restores main.cf.baseline afterwards.
compatibility_level = 3.6
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/data
maillog_file = $MAILLOG
maillog_file_prefixes = $PF_DIR
syslog_name = postfix-rg$SLOT
myhostname = mx.e2e.test
mydomain = e2e.test
myorigin = \$mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = example.test
relayhost = [127.0.0.1]:$SINK_PORT
default_transport = smtp
relay_transport = smtp
smtpd_relay_restrictions = $(relay_restrictions)
smtpd_delay_reject = yes
# XCLIENT LOGIN=<user> fakes an authenticated client; there is no SASL backend.
smtpd_sasl_auth_enable = yes
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_protocol = 6
milter_default_action = tempfail
disable_vrfy_command = yes
message_size_limit = 10240000
smtpd_tls_security_level = may
smtpd_tls_chain_files = $PF_CONF/key.pem, $PF_CONF/cert.pem
smtpd_tls_loglevel = 1
smtp_tls_security_level = none
biff = no
in_flow_delay = 0
smtpd_error_sleep_time = 0
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 20s
EOF
}

write_master_cf() {
  # Debian's master.cf chroots most services; chroot "n" everywhere needs no jail.
  cat <<EOF
127.0.0.1:$SMTPD_PORT inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
}

postfix_up() {
  mkdir -p "$PF_CONF" "$PF_DIR/spool" "$PF_DIR/data" "$PF_DIR/log" "$SINK_DIR"
  chown postfix:postfix "$PF_DIR/data"; chmod 700 "$PF_DIR/data" # Postfix insists on owning it
  chown nobody:nogroup "$SINK_DIR"                                # smtp-sink runs as nobody
  # Delivered messages of runs more than a day old: nothing looks at them again, and a slot used
  # by CI every day would otherwise keep gigabytes of them.
  find "$SINK_DIR" -maxdepth 1 -type f -mtime +0 -delete
  local changed=
  write_main_cf | install_file "$PF_CONF/main.cf" && changed=1
  write_master_cf | install_file "$PF_CONF/master.cf" && changed=1
  cp -f "$PF_CONF/main.cf" "$PF_CONF/main.cf.baseline"
  if [[ ! -s $PF_CONF/cert.pem ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mx.e2e.test -days 3650 \
      -keyout "$PF_CONF/key.pem" -out "$PF_CONF/cert.pem" >/dev/null 2>&1 || fail "openssl could not make the TLS cert"
    chmod 600 "$PF_CONF/key.pem"; changed=1
  fi
  # Postfix programs wait ("let main.cf cool down") up to 2 s while main.cf/master.cf are younger
  # than about 2 s. The files are complete, so make them look old.
  touch -d '-10 seconds' "$PF_CONF/main.cf" "$PF_CONF/master.cf" "$PF_CONF/main.cf.baseline"
  if postfix_running && [[ -n $changed ]]; then
    # A restart, not a reload: after SIGHUP, idle smtpd processes of the old configuration may
    # still take the next connection.
    stop_postfix_master; say "postfix: configuration changed, restarting"
  fi
  if postfix_running; then
    say "postfix: already running"
  else
    postfix -c "$PF_CONF" start </dev/null >>"$PF_DIR/log/postfix-start.log" 2>&1 8>&- 9>&- \
      || { tail -n 5 "$MAILLOG" >&2 2>/dev/null; fail "postfix start failed"; }
  fi
  wait_for "$READY_TIMEOUT_S" greets_220 "$SMTPD_PORT" || fail "Postfix gives no 220 on 127.0.0.1:$SMTPD_PORT"
  say "postfix: ready on 127.0.0.1:$SMTPD_PORT (config $PF_CONF, log $MAILLOG)"

  if owns_pid "$PF_DIR/smtp-sink.pid" smtp-sink; then
    say "smtp-sink: already running"
  else
    # No daemon mode: setsid detaches it (and $! is smtp-sink itself). -u is required as root.
    setsid smtp-sink -u nobody -d "$SINK_DIR/%Y%m%d%H%M%S." "127.0.0.1:$SINK_PORT" 64 \
      </dev/null >>"$PF_DIR/log/smtp-sink.log" 2>&1 8>&- 9>&- &
    echo $! >"$PF_DIR/smtp-sink.pid"
  fi
  wait_for "$READY_TIMEOUT_S" greets_220 "$SINK_PORT" || fail "smtp-sink gives no 220 on 127.0.0.1:$SINK_PORT"
  say "smtp-sink: ready on 127.0.0.1:$SINK_PORT -> $SINK_DIR"
}

stop_postfix_master() {
  local pid; pid=$(master_pid)
  postfix -c "$PF_CONF" stop </dev/null >/dev/null 2>&1 || true
  wait_for "$STOP_TIMEOUT_S" bash -c "! { s=\$(awk '{print \$3}' /proc/$pid/stat 2>/dev/null) && [ \"\$s\" != Z ]; }" \
    || fail "Postfix master $pid did not exit"
}

postfix_down() {
  if postfix_running; then
    stop_postfix_master
    say "postfix: stopped"
  else
    say "postfix: not running"
  fi
  stop_by_pidfile "$PF_DIR/smtp-sink.pid" smtp-sink smtp-sink
}

# ---------------------------------------------------------------- clamd
# The EICAR test string is assembled from pieces so that no file in the repository contains it.
eicar() { printf '%s%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-' 'TEST-FILE!$H+H*'; }
eicar_marker() { printf '%s%s' 'EICAR-STANDARD-' 'ANTIVIRUS-TEST-FILE'; }

write_clamd_conf() {
  cat <<EOF
# Throwaway clamd for relayguard's e2e tests (slot $SLOT). Written by test/e2e/stack.sh.
DatabaseDirectory $CLAMD_DIR/db
LocalSocket $CLAMD_SOCKET
LocalSocketMode 666
FixStaleSocket yes
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
PidFile $CLAMD_DIR/clamd.pid
LogFile $CLAMD_DIR/clamd.log
LogTime yes
Foreground no
TemporaryDirectory $CLAMD_DIR/tmp
ScanMail yes
ScanArchive yes
Bytecode no
SelfCheck 0
MaxThreads 4
# Above the policy's 2 MiB message limit, so every accepted message is scanned whole.
StreamMaxLength 4M
ReadTimeout 30
CommandReadTimeout 10
IdleTimeout 30
ExtendedDetectionInfo yes
EOF
}

clamd_up() {
  mkdir -p "$CLAMD_DIR/db" "$CLAMD_DIR/tmp"
  # Hand-made signatures only (no download): .hdb = md5:size:name of the 68-byte file,
  # .ndb = hex of the marker text, found anywhere (attachments, archives, with trailing newline).
  echo "$(eicar | md5sum | cut -d' ' -f1):68:RG.Test.EICAR-HDB" | install_file "$CLAMD_DIR/db/rg-test.hdb" || true
  echo "RG.Test.EICAR-NDB:0:*:$(eicar_marker | od -An -tx1 | tr -d ' \n')" | install_file "$CLAMD_DIR/db/rg-test.ndb" || true
  write_clamd_conf | install_file "$CLAMD_DIR/clamd.conf" || true
  if owns_pid "$CLAMD_DIR/clamd.pid" clamd && clamd_ready; then
    say "clamd: already running"
  else
    stop_by_pidfile "$CLAMD_DIR/clamd.pid" clamd clamd >/dev/null
    clamd -c "$CLAMD_DIR/clamd.conf" </dev/null >"$CLAMD_DIR/clamd.out" 2>&1 8>&- 9>&- || { cat "$CLAMD_DIR/clamd.out" >&2; fail "clamd did not start"; }
    wait_for "$READY_TIMEOUT_S" clamd_ready || { tail -n 5 "$CLAMD_DIR/clamd.log" >&2; fail "clamd does not answer PING"; }
  fi
  say "clamd: ready on 127.0.0.1:$CLAMD_PORT and $CLAMD_SOCKET"
}
clamd_down() { stop_by_pidfile "$CLAMD_DIR/clamd.pid" clamd clamd; }

# ---------------------------------------------------------------- rbldnsd
rbl_up() {
  mkdir -p "$RBL_DIR"
  # bl.test (ip4set): "$" in a TXT is replaced by the queried IP. 127.0.0.4 answers with a
  # Spamhaus-style error code, which relayguard must not treat as a listing.
  install_file "$RBL_DIR/bl.zone" <<'EOF' || true
$SOA 300 ns.bl.test hostmaster.bl.test 1 3600 600 86400 300
:127.0.0.2:Listed in bl.test: $
127.0.0.2
203.0.113.66 :127.0.0.2:203.0.113.66 is listed in bl.test (test DNSBL)
127.0.0.4 :127.255.255.254:bl.test refuses this query (error code, not a listing)
203.0.113.67 :127.255.255.254:bl.test refuses this query (error code, not a listing)
EOF
  install_file "$RBL_DIR/dbl.zone" <<'EOF' || true
$SOA 300 ns.dbl.test hostmaster.dbl.test 1 3600 600 86400 300
:127.0.1.2:Domain listed in dbl.test: $
spam.example
EOF
  if owns_pid "$RBL_DIR/rbldnsd.pid" rbldnsd && rbl_ready; then
    kill -HUP "$(pid_from "$RBL_DIR/rbldnsd.pid")" # re-read zones that may have changed
    say "rbldnsd: already running (zones reloaded)"
  else
    stop_by_pidfile "$RBL_DIR/rbldnsd.pid" rbldnsd rbldnsd >/dev/null
    # Daemonises; -t 60: short TTL so changed zones are seen soon.
    rbldnsd -u rbldns -w "$RBL_DIR" -b "127.0.0.1/$RBL_PORT" -p "$RBL_DIR/rbldnsd.pid" -t 60 \
      bl.test:ip4set:bl.zone dbl.test:dnset:dbl.zone </dev/null >"$RBL_DIR/rbldnsd.out" 2>&1 8>&- 9>&- \
      || { cat "$RBL_DIR/rbldnsd.out" >&2; fail "rbldnsd did not start"; }
    wait_for "$READY_TIMEOUT_S" rbl_ready || { cat "$RBL_DIR/rbldnsd.out" >&2; fail "rbldnsd does not answer"; }
  fi
  say "rbldnsd: ready on 127.0.0.1:$RBL_PORT/udp (bl.test, dbl.test)"
}
rbl_down() { stop_by_pidfile "$RBL_DIR/rbldnsd.pid" rbldnsd rbldnsd; }

# ---------------------------------------------------------------- redis
redis_up() {
  mkdir -p "$REDIS_DIR"
  if owns_pid "$REDIS_DIR/redis.pid" redis-server && redis_ready; then
    say "redis: already running"
  else
    stop_by_pidfile "$REDIS_DIR/redis.pid" redis-server redis >/dev/null
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
      --pidfile "$REDIS_DIR/redis.pid" --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" </dev/null >/dev/null 2>&1 8>&- 9>&- \
      || fail "redis-server did not start"
    wait_for "$READY_TIMEOUT_S" redis_ready || { tail -n 5 "$REDIS_DIR/redis.log" >&2; fail "redis does not answer PING"; }
  fi
  say "redis: ready on 127.0.0.1:$REDIS_PORT"
}
redis_down() { stop_by_pidfile "$REDIS_DIR/redis.pid" redis-server redis; }

# ---------------------------------------------------------------- commands
status() {
  local bad=0
  report() { if "${@:2}"; then say "$1: up"; else say "$1: DOWN"; bad=1; fi; }
  report "postfix 127.0.0.1:$SMTPD_PORT" eval 'postfix_running && greets_220 "$SMTPD_PORT"'
  report "smtp-sink 127.0.0.1:$SINK_PORT" eval 'owns_pid "$PF_DIR/smtp-sink.pid" smtp-sink && greets_220 "$SINK_PORT"'
  report "clamd 127.0.0.1:$CLAMD_PORT" clamd_ready
  report "rbldnsd 127.0.0.1:$RBL_PORT" rbl_ready
  report "redis 127.0.0.1:$REDIS_PORT" redis_ready
  if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MILTER_PORT" 2>/dev/null; then say "milter 127.0.0.1:$MILTER_PORT: something listens"
  else say "milter 127.0.0.1:$MILTER_PORT: nothing listens (Postfix answers 451 4.7.1 at MAIL)"; fi
  return $bad
}

print_env() {
  local name
  for name in SLOT SMTPD_PORT SINK_PORT MILTER_PORT CLAMD_PORT RBL_PORT METRICS_PORT REDIS_PORT \
    BASE PF_DIR PF_CONF MAILLOG SINK_DIR CLAMD_DIR CLAMD_SOCKET RBL_DIR REDIS_DIR; do
    printf 'RG_E2E_%s=%q\n' "$name" "${!name}"
  done
}

cmd=${1:-}
case $cmd in
  env) print_env; exit 0 ;;
  up | down | status | clamd-stop | clamd-start | packages) ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
(($(id -u) == 0)) || fail "must run as root"
mkdir -p "$BASE"
# One stack.sh per slot at a time. Every daemon is started with "8>&- 9>&-": an inherited lock
# descriptor would keep the lock held for as long as the daemon runs.
exec 9>"$BASE.lock"; flock -w 120 9 || fail "another stack.sh holds $BASE.lock"

case $cmd in
  up)
    ensure_packages
    postfix_up; clamd_up; rbl_up; redis_up
    say "stack up (slot $SLOT)" ;;
  down)
    postfix_down; clamd_down; rbl_down; redis_down
    if [[ ${2:-} == --purge ]]; then rm -rf "$BASE"; rm -f "$BASE.lock"; say "purged $BASE"; fi
    say "stack down (slot $SLOT)" ;;
  status) status ;;
  packages) ensure_packages ;;
  clamd-stop) clamd_down ;;
  clamd-start) clamd_up ;;
esac
