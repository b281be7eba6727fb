# Shared helpers of the tests/mta/*.sh scripts (sourced; not run on its own).
# The sourcing script sets TOOL (its name, for messages), CACHE (.deb cache directory) and
# PACKAGES (the Debian packages it extracts), and may override any function after sourcing.

die() { echo "$TOOL: error: $*" >&2; exit 1; }
log() { echo "$TOOL: $*" >&2; }

usage() { # prints the script's usage lines (5-7 of its header)
    sed -n '5,7p' "$0" | sed 's/^#   //' >&2
    exit 2
}

need_root() { # [extra commands the script needs]
    [ "$(id -u)" = 0 ] || die "needs root (private mount namespace, port 25)"
    local c
    for c in apt-get dpkg-deb unshare setsid flock mount "$@"; do
        command -v "$c" >/dev/null || die "missing command: $c"
    done
}

# Fetches the .debs once into the cache; later runs find them there.
fetch_debs() {
    mkdir -p "$CACHE"
    local p missing=()
    for p in "${PACKAGES[@]}"; do
        compgen -G "$CACHE/${p}_*.deb" >/dev/null || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "downloading ${missing[*]} into $CACHE"
        (cd "$CACHE" && apt-get download "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
            die "apt-get download ${missing[*]} failed (run apt-get update?)"
        for p in "${missing[@]}"; do
            compgen -G "$CACHE/${p}_*.deb" >/dev/null || die "apt-get download did not produce $p"
        done
    fi
}

pid_alive() { # true while $1 exists and is not a zombie
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st:0:1}" != Z ]
}

banner_ok() { # $1 addr: true when ADDR:25 answers "220 " within ${BANNER_TIMEOUT:-2} s
    local line
    { exec 3<>"/dev/tcp/$1/25"; } 2>/dev/null || return 1
    IFS= read -r -t "${BANNER_TIMEOUT:-2}" line <&3 || { exec 3<&- 3>&-; return 1; }
    printf 'QUIT\r\n' >&3 2>/dev/null || true
    exec 3<&- 3>&-
    [[ $line == "220 "* ]]
}

# Runs cmd under the instance's lock (start and stop of one name never overlap).
with_lock() { # name cmd...
    mkdir -p "$BASE"; chmod 755 "$BASE"
    [ "$(stat -c %u "$BASE")" = 0 ] || die "$BASE must be owned by root"
    local name=$1; shift
    exec 9>"$BASE/.${TOOL%.sh}-$name.lock"
    flock -w 60 9 || die "timed out waiting for the lock of $name"
    # The lock file goes with the instance (also when start fails and exits via die).
    trap '[ -d "$BASE/'"$name"'" ] || rm -f "$BASE/.'"${TOOL%.sh}-$name"'.lock"' EXIT
    "$@"
}

# The command line: start | stop | status. Needs do_start and do_stop, CONF_FILE (the file that
# marks an instance directory) and NEEDS (extra commands start and stop require).
main() {
    case ${1:-} in
        start)
            [ $# -eq 4 ] || usage
            need_root "${NEEDS[@]}"; valid_name "$2"
            with_lock "$2" do_start "$2" "$3" "$4"
            ;;
        stop)
            [ $# -eq 2 ] || usage
            need_root "${NEEDS[@]}"
            if [ "$2" = all ]; then
                for d in "$BASE"/*/"$CONF_FILE"; do
                    [ -e "$d" ] || continue
                    n=$(basename "$(dirname "$d")")
                    (with_lock "$n" do_stop "$n")
                done
            else
                valid_name "$2"; with_lock "$2" do_stop "$2"
            fi
            ;;
        status)
            for d in "$BASE"/*/"$CONF_FILE"; do
                [ -e "$d" ] || continue
                d=$(dirname "$d"); n=$(basename "$d")
                [ $# -lt 2 ] || [ "$2" = "$n" ] || continue
                p=$(cat "$d/daemon.pid" 2>/dev/null || true)
                if [ -n "$p" ] && pid_alive "$p"; then s=running; else s=dead; fi
                echo "$n: $(cat "$d/instance") pid ${p:-?} $s"
            done
            ;;
        *) usage ;;
    esac
}
