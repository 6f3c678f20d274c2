#!/usr/bin/env bash
# A 3-node MariaDB Galera cluster on loopback, for tests and benchmarks (`make cluster-up`,
# `make cluster-down`). Each node has its own data dir, config, socket, pid file and ports, so it
# never touches the system MariaDB on 3306:
#
#   node  SQL   Galera (gmcast)  IST   SST (rsync)
#   n1    3307  4567             4568  4569
#   n2    3308  4577             4578  4579
#   n3    3309  4587             4588  4589
#
# Usage: galera-cluster.sh up | down | status | urls | kill N | start N
#   up       start the nodes that are not running (no-op when all three are up); with no node
#            running, a fresh cluster is made (old data removed) and n1 bootstraps it
#   down     stop the nodes this script started, by their pid files
#   kill N   SIGKILL node N (fault tests)
#   start N  start node N as a joiner: its last position is recovered first, so it rejoins by
#            IST when the others still have the writes it missed
#
# The nodes run as the `mysql` user when the script runs as root: rsync SST fails as root (the
# rsync daemon drops to `nobody`). Facts behind the config: issue 12.
set -euo pipefail

DIR=${MALL_GALERA_DIR:-/tmp/mall-galera}
NODES=(1 2 3)
PROVIDER=/usr/lib/galera/libgalera_smm.so

sql_port() { echo $((3306 + $1)); }
gm_port() { echo $((4557 + 10 * $1)); }
ist_port() { echo $((4558 + 10 * $1)); }
sst_port() { echo $((4559 + 10 * $1)); }
cnf() { echo "$DIR/n$1.cnf"; }
pidfile() { echo "$DIR/n$1/mariadbd.pid"; }
url() { echo "mysql://root@127.0.0.1:$(sql_port "$1")"; }

RUN_AS=()
OWNER=$(id -un)
if [ "$(id -u)" = 0 ]; then
    OWNER=mysql
    RUN_AS=(--user=mysql)
fi

log() { echo "galera: $*" >&2; }

install_packages() {
    local missing=()
    [ -f "$PROVIDER" ] || missing+=(galera-4)
    command -v rsync >/dev/null 2>&1 || missing+=(rsync)
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    command -v ss >/dev/null 2>&1 || command -v lsof >/dev/null 2>&1 || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

alive() {
    local pid
    pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # A pid reused by another process, or a killed node not yet reaped, is not a running node.
    grep -q "n$1.cnf" "/proc/$pid/cmdline" 2>/dev/null || return 1
    case "$(ps -o stat= -p "$pid" 2>/dev/null)" in Z*) return 1 ;; esac
}

q() { # q NODE SQL: one value, or nothing when the node does not answer
    mariadb -uroot -h127.0.0.1 -P"$(sql_port "$1")" --connect-timeout=2 -N -B -e "$2" 2>/dev/null
}

status_of() { q "$1" "SHOW STATUS LIKE '$2'" | awk '{print $2}'; }

write_config() {
    local n=$1 addresses
    addresses="127.0.0.1:$(gm_port 1),127.0.0.1:$(gm_port 2),127.0.0.1:$(gm_port 3)"
    mkdir -p "$DIR/n$n/data"
    cat >"$(cnf "$n")" <<EOF
[mysqld]
datadir=$DIR/n$n/data
socket=$DIR/n$n/mariadbd.sock
pid-file=$(pidfile "$n")
log-error=$DIR/n$n/error.log
port=$(sql_port "$n")
bind-address=127.0.0.1
skip-name-resolve
max_connections=600
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
innodb_flush_log_at_trx_commit=2
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=mall_galera
wsrep_cluster_address=gcomm://$addresses
wsrep_node_name=n$n
wsrep_node_address=127.0.0.1:$(gm_port "$n")
wsrep_provider_options="base_port=$(gm_port "$n");gmcast.listen_addr=tcp://127.0.0.1:$(gm_port "$n");ist.recv_addr=127.0.0.1:$(ist_port "$n");gcache.size=256M"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$(sst_port "$n")
wsrep_slave_threads=2
EOF
    chown -R "$OWNER" "$DIR/n$n"
}

# start_node N [extra mariadbd args…]: runs mariadbd detached, its --defaults-file first (the
# SST script reads it; otherwise it reads /etc/mysql/my.cnf).
start_node() {
    local n=$1
    shift
    : >"$DIR/n$n/error.log"
    chown "$OWNER" "$DIR/n$n/error.log"
    setsid /usr/sbin/mariadbd --defaults-file="$(cnf "$n")" "${RUN_AS[@]}" "$@" \
        </dev/null >>"$DIR/n$n/stdout.log" 2>&1 &
}

wait_synced() { # wait_synced N SECONDS
    local n=$1 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        if [ "$(status_of "$n" wsrep_local_state_comment)" = Synced ] \
            && [ "$(status_of "$n" wsrep_ready)" = ON ]; then
            return 0
        fi
        if ! alive "$n" && [ -f "$(pidfile "$n")" ] && [ $SECONDS -gt $((deadline - $2 + 5)) ]; then
            break
        fi
        sleep 0.3
    done
    log "node n$n did not become Synced; the end of $DIR/n$n/error.log:"
    tail -n 30 "$DIR/n$n/error.log" >&2 || true
    return 1
}

# The position a stopped node last committed, so a restart can ask for IST instead of SST.
recover_position() {
    local n=$1 out
    out="$DIR/n$n/recover.log"
    : >"$out"
    chown "$OWNER" "$out"
    /usr/sbin/mariadbd --defaults-file="$(cnf "$n")" "${RUN_AS[@]}" --wsrep-recover \
        --log-error="$out" >/dev/null 2>&1 || true
    sed -n 's/.*WSREP: Recovered position: \([0-9a-f-]*:-\{0,1\}[0-9]*\).*/\1/p' "$out" | tail -n 1
}

join_node() {
    local n=$1 position
    write_config "$n"
    rm -f "$(pidfile "$n")"
    if [ -d "$DIR/n$n/data/mysql" ]; then
        position=$(recover_position "$n")
        if [ -n "$position" ]; then
            log "n$n: recovered position $position"
            start_node "$n" --wsrep_start_position="$position"
            return
        fi
    fi
    start_node "$n"
}

cluster_size() { status_of "$1" wsrep_cluster_size; }

print_urls() {
    for n in "${NODES[@]}"; do url "$n"; done
}

up() {
    install_packages
    local running=() n
    for n in "${NODES[@]}"; do alive "$n" && running+=("$n"); done
    if [ ${#running[@]} -eq 0 ]; then
        local started=$SECONDS
        log "starting a fresh 3-node cluster in $DIR"
        rm -rf "$DIR"
        mkdir -p "$DIR"
        chmod 755 "$DIR"
        for n in "${NODES[@]}"; do write_config "$n"; done
        mariadb-install-db --defaults-file="$(cnf 1)" "${RUN_AS[@]}" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$DIR/n1/install.log" 2>&1 || { cat "$DIR/n1/install.log" >&2; exit 1; }
        start_node 1 --wsrep-new-cluster
        wait_synced 1 60
        # The joiners copy n1 (rsync SST), users included: root@127.0.0.1 must exist first.
        mariadb -uroot --socket="$DIR/n1/mariadbd.sock" -e \
            "CREATE USER IF NOT EXISTS root@'127.0.0.1'; \
             GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;"
        for n in 2 3; do
            start_node "$n"
            wait_synced "$n" 90
        done
        log "cluster up in $((SECONDS - started)) s"
    else
        for n in "${NODES[@]}"; do
            if ! alive "$n"; then
                log "n$n is not running: starting it as a joiner"
                join_node "$n"
            fi
        done
        for n in "${NODES[@]}"; do wait_synced "$n" 90; done
    fi
    local size
    size=$(cluster_size 1)
    if [ "$size" != 3 ]; then
        log "wsrep_cluster_size is '$size', not 3"
        exit 1
    fi
    log "wsrep_cluster_size = 3; SQL on:"
    print_urls
}

down() {
    local n pid pids=()
    for n in "${NODES[@]}"; do
        if alive "$n"; then
            pid=$(cat "$(pidfile "$n")")
            kill -TERM "$pid"
            pids+=("$pid")
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    [ ${#pids[@]} -gt 0 ] && log "stopped ${#pids[@]} node(s)" || log "no node was running"
}

status() {
    local n
    for n in "${NODES[@]}"; do
        if alive "$n"; then
            echo "n$n $(url "$n") pid $(cat "$(pidfile "$n")") $(status_of "$n" wsrep_local_state_comment) cluster_size=$(cluster_size "$n")"
        else
            echo "n$n $(url "$n") stopped"
        fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    urls) print_urls ;;
    kill)
        if alive "${2:?node number}"; then kill -KILL "$(cat "$(pidfile "$2")")"; fi
        ;;
    start)
        alive "${2:?node number}" || { join_node "$2"; wait_synced "$2" 90; }
        ;;
    *)
        echo "usage: $0 up|down|status|urls|kill N|start N" >&2
        exit 2
        ;;
esac
