#!/usr/bin/env bash
# The cluster benchmark, on loopback: three example gateways on one PostgreSQL database; wrk
# drives node 0's data plane while examples/churn.rs makes CHANGES changes through node 1's
# admin API, each waited for on all three nodes' data planes at once. Reports change-to-live
# per node (p50, p99, max), admin commit latency, changes per second, failed requests and
# spurious 404s (wrk's non-2xx on an API that never changes), and the data plane's p99 during
# the changes against steady. Targets: p99 change-to-live on the other nodes <= 20 ms; 0 failed
# requests and 0 spurious 404s; data-plane p99 during the changes <= 1.5x steady.
#
#   benches/cluster/run.sh                       # CHANGES=1000
#   PG=postgres://postgres@127.0.0.1:5432 benches/cluster/run.sh
#
# Needs psql and a PostgreSQL it may create a throwaway database in (dropped at the end), wrk
# (installed with apt-get when missing) and taskset. Results go to target/load/cluster/.
source "$(dirname "${BASH_SOURCE[0]}")/../load/lib.sh"

CHANGES=${CHANGES:-1000}
# How long churn pauses between two polls of a node while waiting for a change to show (0: back
# to back, which loads the nodes' shared core with probes while wrk measures node 0).
POLL_US=${POLL_US:-0}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
NODE_GW=(127.0.0.1:18180 127.0.0.1:18181 127.0.0.1:18182)
NODE_ADMIN=(127.0.0.1:19180 127.0.0.1:19181 127.0.0.1:19182)
# The nodes share the server core; wrk, churn, the origins and PostgreSQL the other. NODE_CPUS
# gives each node its own CPU list instead, e.g. NODE_CPUS="0 1 1": node 0 (the one wrk drives)
# alone on core 0, as on a host of its own, the other two with the clients on core 1.
# PLACEBO=1 puts node 0 on a database of its own: the changes load the machine exactly as before
# but never reach the driven node, so the run tells the machine's share of the p99 from the
# share of following the changes.
read -r -a NODE_CPU <<<"${NODE_CPUS:-${GATEWAY_CPUS:-$SERVER_CPU} ${GATEWAY_CPUS:-$SERVER_CPU} ${GATEWAY_CPUS:-$SERVER_CPU}}"
OUT=$OUT/cluster

summarize() { # RESULTS.tsv CHURN.txt
    awk -F'\t' '
        { if (NR == 1) s99 = $4
          printf "data plane %s: %.0f req/s, p50 %.3f ms, p99 %.3f ms (%.2fx steady), non-2xx (failed or spurious 404) %d, socket errors %d\n", $1, $2, $3, $4, $4 / s99, $5, $6 }' "$1"
    # churn numbers the nodes it waits on from 0; with PLACEBO it does not wait on node 0
    awk -v first="$([ -n "${PLACEBO:-}" ] && echo 1 || echo 0)" '
        /^node=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                   n = v["node"] + first
                   printf "change-to-live on node %s%s: p50 %s ms, p99 %s ms, max %s ms, not live in 5 s %s\n", n, (n == 1 ? " (the admin node)" : ""), v["live_p50_ms"], v["live_p99_ms"], v["live_max_ms"], v["timeouts"] }
        /^kind=all / { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                   printf "admin commit: p50 %s ms, p99 %s ms; admin errors %s\n", v["ack_p50_ms"], v["ack_p99_ms"], v["admin_errors"] }
        /^churn_changes=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                   printf "changes: %d in %s s = %.0f per second\n", v["churn_changes"], v["churn_seconds"], v["churn_changes"] / v["churn_seconds"] }' "$2"
}

# benches/load/selftest.sh sources this file with CLUSTER_SELFTEST=1 to check summarize only.
if [ -n "${CLUSTER_SELFTEST:-}" ]; then return 0 2>/dev/null || exit 0; fi

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; }
command -v psql >/dev/null || { log "psql is needed to create the throwaway database"; exit 1; }
[ -n "${SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --example gateway --example origin --example churn)
rm -rf "$OUT" && mkdir -p "$OUT"
: >"$OUT/results.tsv"

DB=sg_cluster_bench_$$
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
drop_db() {
    for db in "$DB" "${DB}_placebo"; do
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap 'cleanup; drop_db' EXIT
STORE="$PG/$DB?sslmode=disable"
STORE0=$STORE
if [ -n "${PLACEBO:-}" ]; then
    psql -q "$PG/postgres" -c "CREATE DATABASE ${DB}_placebo" >/dev/null
    STORE0="$PG/${DB}_placebo?sslmode=disable"
fi

start_origin "$ORIGIN_A" origin-a "$CLIENT_CPU"
start_origin "$ORIGIN_B" origin-b "$CLIENT_CPU"
for i in 0 1 2; do
    mkdir -p "$OUT/node$i"
    RUST_LOG=${GATEWAY_LOG:-warn} taskset -c "${NODE_CPU[$i]}" "$GATEWAY_BIN" \
        --listen "${NODE_GW[$i]}" --admin-listen "${NODE_ADMIN[$i]}" --data-dir "$OUT/node$i" \
        --store "$([ "$i" = 0 ] && echo "$STORE0" || echo "$STORE")" --admin-token "$TOKEN" --workers 1 \
        >"$OUT/node$i.out" 2>"$OUT/node$i.err" &
    PIDS+=($!)
    wait_port "${NODE_ADMIN[$i]}" 1000
    wait_port "${NODE_GW[$i]}" 1000
done
# lib.sh's set-up talks to $ADMIN and checks $GW: node 1 makes every change, node 0 is driven.
GW=${NODE_GW[0]}
if [ -n "${PLACEBO:-}" ]; then
    # node 0's own copy of the APIs, in its own database; then the cluster's, through node 1
    ADMIN=${NODE_ADMIN[0]}
    setup_apis
    GW=${NODE_GW[1]}
fi
ADMIN=${NODE_ADMIN[1]}
setup_apis
for i in 1 2; do
    for _ in $(seq 500); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://${NODE_GW[$i]}/anon")" = 200 ] && break
        sleep 0.01
    done
done

machine_facts | tee "$OUT/facts.txt"
log "steady state on node 0"
RESULTS=$OUT/results.tsv wrk_run steady "http://${NODE_GW[0]}/anon"

log "$CHANGES changes through node 1 while wrk drives node 0"
taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d600s --latency "http://${NODE_GW[0]}/anon" \
    >"$OUT/wrk-changes.txt" &
WRK=$!
PIDS+=($WRK)
sleep 1
taskset -c "$CLIENT_CPU" "$BIN/churn" run --admin "http://${NODE_ADMIN[1]}" \
    $([ -n "${PLACEBO:-}" ] || echo --gw "http://${NODE_GW[0]}") --gw "http://${NODE_GW[1]}" --gw "http://${NODE_GW[2]}" \
    --poll-us "$POLL_US" --token "$TOKEN" --changes "$CHANGES" --toggles 0 --apis 0 \
    --backend "$BACKEND" --origin-a "http://$ORIGIN_A" --origin-b "http://$ORIGIN_B" \
    --probe /anon --app "$CHURN_APP" --app-key "$CHURN_KEY" --signed "$SIGNED_PATH" \
    | tee "$OUT/churn.txt"
kill -INT "$WRK"
wait "$WRK" || true
parse_wrk "during changes" <"$OUT/wrk-changes.txt" >>"$OUT/results.tsv"

summarize "$OUT/results.tsv" "$OUT/churn.txt" | tee "$OUT/summary.txt"
