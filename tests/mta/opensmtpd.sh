#!/bin/bash
# Real Debian OpenSMTPD (opensmtpd 6.8.0p2) on a loopback address, for relay-audit testing,
# WITHOUT installing the package (it conflicts with postfix) and without touching the host's /etc.
#
#   tests/mta/opensmtpd.sh start NAME PERSONALITY ADDR   # PERSONALITY: open | closed | backupmx
#   tests/mta/opensmtpd.sh stop NAME                     # idempotent; "stop all" stops every instance
#   tests/mta/opensmtpd.sh status [NAME]
#
# What `start` does:
#   1. `apt-get download opensmtpd` into $RELAYGUARD_MTA_CACHE (default <repo>/target/mta-debs,
#      git-ignored), once; `dpkg-deb -x` into /tmp/relayguard-mta/NAME/root.
#   2. Writes smtpd.conf from tests/mta/opensmtpd-PERSONALITY.conf:
#        open   : match from any for any action "relay"
#        closed : match from any for local action "local"; relay only from src 127.0.0.1
#        backupmx: closed, plus backup MX for the parent domain of its name (opensmtpd.test):
#                 accepts *@opensmtpd.test from anyone, relays nowhere else
#      The relay action forwards only to 127.0.0.1:9 (nothing listens there) and local delivery
#      goes to maildirs under the instance directory: nothing can leave the machine.
#   3. Runs `smtpd -d -f CONF` in a private mount + UTS namespace (unshare -m -u) with hostname
#      NAME.opensmtpd.test, and private copies bind-mounted over /etc/passwd and /etc/group
#      (adding the compiled-in users opensmtpd and opensmtpq), /etc/hosts and /etc/resolv.conf,
#      plus private directories over /var/spool (spool: /var/spool/smtpd), /var/lib (chroot:
#      /var/lib/opensmtpd/empty), /usr/libexec (the package's mail.* helpers) and /run (control
#      socket /run/smtpd.sock). The host's files are never modified.
#      OpenSMTPD always resolves the client's address: its bundled resolver (libasr) honours the
#      OpenBSD `lookup file` keyword, so the private resolv.conf says `lookup file` and answers
#      come from the private /etc/hosts only: offline and immediate, no DNS server needed.
#   4. Waits for the 220 banner on ADDR:25.
# ADDR is added to lo as a /32 alias (removed by stop): smtpd could bind it without one, but it
# only treats [ADDR] as one of its own names ("for local") when ADDR is on an interface, as it
# would be on a real server.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${RELAYGUARD_MTA_CACHE:-$REPO/target/mta-debs}
BASE=/tmp/relayguard-mta
PACKAGES=(opensmtpd)
SINK=127.0.0.1:9

TOOL=opensmtpd.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"

valid_name() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]] || die "bad instance name '$1'"; }

# Free uid/gid (not in the host's passwd/group) for a private service user.
free_id() {
    local db=$1 id
    for id in $(seq 64900 64999); do
        getent "$db" "$id" >/dev/null || { echo "$id"; return; }
    done
    die "no free id in 64900-64999 for $db"
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
    # Leftover connection handlers of this instance (same process group) are gone with the group.
    if [ -f "$dir/alias" ]; then
        ip addr del "$(cat "$dir/alias")/32" dev lo 2>/dev/null || true
    fi
    rm -rf "$dir"
}

do_start() { # name personality addr; caller holds the lock
    local name=$1 pers=$2 addr=$3 dir=$BASE/$1 t0 relay host
    t0=$(date +%s.%N)
    case $pers in
        open | closed | backupmx) ;;
        *) die "personality must be open, closed or backupmx, not '$pers'" ;;
    esac
    [[ $addr =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "ADDR must be an IPv4 address in 127.0.0.0/8"
    if [ -f "$dir/daemon.pid" ] && pid_alive "$(cat "$dir/daemon.pid")"; then
        if [ "$(cat "$dir/instance" 2>/dev/null)" = "$pers $addr" ]; then
            log "$name already running ($pers on $addr)"
            return 0
        fi
        die "$name is already running as '$(cat "$dir/instance")'; stop it first"
    fi
    do_stop "$name" # stale leftovers
    if { exec 3<>"/dev/tcp/$addr/25"; } 2>/dev/null; then
        exec 3<&- 3>&-
        die "something else already listens on $addr:25"
    fi
    fetch_debs
    host="$name.opensmtpd.test"
    [ -f "$HERE/opensmtpd-$pers.conf" ] || die "missing template $HERE/opensmtpd-$pers.conf"

    mkdir -p "$dir"/{root,etc,spool/smtpd,varlib/opensmtpd/empty,run,mail}
    chmod 755 "$BASE" "$dir" "$dir/spool" "$dir/varlib" "$dir/varlib/opensmtpd" \
        "$dir/varlib/opensmtpd/empty" "$dir/run" "$dir/mail"
    chmod 711 "$dir/spool/smtpd" # smtpd insists
    local deb
    deb=$(ls "$CACHE"/opensmtpd_*.deb | sort -V | tail -1)
    dpkg-deb -x "$deb" "$dir/root" || die "dpkg-deb -x $deb failed"
    local smtpd=$dir/root/usr/sbin/smtpd
    [ -x "$smtpd" ] || die "extracted package lacks usr/sbin/smtpd"

    # Private /etc files for the namespace: the package's system users, a resolver that only
    # reads /etc/hosts, a hosts file naming the instance.
    cp /etc/passwd "$dir/etc/passwd"
    cp /etc/group "$dir/etc/group"
    local u id
    for u in opensmtpd opensmtpq; do
        if ! getent passwd "$u" >/dev/null; then
            id=$(free_id passwd)
            while grep -q "^[^:]*:[^:]*:$id:" "$dir/etc/passwd" "$dir/etc/group"; do id=$((id + 1)); done
            echo "$u:x:$id:$id:OpenSMTPD (relayguard test):/var/lib/opensmtpd/empty:/usr/sbin/nologin" >>"$dir/etc/passwd"
            echo "$u:x:$id:" >>"$dir/etc/group"
        fi
    done
    printf 'lookup file\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$dir/etc/resolv.conf"
    printf '127.0.0.1 localhost\n%s %s\n' "$addr" "$host" >"$dir/etc/hosts"
    printf 'postmaster: root\nabuse: root\nhostmaster: root\nwebmaster: root\nmailer-daemon: root\n' >"$dir/etc/aliases"
    chmod 644 "$dir"/etc/*

    local conf=$dir/smtpd.conf
    sed -e "s|@ADDR@|$addr|g" -e "s|@HOST@|$host|g" -e "s|@DIR@|$dir|g" -e "s|@SINK@|$SINK|g" -e "s|@PARENT@|${host#*.}|g" \
        "$HERE/opensmtpd-$pers.conf" >"$conf"
    chmod 644 "$conf"
    echo "$pers $addr" >"$dir/instance"
    if ! ip -4 -o addr show dev lo | grep -qF " $addr/"; then
        ip addr add "$addr/32" dev lo || die "ip addr add $addr/32 dev lo failed"
        echo "$addr" >"$dir/alias" # ours: removed again by stop
    fi

    # Namespace entry script: private hostname and mounts, config check, then the daemon in the
    # foreground (-d: logs to stderr = daemon.out).
    {
        echo '#!/bin/sh'
        echo 'set -e'
        echo "hostname '$host'"
        echo "for f in passwd group resolv.conf hosts; do mount --bind '$dir/etc/'\"\$f\" /etc/\"\$f\"; done"
        echo "mount --bind '$dir/spool' /var/spool"
        echo "mount --bind '$dir/varlib' /var/lib"
        echo "mount --bind '$dir/root/usr/libexec' /usr/libexec"
        echo "mount --bind '$dir/run' /run"
        echo "'$smtpd' -n -f '$conf'"
        echo "exec '$smtpd' -d -f '$conf'"
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
            die "smtpd exited before answering on $addr:25 (output above)"
        fi
        sleep 0.1
    done
    if ! banner_ok "$addr"; then
        cat "$dir/daemon.out" >&2 2>/dev/null || true
        do_stop "$name"
        die "smtpd never sent 220 on $addr:25 within 20 s"
    fi
    log "$name ($pers) up on $addr:25 as $host in $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s; log $dir/daemon.out, config $conf"
}

CONF_FILE=smtpd.conf
NEEDS=(ip)
main "$@"
