#!/bin/bash
# Real Debian Sendmail 8.17 (sendmail-bin) on a loopback address, for relay-audit testing,
# WITHOUT installing the package (it conflicts with postfix) and without touching the host's /etc.
#
#   tests/mta/sendmail.sh start NAME PERSONALITY ADDR   # PERSONALITY: open | closed | localfrom | accept_unqualified
#   tests/mta/sendmail.sh stop NAME                     # idempotent; "stop all" stops every instance
#   tests/mta/sendmail.sh status [NAME]
#
# What `start` does:
#   1. `apt-get download` sendmail-bin, sendmail-base, sendmail-cf, m4 (to build sendmail.cf; not
#      installed on this host) and libwrap0 (sendmail links it; not installed either) into
#      $RELAYGUARD_MTA_CACHE (default <repo>/target/mta-debs, git-ignored), once; then
#      `dpkg-deb -x` them into /tmp/relayguard-mta/NAME/root.
#   2. Builds sendmail.cf with the extracted m4 from tests/mta/sendmail-common.mc (Debian's own
#      sendmail.mc: OSTYPE(debian), DOMAIN(debian-mta), access_db, greet_pause, delay_checks,
#      conncontrol/ratecontrol, privacy flags; all paths moved under the instance directory) with
#      tests/mta/sendmail-PERSONALITY.m4 spliced in:
#        open     : FEATURE(promiscuous_relay)
#        closed   : Debian's defaults; the access db is Debian's default (tests/mta/sendmail-access)
#                   except that only 127.0.0.1 may relay (Debian's says "Connect:127 RELAY": all of
#                   127/8, which would trust a scanner at 127.66.0.1); unknown local users get
#                   "550 5.1.1 ... User unknown"
#        localfrom: closed + FEATURE(relay_local_from): relays whenever the envelope sender is
#                   in a local domain ($=w: HOST, [ADDR], ...), a forgeable classic misconfiguration
#        accept_unqualified: closed + FEATURE(accept_unqualified_senders) and
#                   FEATURE(accept_unresolvable_domains): sloppy sender checks, still no relay
#      (FEATURE(loose_relay_check) is not offered: in 8.17 it changes nothing visible at RCPT,
#      canonify already turns user%remote@HOST into user@remote before the relay check.)
#      Nothing can be delivered or leave the machine: DeliveryMode=queueonly and no queue runner
#      is ever started, every SMTP mailer dials [127.0.0.1]:9 (nothing listens) whatever the
#      recipient (A=TCP [127.0.0.1] 9, so even address literals and a forced `-q` go nowhere),
#      the local mailer is /bin/true. relayguard never sends DATA anyway. (Not DeliveryMode=
#      deferred: Debian's check_rcpt skips ALL recipient checks in that mode, relaying included.)
#   3. Runs `sendmail -C CF -bD` (foreground daemon) in a private mount + UTS namespace
#      (unshare -m -u) with hostname NAME.sendmail.test and private copies of /etc/passwd and
#      /etc/group (adding Debian's smmta/smmsp users, TrustedUser=smmta), /etc/hosts and
#      /etc/resolv.conf bind-mounted. The host's files are never modified.
#      DNS: the service switch is Debian's ("hosts files dns") and the resolver is 127.0.0.1 where
#      nothing listens, so every DNS lookup fails at once with a TEMPORARY error. With Debian's
#      delay_checks the sender check answers at RCPT: "451 4.1.8 Domain of sender address
#      u@example.com does not resolve" (for local recipients), and the client's failed PTR lookup
#      makes every relay refusal "450 4.4.0 Relaying temporarily denied. Cannot resolve PTR
#      record for 127.66.0.1" (the instance's own name and localhost come from the private
#      /etc/hosts). RELAYGUARD_SENDMAIL_DNS=off uses Debian's service.switch-nodns ("hosts files")
#      plus a private /etc/nsswitch.conf with "hosts: files" (the client's PTR lookup goes through
#      libc, not service.switch): lookups then fail permanently, "553 5.1.8 Domain of sender
#      address ... does not exist" and "550 5.7.1 Relaying denied. IP name lookup failed [...]".
#      Debian's access db limits each client to 10 connections per 10 minutes (ClientRate: 10,
#      ConnectionRateWindowSize 10m, FEATURE(ratecontrol, nodelay, terminate)); beyond that
#      sendmail greets with "421 4.3.2 Connection rate limit exceeded." A relayguard sweep makes
#      5 connections per host, so sweep a fresh instance at most twice (127.0.0.1 is exempt).
#      Sendmail logs only to syslog (absent here); the SMTP traffic of every connection is
#      logged with -X to /tmp/relayguard-mta/NAME/log/traffic.
#   4. Waits for the 220 banner on ADDR:25 (the check connects from ADDR itself: 1 s greet pause).
# ADDR is added to lo as a /32 alias (removed by stop): sendmail only counts [ADDR] as one of its
# own names ($=w) when ADDR is on an interface, as it would be on a real server.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${RELAYGUARD_MTA_CACHE:-$REPO/target/mta-debs}
BASE=/tmp/relayguard-mta
PACKAGES=(sendmail-bin sendmail-base sendmail-cf m4 libwrap0)
SINKHOST=127.0.0.1
SINKPORT=9

TOOL=sendmail.sh
BANNER_TIMEOUT=3
# shellcheck source=lib.sh
. "$HERE/lib.sh"

die() {
    echo "sendmail.sh: error: $*" >&2
    # A failed start leaves nothing behind (alias, half-built directory).
    if [ -n "${STARTING:-}" ]; then local n=$STARTING; STARTING=; do_stop "$n"; fi
    exit 1
}
valid_name() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$ ]] || die "bad instance name '$1'"; }

# Free uid/gid (in neither the host's passwd/group nor the private copies) for a service user.
free_id() { # $1 private passwd, $2 private group
    local id
    for id in $(seq 64900 64999); do
        getent passwd "$id" >/dev/null || getent group "$id" >/dev/null && continue
        grep -q "^[^:]*:[^:]*:$id:" "$1" "$2" && continue
        echo "$id"; return
    done
    die "no free id in 64900-64999"
}

do_stop() { # $1 name; caller holds the lock
    local dir=$BASE/$1 pid i
    [ -d "$dir" ] || return 0
    pid=$(cat "$dir/daemon.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && pid_alive "$pid"; then
        # setsid made the daemon a session/group leader: signal its whole group (the daemon
        # and its per-connection children), nothing else.
        kill -TERM -- "-$pid" 2>/dev/null || true
        for i in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then
            log "$1: daemon $pid ignored SIGTERM, killing"
            kill -KILL -- "-$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    if [ -f "$dir/alias" ]; then
        ip addr del "$(cat "$dir/alias")/32" dev lo 2>/dev/null || true
    fi
    rm -rf "$dir"
}

do_start() { # name personality addr; caller holds the lock
    local name=$1 pers=$2 addr=$3 dir=$BASE/$1 t0 host
    t0=$(date +%s.%N)
    case $pers in
        open | closed | localfrom | accept_unqualified) ;;
        *) die "personality must be open, closed, localfrom or accept_unqualified, not '$pers'" ;;
    esac
    [[ $addr =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "ADDR must be an IPv4 address in 127.0.0.0/8"
    [ "$addr" != 127.0.0.1 ] || die "ADDR must not be 127.0.0.1 (the relay-trusted client address)"
    if [ -f "$dir/daemon.pid" ] && pid_alive "$(cat "$dir/daemon.pid")"; then
        if [ "$(cat "$dir/instance" 2>/dev/null)" = "$pers $addr" ]; then
            log "$name already running ($pers on $addr)"
            return 0
        fi
        die "$name is already running as '$(cat "$dir/instance")'; stop it first"
    fi
    do_stop "$name" # stale leftovers
    STARTING=$name
    if { exec 3<>"/dev/tcp/$addr/25"; } 2>/dev/null; then
        exec 3<&- 3>&-
        die "something else already listens on $addr:25"
    fi
    fetch_debs
    host="$name.sendmail.test"
    local m
    for m in common.mc "$pers.m4" access; do
        [ -f "$HERE/sendmail-$m" ] || die "missing template $HERE/sendmail-$m"
    done

    mkdir -p "$dir"/{root,etc,mail,lib/host_status,run,spool/mqueue,log}
    chmod 755 "$BASE" "$dir" "$dir"/{root,etc,mail,lib,run,spool,log}
    chmod 700 "$dir/spool/mqueue" "$dir/lib/host_status"
    local p deb
    for p in "${PACKAGES[@]}"; do
        deb=$(ls "$CACHE/${p}"_*.deb | sort -V | tail -1)
        dpkg-deb -x "$deb" "$dir/root" || die "dpkg-deb -x $deb failed"
    done
    local sm=$dir/root/usr/libexec/sendmail/sendmail cf=$dir/root/usr/share/sendmail/cf
    local m4=$dir/root/usr/bin/m4 makemap=$dir/root/usr/libexec/sendmail/makemap
    [ -x "$sm" ] && [ -x "$m4" ] && [ -x "$makemap" ] && [ -f "$cf/m4/cf.m4" ] ||
        die "extracted packages lack sendmail, m4, makemap or cf/m4/cf.m4"
    # Debian ships sendmail set-group-ID smmsp: drop that (the ld.so would ignore LD_LIBRARY_PATH,
    # needed for the extracted libwrap; the daemon runs as root anyway).
    chmod ug-s "$dir"/root/usr/libexec/sendmail/*

    # Private /etc files for the namespace: Debian's smmta/smmsp users, a resolver nobody
    # answers on, a hosts file naming the instance.
    cp /etc/passwd "$dir/etc/passwd"
    cp /etc/group "$dir/etc/group"
    local u id
    for u in smmta smmsp; do
        if ! getent passwd "$u" >/dev/null; then
            id=$(free_id "$dir/etc/passwd" "$dir/etc/group")
            echo "$u:x:$id:$id:Mail Transfer Agent (relayguard test):/var/lib/sendmail:/usr/sbin/nologin" >>"$dir/etc/passwd"
            getent group "$u" >/dev/null || echo "$u:x:$id:" >>"$dir/etc/group"
        fi
    done
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$dir/etc/resolv.conf"
    printf '127.0.0.1 localhost\n%s %s %s\n' "$addr" "$host" "$name" >"$dir/etc/hosts"
    chmod 644 "$dir"/etc/*

    # /etc/mail equivalents.
    local etcfiles="passwd group resolv.conf hosts"
    if [ "${RELAYGUARD_SENDMAIL_DNS:-}" = off ]; then
        cp "$dir/root/etc/mail/service.switch-nodns" "$dir/mail/service.switch"
        # The client's PTR lookup goes through libc (nsswitch.conf), not service.switch.
        sed 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf >"$dir/etc/nsswitch.conf"
        chmod 644 "$dir/etc/nsswitch.conf"
        etcfiles="$etcfiles nsswitch.conf"
    else
        cp "$dir/root/etc/mail/service.switch" "$dir/mail/service.switch"
    fi
    cp "$dir/root/etc/mail/helpfile" "$dir/mail/helpfile"
    printf 'localhost\n%s\n' "$host" >"$dir/mail/local-host-names"
    : >"$dir/mail/relay-domains"
    : >"$dir/mail/trusted-users"
    # Debian's /etc/aliases (from the netbase/base-files defaults).
    printf '%s\n' 'mailer-daemon: postmaster' 'postmaster: root' 'nobody: root' 'hostmaster: root' \
        'usenet: root' 'news: root' 'webmaster: root' 'www: root' 'ftp: root' 'abuse: root' \
        'noc: root' 'security: root' >"$dir/mail/aliases"
    grep -v '^#' "$HERE/sendmail-access" >"$dir/mail/access"

    # sendmail.cf from the templates.
    local mc=$dir/sendmail.mc conf=$dir/sendmail.cf
    {
        sed -n '1,/^@PERSONALITY@$/{/^@PERSONALITY@$/!p}' "$HERE/sendmail-common.mc"
        cat "$HERE/sendmail-$pers.m4"
        sed -n '/^@PERSONALITY@$/,${/^@PERSONALITY@$/!p}' "$HERE/sendmail-common.mc"
    } | sed -e "s|@CF@|$cf|g" -e "s|@DIR@|$dir|g" -e "s|@ADDR@|$addr|g" -e "s|@HOST@|$host|g" \
        -e "s|@SINKHOST@|$SINKHOST|g" -e "s|@SINKPORT@|$SINKPORT|g" \
        -e "s|@PERSONALITY_NAME@|$pers|g" >"$mc"
    "$m4" "$mc" >"$conf" 2>"$dir/m4.err" || { cat "$dir/m4.err" >&2; die "m4 $mc failed"; }
    # promiscuous_relay warns (rightly); anything else m4 says is shown too.
    [ -s "$dir/m4.err" ] && sed 's/^/sendmail.sh: m4: /' "$dir/m4.err" >&2
    grep -q "^O DaemonPortOptions=.*Addr=$addr" "$conf" || die "generated $conf lacks the daemon address"
    chmod 644 "$mc" "$conf" "$dir"/mail/*
    echo "$pers $addr" >"$dir/instance"
    if ! ip -4 -o addr show dev lo | grep -qF " $addr/"; then
        ip addr add "$addr/32" dev lo || die "ip addr add $addr/32 dev lo failed"
        echo "$addr" >"$dir/alias" # ours: removed again by stop
    fi

    # Namespace entry script: private hostname and mounts, aliases db, then the daemon in the
    # foreground (-bD), its SMTP traffic logged with -X.
    {
        echo '#!/bin/sh'
        echo 'set -e'
        echo "hostname '$host'"
        echo "for f in $etcfiles; do mount --bind '$dir/etc/'\"\$f\" /etc/\"\$f\"; done"
        echo "LD_LIBRARY_PATH='$dir/root/usr/lib/x86_64-linux-gnu'; export LD_LIBRARY_PATH"
        echo "'$makemap' -C '$conf' hash '$dir/mail/access' <'$dir/mail/access'"
        echo "'$sm' -C '$conf' -bi"
        echo "exec '$sm' -C '$conf' -bD -X '$dir/log/traffic'"
    } >"$dir/ns-exec.sh"
    chmod 755 "$dir/ns-exec.sh"
    setsid unshare -m -u --propagation private -- "$dir/ns-exec.sh" \
        </dev/null >"$dir/daemon.out" 2>&1 9>&- &
    echo $! >"$dir/daemon.pid"
    local i
    for i in $(seq 200); do
        banner_ok "$addr" && break
        if ! pid_alive "$(cat "$dir/daemon.pid")"; then
            cat "$dir/daemon.out" >&2 2>/dev/null || true
            do_stop "$name"
            die "sendmail exited before answering on $addr:25 (output above)"
        fi
        sleep 0.1
    done
    if ! banner_ok "$addr"; then
        cat "$dir/daemon.out" >&2 2>/dev/null || true
        do_stop "$name"
        die "sendmail never sent 220 on $addr:25 within 20 s"
    fi
    STARTING=
    log "$name ($pers) up on $addr:25 as $host in $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s; traffic log $dir/log/traffic, config $conf"
}

CONF_FILE=sendmail.cf
NEEDS=(ip)
main "$@"
