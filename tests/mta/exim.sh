#!/bin/bash
# Real Debian Exim 4 (exim4-daemon-light) on a loopback address, for relay-audit testing,
# WITHOUT installing the package (it conflicts with postfix) and without touching the host's /etc.
#
#   tests/mta/exim.sh start NAME PERSONALITY ADDR   # PERSONALITY: open | closed | verify | senderrelay
#   tests/mta/exim.sh stop NAME                     # idempotent; "stop all" stops every instance
#   tests/mta/exim.sh status [NAME]
#
# What `start` does:
#   1. `apt-get download` exim4-daemon-light, exim4-base, exim4-config and libidn12 (not installed
#      on this host; exim links against it) into $RELAYGUARD_MTA_CACHE (default <repo>/target/mta-debs,
#      git-ignored), once; then `dpkg-deb -x` them into /tmp/relayguard-mta/NAME/root.
#   2. Builds the config from Debian's own exim4.conf.template (main, ACL, retry, rewrite and
#      authenticator sections unchanged, Debian's macros set the way update-exim4.conf would for an
#      "internet site"), with the router/transport sections replaced by tests/mta/exim-routers.conf:
#      every address that routes ends in :blackhole:, there is no smtp transport, so nothing is
#      ever delivered or leaves the machine.
#        open   : relay_from_hosts = *        (Debian's ACL then accepts any recipient from anyone)
#        closed : relay_from_hosts = 127.0.0.1 (Debian default-like: "550 relay not permitted",
#                 unknown local users fail `verify = recipient`)
#        verify : closed, plus Debian's optional CHECK_RCPT_VERIFY_SENDER (sender verification)
#                 with DNS routing for remote senders; DNS is down in the namespace, so every
#                 remote sender's verification defers (4xx at RCPT)
#        senderrelay: verify, plus the classic misconfiguration "relay for anyone whose envelope
#                 sender is in a local domain" (relay_from_hosts = * when $sender_address_domain
#                 is local); sender verification keeps made-up local senders out, real ones
#                 (postmaster@HOST) relay
#   3. Runs `exim4 -C CONF -bdf -oX 25` in a private mount namespace (unshare -m) where private
#      copies of /etc/passwd and /etc/group (adding the compiled-in `Debian-exim` user) and of
#      /etc/resolv.conf (a nameserver on 127.0.0.1 that nothing serves: DNS fails at once,
#      offline) and /etc/hosts are bind-mounted. The host's files are never modified.
#   4. Waits for the 220 banner on ADDR:25.
# Linux lets a daemon bind any 127/8 address without an alias on lo; none is added.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${RELAYGUARD_MTA_CACHE:-$REPO/target/mta-debs}
BASE=/tmp/relayguard-mta
PACKAGES=(exim4-daemon-light exim4-base exim4-config libidn12)
EXIM_USER=Debian-exim

TOOL=exim.sh
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
    rm -rf "$dir"
}

do_start() { # name personality addr; caller holds the lock
    local name=$1 pers=$2 addr=$3 dir=$BASE/$1 t0 relay host
    t0=$(date +%s.%N)
    case $pers in
        open) relay='*' ;;
        closed | verify) relay='127.0.0.1' ;;
        senderrelay) relay='127.0.0.1 : ${if match_domain{$sender_address_domain}{+local_domains}{*}{127.0.0.1}}' ;;
        *) die "personality must be open, closed, verify or senderrelay, not '$pers'" ;;
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
    host="$name.exim.test"

    mkdir -p "$dir"/{root,conf,etc,spool,log}
    chmod 755 "$BASE" "$dir"
    for p in "${PACKAGES[@]}"; do
        local deb
        deb=$(ls "$CACHE/${p}"_*.deb | sort -V | tail -1)
        dpkg-deb -x "$deb" "$dir/root" || die "dpkg-deb -x $deb failed"
    done
    local exim=$dir/root/usr/sbin/exim4 tmpl=$dir/root/etc/exim4/exim4.conf.template
    [ -x "$exim" ] && [ -f "$tmpl" ] || die "extracted packages lack exim4 or its template"

    # Private /etc files for the namespace.
    local uid gid
    uid=$(getent passwd "$EXIM_USER" | cut -d: -f3 || true)
    gid=$(getent group "$EXIM_USER" | cut -d: -f3 || true)
    cp /etc/passwd "$dir/etc/passwd"
    cp /etc/group "$dir/etc/group"
    if [ -z "$uid" ]; then
        uid=$(free_id passwd)
        echo "$EXIM_USER:x:$uid:${gid:-$uid}:Debian-exim (relayguard test):$dir/spool:/usr/sbin/nologin" >>"$dir/etc/passwd"
    fi
    if [ -z "$gid" ]; then
        gid=$(free_id group)
        echo "$EXIM_USER:x:$gid:" >>"$dir/etc/group"
        sed -i "s/^$EXIM_USER:x:$uid:[0-9]*:/$EXIM_USER:x:$uid:$gid:/" "$dir/etc/passwd"
    fi
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$dir/etc/resolv.conf"
    printf '127.0.0.1 localhost\n%s %s\n' "$addr" "$host" >"$dir/etc/hosts"
    chmod 644 "$dir"/etc/*
    chown "$uid:$gid" "$dir/spool" "$dir/log"
    chmod 750 "$dir/spool" "$dir/log"

    # Config: Debian's template with our macros, router/transport sections swapped.
    local conf=$dir/exim.conf
    {
        echo "# generated by tests/mta/exim.sh for instance $name ($pers on $addr)"
        echo "CONFDIR = $dir/conf"
        echo "SPOOLDIR = $dir/spool"
        echo "MAIN_HARDCODE_PRIMARY_HOSTNAME = $host"
        echo "ETC_MAILNAME = $host"
        echo "MAIN_LOCAL_DOMAINS = @:localhost"
        echo "MAIN_RELAY_TO_DOMAINS ="
        echo "MAIN_RELAY_NETS = $relay"
        echo "MAIN_LOCAL_INTERFACES = $addr"
        echo "DCreadhost ="
        echo "DCsmarthost ="
        echo "DC_eximconfig_configtype = internet"
        echo "DCconfig_internet = 1"
        echo "MAIN_KEEP_ENVIRONMENT = LD_LIBRARY_PATH"
        if [ "$pers" = verify ] || [ "$pers" = senderrelay ]; then
            echo "CHECK_RCPT_VERIFY_SENDER = true"
            echo "RG_SENDER_DNS = 1"
        fi
        sed -n '1,/^begin acl/{/^begin acl/!p}' "$tmpl" |
            sed "s|^exim_path = .*|exim_path = $exim|"
        echo "log_file_path = $dir/log/%slog"
        echo "pid_file_path = $dir/exim.pid"
        sed -n '/^begin acl/,/^begin routers/{/^begin routers/!p}' "$tmpl"
        cat "$HERE/exim-routers.conf"
        sed -n '/^begin retry/,$p' "$tmpl"
    } >"$conf"
    chmod 644 "$conf"
    echo "$pers $addr" >"$dir/instance"

    # Namespace entry script: private bind mounts, then exec the daemon in the foreground.
    cat >"$dir/ns-exec.sh" <<EOF
#!/bin/sh
set -e
for f in passwd group resolv.conf hosts; do mount --bind "$dir/etc/\$f" "/etc/\$f"; done
# libidn12 is not installed on the host: load it from the extracted tree.
LD_LIBRARY_PATH="$dir/root/usr/lib/x86_64-linux-gnu"; export LD_LIBRARY_PATH
exec "$exim" -C "$conf" -bdf -oX 25 -oP "$dir/exim.pid"
EOF
    chmod 755 "$dir/ns-exec.sh"
    setsid unshare -m --propagation private -- "$dir/ns-exec.sh" \
        </dev/null >"$dir/daemon.out" 2>&1 9>&- &
    echo $! >"$dir/daemon.pid"
    local i
    for i in $(seq 200); do
        banner_ok "$addr" && break
        if ! pid_alive "$(cat "$dir/daemon.pid")"; then
            cat "$dir/daemon.out" "$dir"/log/*log >&2 2>/dev/null || true
            do_stop "$name"
            die "exim exited before answering on $addr:25 (output above)"
        fi
        sleep 0.1
    done
    if ! banner_ok "$addr"; then
        cat "$dir/daemon.out" "$dir"/log/*log >&2 2>/dev/null || true
        do_stop "$name"
        die "exim never sent 220 on $addr:25 within 20 s"
    fi
    log "$name ($pers) up on $addr:25 as $host in $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s; logs in $dir/log, config $conf"
}

CONF_FILE=exim.conf
NEEDS=()
main "$@"
