#!/usr/bin/env bash
# A real Sendmail 8.17 in front of relayguard, for the Sendmail end-to-end tests (Debian, root).
#
#   sendmail-stack.sh up              fetch + unpack Sendmail if needed, write its config, start it
#   sendmail-stack.sh up --policy-mc MC --access-map MAP
#                                     the same, but the policy part of sendmail.mc is MC (the output
#                                     of `relayguard postfix-config --mta sendmail`) and the access
#                                     map is MAP (`... --access-map`); a plain `up` goes back
#   sendmail-stack.sh down [--purge]  stop what `up` started; --purge also deletes the state
#   sendmail-stack.sh status          one line per part; exit 0 only when every part answers
#   sendmail-stack.sh env             the derived ports, paths and client addresses (shell syntax)
#
# Debian's sendmail-bin conflicts with postfix, so it is never installed: `apt-get download` +
# `dpkg -x` unpack it under /tmp, and only m4 and shared libraries come from apt-get. The only
# thing written under /etc is the namespace's own /etc/netns/rg-sm-SLOT (hosts, resolv.conf; `ip
# netns exec` shows them as /etc/hosts and /etc/resolv.conf inside), removed by `down`; the host's
# network is left alone.
#
# Sendmail has no XCLIENT, so clients that must look like outside hosts really connect from
# outside addresses: Sendmail, its smtp-sink and the test clients live in a private network
# namespace (rg-sm-SLOT) whose loopback also carries the addresses below. relayguard itself
# runs in the normal namespace (it needs the Postfix stack's clamd and rbldnsd); a small bridge
# makes the host's 127.0.0.1:MILTER_PORT appear as 127.0.0.1:MILTER_PORT inside the namespace,
# so Sendmail's milter socket is exactly inet:MILTER_PORT@127.0.0.1.
#
#   client (netns, any address below) -> Sendmail 127.0.0.1:2527 / [::1]:2527 (netns)
#     -> milter inet:10026@127.0.0.1 (netns) == bridge ==> relayguard 127.0.0.1:10026 (host)
#     -> smart host smtp-sink 127.0.0.1:2528 (netns), one file per delivered message
#
# Run a client inside:   ip netns exec rg-sm-SLOT swaks --server 127.0.0.1:2527 --local-interface 203.0.113.9 ...
# Sendmail's commands:   $BASE/bin/sendmail -bp -qQ  (a wrapper: namespace, hostname, -C config)
#
# Environment: RG_E2E_SLOT=N (0..49): every port is base+100*N, state in /tmp/rg-sm-N.
set -Eeuo pipefail

readonly MAX_SLOT=49
SLOT=${RG_E2E_SLOT:-0}
[[ $SLOT =~ ^[0-9]+$ ]] && ((10#$SLOT <= MAX_SLOT)) || { echo "sendmail-stack.sh: RG_E2E_SLOT must be 0..$MAX_SLOT" >&2; exit 2; }
SLOT=$((10#$SLOT))
OFFSET=$((100 * SLOT))

SMTP_PORT=$((2527 + OFFSET))
SINK_PORT=$((2528 + OFFSET))
MILTER_PORT=$((10026 + OFFSET))
# The Postfix stack's clamd and rbldnsd of the same slot (test/e2e/stack.sh), bridged in for the audit.
CLAMD_PORT=$((3310 + OFFSET))
RBL_PORT=$((5353 + OFFSET))

NETNS=rg-sm-$SLOT
NETNS_ETC=/etc/netns/$NETNS
BASE=/tmp/rg-sm-$SLOT
ETC=$BASE/etc
CF=$ETC/sendmail.cf
QUEUE_DIR=$BASE/mqueue
RUN=$BASE/run
SINK_DIR=$BASE/sink
TLS_DIR=$BASE/tls
SENDMAIL=$BASE/bin/sendmail
PIDFILE=$RUN/sendmail.pid
# Unpacked packages are shared by every slot (read-only once unpacked).
PKG_BASE=/tmp/rg-sm-pkg
BIN=$PKG_BASE/root/usr/libexec/sendmail/sendmail
MAKEMAP=$PKG_BASE/root/usr/sbin/makemap
CF_DIR=$PKG_BASE/root/usr/share/sendmail/cf
# A dotted host name: without one Sendmail sleeps 60 s at start ("My unqualified host name").
FQDN=mta.sm-e2e.test

# Client addresses on the namespace's loopback, named after their role in the reference gateway.
INTERNAL_IP=127.0.0.1     # internal network 127.0.0.0/8
OUTSIDE_IP=203.0.113.9    # external
LISTED_IP=203.0.113.66    # external, listed in bl.test
PARTNER_IP=198.51.100.7   # partner network
DENIED_IP=192.0.2.9       # denied network
OUTSIDE_IP6=2001:db8::9   # external, IPv6 (Sendmail sends it as "IPv6:2001:db8::9")
AUDIT_IPS=203.0.113.10,203.0.113.11,203.0.113.12 # external, for `relayguard audit --bind`
EXTRA_ADDRESSES=("$OUTSIDE_IP/32" "$LISTED_IP/32" "$PARTNER_IP/32" "$DENIED_IP/32" 203.0.113.10/32 203.0.113.11/32 203.0.113.12/32)

# Sendmail's limits and milter timeouts. relayguard's deadlines (reference policy): connect 10s,
# envelope 20s, content 240s; Sendmail must wait longer than each of them.
readonly MAX_MESSAGE_SIZE=10240000 # as the Postfix stack: above relayguard's 2 MiB, so relayguard decides
readonly MILTER_TIMEOUTS='C:10s;S:30s;R:30s;E:5m'
readonly READY_TIMEOUT_S=20
readonly STOP_TIMEOUT_S=10
readonly APT_PACKAGES=(m4 liblockfile1 libwrap0 libldap-2.5-0 libnsl2 libsasl2-2 libdb5.3 libssl3 swaks openssl iproute2 util-linux)
readonly DEB_PACKAGES=(sendmail-bin sendmail-cf)

started_ms=$(date +%s%3N)
say() { printf 'sendmail-stack[%s] %5sms %s\n' "$SLOT" "$(($(date +%s%3N) - started_ms))" "$*"; }
fail() { say "ERROR: $*" >&2; exit 1; }

in_ns() { ip netns exec "$NETNS" "$@"; }
# (No `grep -q` after a pipe: it exits at the first match, the writer dies of SIGPIPE, and
# pipefail turns that into "not found".)
ns_exists() { [[ -e /run/netns/$NETNS ]]; }
listening() { ns_exists && in_ns ss -ltnH "sport = :$1" 2>/dev/null | grep . >/dev/null; }
running() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n $s && $s != Z ]]; }
pid_from() { [[ -s $1 ]] && head -n 1 "$1" | tr -dc '0-9'; }
# The pid in file $1 runs and its command line mentions $2 (a recycled pid is never signalled).
owns_pid() {
  local pid; pid=$(pid_from "$1") || return 1; [[ -n $pid ]] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F -- "$2" >/dev/null
}
wait_for() { # seconds command...
  local deadline=$(($(date +%s%3N) + $1 * 1000)); shift
  until "$@" >/dev/null 2>&1; do (($(date +%s%3N) < deadline)) || return 1; sleep 0.02; done
}
# Writes stdin to $1 when the content differs; returns 0 when the file changed.
install_file() {
  local tmp; tmp=$(mktemp "$1.XXXXXX"); cat >"$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  chmod 644 "$tmp"; mv -f "$tmp" "$1"
}

# ---------------------------------------------------------------- packages (never sendmail itself)
ensure_packages() {
  local missing=() installed
  # One dpkg-query for all packages (one per package costs ~50 ms each).
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null | awk '/ ok installed$/ {print $1}') || true
  mapfile -t missing < <(printf '%s\n' "${APT_PACKAGES[@]}" | grep -vxF -f <(printf '%s\n' "$installed"))
  command -v smtp-sink >/dev/null || fail "smtp-sink is missing: run test/e2e/stack.sh up first (it installs postfix)"
  if ((${#missing[@]} > 0)); then
    say "packages: installing ${missing[*]}"
    exec 8>/tmp/rg-e2e-apt.lock; flock -w 600 8 || fail "another apt run holds /tmp/rg-e2e-apt.lock"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$BASE/apt.log" 2>&1 || {
      apt-get update -q >>"$BASE/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$BASE/apt.log" 2>&1
    } || { tail -n 20 "$BASE/apt.log" >&2; fail "apt-get install failed (see $BASE/apt.log)"; }
    flock -u 8
  fi
  [[ -x $BIN && -f $CF_DIR/m4/cf.m4 ]] && return 0
  exec 7>"$PKG_BASE.lock"; flock -w 300 7 || fail "another sendmail-stack.sh holds $PKG_BASE.lock"
  if [[ ! -x $BIN || ! -f $CF_DIR/m4/cf.m4 ]]; then
    say "packages: downloading and unpacking ${DEB_PACKAGES[*]} (not installed)"
    rm -rf "$PKG_BASE"; mkdir -p "$PKG_BASE/debs" "$PKG_BASE/root"
    chown _apt "$PKG_BASE/debs" 2>/dev/null || true # apt-get download warns when _apt cannot write
    (cd "$PKG_BASE/debs" && apt-get download -q "${DEB_PACKAGES[@]}" >"$PKG_BASE/download.log" 2>&1) ||
      (apt-get update -q >>"$PKG_BASE/download.log" 2>&1 && cd "$PKG_BASE/debs" && apt-get download -q "${DEB_PACKAGES[@]}" >>"$PKG_BASE/download.log" 2>&1) ||
      { cat "$PKG_BASE/download.log" >&2; fail "apt-get download ${DEB_PACKAGES[*]} failed"; }
    local deb; for deb in "$PKG_BASE"/debs/*.deb; do dpkg -x "$deb" "$PKG_BASE/root"; done
    [[ -x $BIN ]] || fail "no sendmail binary in the unpacked package ($BIN)"
  fi
  flock -u 7
}

# ---------------------------------------------------------------- configuration
# m4 source of sendmail.cf: the stack's environment (paths, ports, smart host, certificate),
# then the policy part (the stack's own, or the file given with --policy-mc), then the mailers.
# Every path is under $BASE (world-writable /tmp above it needs DONT_BLAME_SENDMAIL=TrustStickyBit,
# else Sendmail silently drops STARTTLS).
write_mc() {
  mc_environment
  if [[ -n $POLICY_MC ]]; then
    printf 'dnl ---- policy part: %s\n' "$POLICY_MC"
    cat "$POLICY_MC"
  else
    mc_stack_policy
  fi
  printf '%s\n' "MAILER(\`local')dnl" "MAILER(\`smtp')dnl"
}

mc_environment() {
  local q="\`" # m4's opening quote
  cat <<EOF
divert(-1)dnl
# relayguard e2e (slot $SLOT), written by test/e2e/sendmail-stack.sh. Do not edit: \`up' rewrites it.
divert(0)dnl
OSTYPE(${q}linux')dnl
define(${q}confDOMAIN_NAME', ${q}$FQDN')dnl
define(${q}confDONT_PROBE_INTERFACES', ${q}true')dnl
define(${q}confSERVICE_SWITCH_FILE', ${q}$ETC/service.switch')dnl
define(${q}QUEUE_DIR', ${q}$QUEUE_DIR')dnl
define(${q}confPID_FILE', ${q}$PIDFILE')dnl
define(${q}STATUS_FILE', ${q}$RUN/sendmail.st')dnl
define(${q}ALIAS_FILE', ${q}$ETC/aliases')dnl
define(${q}confDONT_BLAME_SENDMAIL', ${q}TrustStickyBit')dnl
define(${q}confTO_IDENT', ${q}0s')dnl
dnl Deliver at once whatever the load: Sendmail's default QueueLA (8 x CPUs) queues big messages
dnl instead when a test machine is busy, and the tests wait for delivery.
define(${q}confQUEUE_LA', ${q}1000')dnl
define(${q}confREFUSE_LA', ${q}1000')dnl
define(${q}confTO_RESOLVER_RETRANS', ${q}1s')dnl
define(${q}confTO_RESOLVER_RETRY', ${q}1')dnl
dnl Every recipient goes to the smart host smtp-sink; the brackets mean no MX lookup.
define(${q}SMART_HOST', ${q}relay:[127.0.0.1]')dnl
define(${q}RELAY_MAILER_ARGS', ${q}TCP \$h $SINK_PORT')dnl
define(${q}ESMTP_MAILER_ARGS', ${q}TCP \$h $SINK_PORT')dnl
define(${q}SMTP_MAILER_ARGS', ${q}TCP \$h $SINK_PORT')dnl
define(${q}confCACERT_PATH', ${q}$TLS_DIR')dnl
define(${q}confCACERT', ${q}$TLS_DIR/cert.pem')dnl
define(${q}confSERVER_CERT', ${q}$TLS_DIR/cert.pem')dnl
define(${q}confSERVER_KEY', ${q}$TLS_DIR/key.pem')dnl
FEATURE(${q}no_default_msa')dnl
FEATURE(${q}nocanonify')dnl
FEATURE(${q}accept_unresolvable_domains')dnl
FEATURE(${q}accept_unqualified_senders')dnl
DAEMON_OPTIONS(${q}Family=inet, Addr=127.0.0.1, Port=$SMTP_PORT, Name=MTA')dnl
DAEMON_OPTIONS(${q}Family=inet6, Addr=::1, Port=$SMTP_PORT, Name=MTA-v6')dnl
EOF
}

# The stack's own policy part: what the e2e tests of each rule need.
mc_stack_policy() {
  local q="\`" # m4's opening quote
  cat <<EOF
define(${q}confPRIVACY_FLAGS', ${q}${q}goaway,noexpn,novrfy'')dnl
define(${q}confMAX_MESSAGE_SIZE', ${q}$MAX_MESSAGE_SIZE')dnl
dnl Sendmail would refuse outside clients' relaying itself before the milter sees the RCPT;
dnl here Sendmail is the open relay on purpose, and relayguard alone must close it.
FEATURE(${q}promiscuous_relay')dnl
dnl The macros relayguard reads, per stage (relayguard also asks for them itself at negotiation).
define(${q}confMILTER_MACROS_CONNECT', ${q}${q}j, _, {daemon_name}, {daemon_addr}, {daemon_port}, {client_addr}, {client_port}, {client_name}, {client_ptr}'')dnl
define(${q}confMILTER_MACROS_HELO', ${q}${q}{client_addr}, {tls_version}, {cipher}, {cipher_bits}, {verify}, {cert_subject}, {cert_issuer}'')dnl
define(${q}confMILTER_MACROS_ENVFROM', ${q}${q}i, {auth_type}, {auth_authen}, {auth_author}, {mail_addr}, {tls_version}, {cipher}, {cipher_bits}, {verify}, {cert_subject}, {cert_issuer}'')dnl
define(${q}confMILTER_MACROS_ENVRCPT', ${q}${q}i, {rcpt_addr}, {rcpt_host}, {rcpt_mailer}'')dnl
define(${q}confMILTER_MACROS_DATA', ${q}${q}i'')dnl
define(${q}confMILTER_MACROS_EOH', ${q}${q}i'')dnl
define(${q}confMILTER_MACROS_EOM', ${q}${q}i, {msg_id}'')dnl
dnl F=T: tempfail while relayguard is unreachable. Without F= Sendmail carries on WITHOUT the milter.
INPUT_MAIL_FILTER(${q}relayguard', ${q}S=inet:$MILTER_PORT@127.0.0.1, F=T, T=$MILTER_TIMEOUTS')dnl
EOF
}

write_hosts() {
  printf '127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost\n' "$FQDN"
  local a i=0
  for a in "${EXTRA_ADDRESSES[@]}"; do printf '%s\tclient%d.e2e.test\n' "${a%/*}" $((i++)); done
  printf '%s\tclient-v6.e2e.test\n' "$OUTSIDE_IP6"
}

# Every Sendmail command needs the namespace, a dotted host name and this configuration.
write_wrapper() {
  cat <<EOF
#!/bin/sh
# Runs the unpacked Sendmail of e2e slot $SLOT with its configuration, inside its network
# namespace and with a dotted host name. Written by test/e2e/sendmail-stack.sh.
exec ip netns exec $NETNS unshare --uts sh -c 'hostname $FQDN && exec "\$0" -C $CF "\$@"' $BIN "\$@"
EOF
}

# The bridge: one Node process in the host namespace. A child started inside the namespace opens
# the listening sockets there and hands them over (IPC), so every connection made in the namespace
# to 127.0.0.1:PORT is piped to 127.0.0.1:PORT on the host: relayguard's milter port (for
# Sendmail), and for a `relayguard audit` run inside the namespace, the slot's clamd (TCP) and
# rbldnsd (UDP, one host socket per client socket). When nothing listens on the host, a TCP
# connection is closed at once and Sendmail's F=T applies.
write_bridge() {
  cat <<'EOF'
'use strict';
// Written by test/e2e/sendmail-stack.sh: bridge ports from a network namespace to the host.
//   node bridge.cjs host NETNS tcp:PORT|udp:PORT...
const net = require('node:net');
const dgram = require('node:dgram');
const { spawn } = require('node:child_process');
const [role, netns, ...specs] = process.argv.slice(2);
const UDP_IDLE_MS = 30000;
const parse = (spec) => { const [proto, port] = spec.split(':'); return { proto, port: Number(port) }; };
if (role === 'inside') {
  let pending = specs.length;
  for (const spec of specs) {
    const { proto, port } = parse(spec);
    const fail = (err) => { console.error(`bridge: listen ${spec} in ${netns}: ${err.message}`); process.exit(1); };
    // The parent has its own copy of each socket once sent: close ours, so that only the parent
    // reads (a datagram would otherwise go to either process) and this child can exit.
    const handOver = (handle) => process.send(spec, handle, () => { handle.close(); if (--pending === 0) process.disconnect(); });
    if (proto === 'udp') {
      const sock = dgram.createSocket('udp4');
      sock.on('error', fail);
      sock.bind(port, '127.0.0.1', () => handOver(sock));
    } else {
      const server = net.createServer({ pauseOnConnect: true });
      server.on('error', fail);
      server.listen(port, '127.0.0.1', () => handOver(server));
    }
  }
} else {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, __filename, 'inside', netns, ...specs], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('exit', (code) => { if (code) process.exit(1); });
  child.on('message', (spec, handle) => {
    if (!handle) return;
    const { proto, port } = parse(spec);
    console.log(`bridge: ${netns} ${spec} -> host 127.0.0.1:${port}`);
    if (proto === 'udp') {
      const peers = new Map(); // client "addr:port" -> { sock, timer }
      handle.on('message', (msg, rinfo) => {
        const key = `${rinfo.address}:${rinfo.port}`;
        let peer = peers.get(key);
        if (!peer) {
          const sock = dgram.createSocket('udp4');
          sock.on('message', (reply) => handle.send(reply, rinfo.port, rinfo.address));
          sock.on('error', () => undefined);
          peer = { sock, timer: null };
          peers.set(key, peer);
        }
        clearTimeout(peer.timer);
        peer.timer = setTimeout(() => { peer.sock.close(); peers.delete(key); }, UDP_IDLE_MS);
        peer.sock.send(msg, port, '127.0.0.1');
      });
      return;
    }
    handle.on('connection', (inside) => {
      const host = net.connect({ host: '127.0.0.1', port });
      const close = () => { inside.destroy(); host.destroy(); };
      inside.on('error', close).on('close', close);
      host.on('error', close).on('close', close);
      host.on('connect', () => { inside.pipe(host); host.pipe(inside); inside.resume(); });
    });
  });
  process.on('SIGTERM', () => process.exit(0));
}
EOF
}

configure() {
  mkdir -p "$ETC" "$QUEUE_DIR" "$RUN" "$SINK_DIR" "$TLS_DIR" "$BASE/bin"
  chmod 700 "$QUEUE_DIR" "$TLS_DIR"
  chown nobody:nogroup "$SINK_DIR" # smtp-sink -u nobody writes here
  local changed=
  # No DNS for Sendmail's own lookups: the test domains do not exist.
  printf 'passwd\tfiles\nhosts\tfiles\naliases\tfiles\n' | install_file "$ETC/service.switch" && changed=1
  [[ -f $ETC/aliases ]] || : >"$ETC/aliases"
  if [[ ! -s $TLS_DIR/key.pem ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$FQDN" \
      -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" >/dev/null 2>&1 || fail "openssl could not make the TLS certificate"
    changed=1
  fi
  chmod 600 "$TLS_DIR/key.pem"
  write_mc | install_file "$ETC/sendmail.mc" && changed=1
  # Name lookups inside the namespace: every client address has a name that maps back to it (a
  # relay check on an address whose PTR lookup fails temporarily is answered 4xx, not 5xx), and
  # no DNS server answers (nothing reaches the host's resolver from here).
  mkdir -p "$NETNS_ETC"
  write_hosts | install_file "$NETNS_ETC/hosts" && changed=1
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' | install_file "$NETNS_ETC/resolv.conf" && changed=1
  # The access map (the stack's own policy needs none: an empty one).
  { [[ -n $ACCESS_MAP ]] && cat "$ACCESS_MAP"; true; } | install_file "$ETC/access" && changed=1
  if [[ -n $changed || ! -s $CF ]]; then
    # promiscuous_relay makes m4 print a warning: keep it out of the way.
    m4 -D_CF_DIR_="$CF_DIR/" "$CF_DIR/m4/cf.m4" "$ETC/sendmail.mc" >"$CF.new" 2>"$ETC/m4.warnings" || { cat "$ETC/m4.warnings" >&2; fail "m4 failed"; }
    mv -f "$CF.new" "$CF"
    changed=1
  fi
  # makemap reads sendmail.cf (TrustedUser), so it comes after m4.
  if [[ ! -s $ETC/access.db || $ETC/access -nt $ETC/access.db ]]; then
    "$MAKEMAP" -C "$CF" hash "$ETC/access" <"$ETC/access" 2>"$ETC/makemap.err" || { cat "$ETC/makemap.err" >&2; fail "makemap hash $ETC/access failed"; }
    changed=1
  fi
  write_wrapper | install_file "$SENDMAIL" || true
  chmod 755 "$SENDMAIL"
  # A changed bridge script restarts the bridge (bridge_up).
  write_bridge | install_file "$RUN/bridge.cjs" && BRIDGE_CHANGED=1
  [[ -n $changed ]]
}

# ---------------------------------------------------------------- the namespace
netns_up() {
  if ! ns_exists; then
    ip netns add "$NETNS"
    say "netns: created $NETNS"
  fi
  in_ns ip link set lo up
  local a
  for a in "${EXTRA_ADDRESSES[@]}"; do
    in_ns ip -4 addr show dev lo | grep -F " $a " >/dev/null || in_ns ip addr add "$a" dev lo
  done
  in_ns ip -6 addr show dev lo | grep -F " $OUTSIDE_IP6/128 " >/dev/null || in_ns ip -6 addr add "$OUTSIDE_IP6/128" dev lo nodad
}

netns_down() {
  rm -rf "$NETNS_ETC"
  if ns_exists; then
    ip netns del "$NETNS"
    say "netns: deleted $NETNS"
  fi
}

# ---------------------------------------------------------------- processes
sendmail_up() {
  local restart=$1
  if [[ -n $restart ]] && owns_pid "$PIDFILE" sendmail; then sendmail_down; fi
  if owns_pid "$PIDFILE" sendmail && listening "$SMTP_PORT"; then
    say "sendmail: already running"
  else
    rm -f "$PIDFILE"
    # -bd forks into the background and writes the pid file; -q10m runs the queue (deferred mail).
    "$SENDMAIL" -bd -q10m </dev/null >"$RUN/sendmail.out" 2>&1 7>&- 8>&- 9>&- || { cat "$RUN/sendmail.out" >&2; fail "sendmail -bd failed"; }
    wait_for "$READY_TIMEOUT_S" listening "$SMTP_PORT" || { cat "$RUN/sendmail.out" >&2; fail "sendmail does not listen on 127.0.0.1:$SMTP_PORT in $NETNS"; }
  fi
  say "sendmail: ready on 127.0.0.1:$SMTP_PORT and [::1]:$SMTP_PORT in $NETNS (config $CF, queue $QUEUE_DIR)"
}

sendmail_down() {
  local pid i
  if owns_pid "$PIDFILE" sendmail; then
    pid=$(pid_from "$PIDFILE"); kill -TERM "$pid" 2>/dev/null || true
    # Sendmail removes its pid file on exit; `kill -0` would still see an unreaped zombie.
    for ((i = 0; i < STOP_TIMEOUT_S * 50; i++)); do [[ -e $PIDFILE ]] && running "$pid" || break; sleep 0.02; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; say "sendmail: killed pid $pid"; else say "sendmail: stopped"; fi
  else
    say "sendmail: not running"
  fi
  rm -f "$PIDFILE"
}

# stop_by_pidfile pidfile cmdline-fragment label
stop_by_pidfile() {
  local pid i
  if owns_pid "$1" "$2"; then
    # Started with setsid: the pid is its process group, which also holds any child (the bridge's).
    pid=$(pid_from "$1"); kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT_S * 50; i++)); do running "$pid" || break; sleep 0.02; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    say "$3: stopped"
  else
    say "$3: not running"
  fi
  rm -f "$1"
}

sink_up() {
  if owns_pid "$RUN/smtp-sink.pid" smtp-sink && listening "$SINK_PORT"; then
    say "smtp-sink: already running"
  else
    stop_by_pidfile "$RUN/smtp-sink.pid" smtp-sink smtp-sink >/dev/null
    # Not through in_ns: a backgrounded shell function would make $! a subshell, not smtp-sink.
    ip netns exec "$NETNS" setsid smtp-sink -u nobody -d "$SINK_DIR/%Y%m%d%H%M%S." "127.0.0.1:$SINK_PORT" 64 \
      </dev/null >>"$RUN/smtp-sink.log" 2>&1 7>&- 8>&- 9>&- &
    echo $! >"$RUN/smtp-sink.pid" # ip netns exec and setsid exec, so this is smtp-sink itself
    wait_for "$READY_TIMEOUT_S" listening "$SINK_PORT" || fail "smtp-sink does not listen on 127.0.0.1:$SINK_PORT in $NETNS"
  fi
  say "smtp-sink: ready on 127.0.0.1:$SINK_PORT in $NETNS -> $SINK_DIR"
}

bridge_up() {
  local restart=$1
  [[ -n $restart ]] && stop_by_pidfile "$RUN/bridge.pid" bridge.cjs bridge >/dev/null
  if owns_pid "$RUN/bridge.pid" bridge.cjs && listening "$MILTER_PORT" && listening "$CLAMD_PORT"; then
    say "bridge: already running"
  else
    stop_by_pidfile "$RUN/bridge.pid" bridge.cjs bridge >/dev/null
    command -v node >/dev/null || fail "node is missing (the bridge is a Node script)"
    setsid node "$RUN/bridge.cjs" host "$NETNS" "tcp:$MILTER_PORT" "tcp:$CLAMD_PORT" "udp:$RBL_PORT" </dev/null >>"$RUN/bridge.log" 2>&1 7>&- 8>&- 9>&- &
    echo $! >"$RUN/bridge.pid"
    wait_for "$READY_TIMEOUT_S" listening "$MILTER_PORT" || { tail -n 5 "$RUN/bridge.log" >&2; fail "the milter bridge does not listen in $NETNS"; }
  fi
  say "bridge: $NETNS 127.0.0.1:$MILTER_PORT (relayguard), :$CLAMD_PORT (clamd), udp :$RBL_PORT (rbldnsd) -> host"
}

# ---------------------------------------------------------------- commands
status() {
  local bad=0
  report() { if "${@:2}"; then say "$1: up"; else say "$1: DOWN"; bad=1; fi; }
  report "netns $NETNS" ns_exists
  report "sendmail 127.0.0.1:$SMTP_PORT" eval 'owns_pid "$PIDFILE" sendmail && listening "$SMTP_PORT"'
  report "smtp-sink 127.0.0.1:$SINK_PORT" eval 'owns_pid "$RUN/smtp-sink.pid" smtp-sink && listening "$SINK_PORT"'
  report "bridge 127.0.0.1:$MILTER_PORT" eval 'owns_pid "$RUN/bridge.pid" bridge.cjs && listening "$MILTER_PORT"'
  if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MILTER_PORT" 2>/dev/null; then say "relayguard 127.0.0.1:$MILTER_PORT (host): something listens"
  else say "relayguard 127.0.0.1:$MILTER_PORT (host): nothing listens (Sendmail answers 451 4.3.2 at MAIL)"; fi
  return $bad
}

print_env() {
  local name
  for name in SLOT NETNS SMTP_PORT SINK_PORT MILTER_PORT BASE CF QUEUE_DIR SINK_DIR SENDMAIL PIDFILE FQDN \
    INTERNAL_IP OUTSIDE_IP LISTED_IP PARTNER_IP DENIED_IP OUTSIDE_IP6 AUDIT_IPS MAX_MESSAGE_SIZE; do
    printf 'RG_SM_%s=%q\n' "$name" "${!name}"
  done
}

cmd=${1:-}
POLICY_MC= ACCESS_MAP= BRIDGE_CHANGED=
if [[ $cmd == up ]]; then
  shift
  while (($#)); do
    case $1 in
      --policy-mc) POLICY_MC=$(realpath -e "${2:?--policy-mc needs a file}") || exit 2; shift 2 ;;
      --access-map) ACCESS_MAP=$(realpath -e "${2:?--access-map needs a file}") || exit 2; shift 2 ;;
      *) echo "sendmail-stack.sh: unknown option $1" >&2; exit 2 ;;
    esac
  done
  [[ -n $POLICY_MC && -z $ACCESS_MAP ]] && { echo "sendmail-stack.sh: --policy-mc needs --access-map (Sendmail's relaying is the access map's)" >&2; exit 2; }
fi
case $cmd in
  env) print_env; exit 0 ;;
  up | down | status) ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
(($(id -u) == 0)) || fail "must run as root (network namespace, Sendmail)"
mkdir -p "$BASE"
exec 9>"$BASE.lock"; flock -w 120 9 || fail "another sendmail-stack.sh holds $BASE.lock"

case $cmd in
  up)
    ensure_packages
    restart=; configure && restart=1
    netns_up
    sink_up
    bridge_up "$BRIDGE_CHANGED"
    sendmail_up "$restart"
    say "sendmail stack up (slot $SLOT)" ;;
  down)
    sendmail_down
    stop_by_pidfile "$RUN/smtp-sink.pid" smtp-sink smtp-sink
    stop_by_pidfile "$RUN/bridge.pid" bridge.cjs bridge
    netns_down
    if [[ ${2:-} == --purge ]]; then rm -rf "$BASE"; rm -f "$BASE.lock"; say "purged $BASE"; fi
    say "sendmail stack down (slot $SLOT)" ;;
  status) status ;;
esac
