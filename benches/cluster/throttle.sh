#!/usr/bin/env bash
# Cluster-wide throttling, on loopback: three example gateways sharing one configuration
# (PostgreSQL) and one Redis (`--throttle redis://… --throttle-nodes 3`); a MOCK API with a
# throttling policy of LIMIT requests per minute; wrk drives all three nodes at once for
# DURATION. Counts 200s and 429s per node and asserts, for the one minute window the run stays
# in, that the cluster admitted at most LIMIT (overshoot 0) and at least
# LIMIT - (3 - 1) * (BATCH - 1) (the documented shortfall bound). First, what a request well
# under its limit pays: node 0's p99 on an API with no policy against one whose limit (10^9 a
# minute, counted in Redis) is never near (target: at most 100 us more).
#
#   benches/cluster/throttle.sh                          # LIMIT=1000 DURATION=5s
#   SKIP_BUILD=1 GATEWAY_BIN=target/debug/examples/gateway benches/cluster/throttle.sh
#
# Needs psql and a PostgreSQL it may create a throwaway database in (dropped at the end), a
# Redis (REDIS; keys under a prefix of this run's own, deleted at the end), redis-cli, wrk
# (installed with apt-get when missing) and taskset. Results go to target/load/throttle/.
DURATION=${DURATION:-5s} # before lib.sh, whose default is 10s
source "$(dirname "${BASH_SOURCE[0]}")/../load/lib.sh"

LIMIT=${LIMIT:-1000}
BATCH=${BATCH:-16}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${REDIS:-redis://127.0.0.1:6379}
PREFIX="sg_throttle_bench_$$:"
NODE_GW=(127.0.0.1:18280 127.0.0.1:18281 127.0.0.1:18282)
NODE_ADMIN=(127.0.0.1:19280 127.0.0.1:19281 127.0.0.1:19282)
OUT=$OUT/throttle

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; }
command -v psql >/dev/null || { log "psql is needed to create the throwaway database"; exit 1; }
command -v redis-cli >/dev/null || { log "redis-cli is needed to read and delete the counters"; exit 1; }
[ -n "${SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --example gateway)
rm -rf "$OUT" && mkdir -p "$OUT"

DB=sg_throttle_bench_$$
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
drop_all() {
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    redis-cli -u "$REDIS" --scan --pattern "${PREFIX}*" | xargs -r redis-cli -u "$REDIS" del >/dev/null 2>&1 || true
}
trap 'cleanup; drop_all' EXIT
STORE="$PG/$DB?sslmode=disable"

for i in 0 1 2; do
    mkdir -p "$OUT/node$i"
    RUST_LOG=${GATEWAY_LOG:-warn} taskset -c "${GATEWAY_CPUS:-$SERVER_CPU}" "$GATEWAY_BIN" \
        --listen "${NODE_GW[$i]}" --admin-listen "${NODE_ADMIN[$i]}" --data-dir "$OUT/node$i" \
        --store "$STORE" --admin-token "$TOKEN" --workers 1 \
        --throttle "$REDIS" --throttle-prefix "$PREFIX" --throttle-nodes 3 --throttle-batch "$BATCH" \
        >"$OUT/node$i.out" 2>"$OUT/node$i.err" &
    PIDS+=($!)
    wait_port "${NODE_ADMIN[$i]}" 3000
    wait_port "${NODE_GW[$i]}" 3000
done

# A MOCK API (no origin to load) through node 0's admin API; every node follows the store.
ADMIN=${NODE_ADMIN[0]}
BACKEND=$(admin POST /backends '{"name":"mocked","type":"MOCK"}' | field id)
admin PUT "/backends/$BACKEND/stages/RELEASE" '{"type":"MOCK","status":200,"body":"ok"}' >/dev/null
GROUP=$(admin POST /groups '{"name":"throttled"}' | field id)
API=$(admin POST /apis '{"group_id":"'"$GROUP"'","name":"limited","auth":"ANONYMOUS",
    "request":{"method":"GET","path":"/limited","mode":"PASSTHROUGH"},
    "backend":{"backend_id":"'"$BACKEND"'","path":"/"}}' | field id)
admin POST "/apis/$API/publish" '{"stage":"RELEASE"}' >/dev/null
for i in 0 1 2; do # published everywhere before the policy counts anything
    for _ in $(seq 500); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://${NODE_GW[$i]}/limited")" = 200 ] && break
        sleep 0.01
    done
done

# A request well under its limit: p99 with no policy, then with a roomy Redis-counted one.
for name in free roomy; do
    id=$(admin POST /apis '{"group_id":"'"$GROUP"'","name":"'"$name"'","auth":"ANONYMOUS",
        "request":{"method":"GET","path":"/'"$name"'","mode":"PASSTHROUGH"},
        "backend":{"backend_id":"'"$BACKEND"'","path":"/"}}' | field id)
    admin POST "/apis/$id/publish" '{"stage":"RELEASE"}' >/dev/null
    [ "$name" = roomy ] && ROOMY=$id
done
ROOMY_POLICY=$(admin POST /policies '{"name":"roomy","type":"THROTTLING","unit":"MINUTE","api_default":1000000000}' | field id)
admin POST "/apis/$ROOMY/policies" '{"policy_id":"'"$ROOMY_POLICY"'","stage":"RELEASE"}' >/dev/null
for name in free roomy; do
    for _ in $(seq 500); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://${NODE_GW[0]}/$name")" = 200 ] && break
        sleep 0.01
    done
done
: >"$OUT/latency.tsv"
for name in free roomy; do
    RESULTS=$OUT/latency.tsv wrk_run "$name" "http://${NODE_GW[0]}/$name"
done
awk -F'\t' '{ p99[$1] = $4; rps[$1] = $2 }
    END { printf "under the limit (node 0): p99 %.3f ms with no policy, %.3f ms with a Redis-counted one (%+.0f us); %.0f vs %.0f req/s\n",
          p99["free"], p99["roomy"], (p99["roomy"] - p99["free"]) * 1000, rps["free"], rps["roomy"] }' \
    "$OUT/latency.tsv" | tee "$OUT/summary.txt"

# The whole run stays in one minute window: start at a minute's beginning if too little is left.
secs=${DURATION%s}
left=$((60 - 10#$(date -u +%S)))
if ((left < secs + 15)); then
    log "waiting ${left}s for the next minute window"
    sleep "$left"
fi
POLICY=$(admin POST /policies '{"name":"clusterLimit","type":"THROTTLING","unit":"MINUTE","api_default":'"$LIMIT"'}' | field id)
admin POST "/apis/$API/policies" '{"policy_id":"'"$POLICY"'","stage":"RELEASE"}' >/dev/null
# Live on every node: one probe each until it carries RateLimit-Limit (each probe admitted
# counts against the window too, and is counted below).
probes_ok=0
for i in 0 1 2; do
    for _ in $(seq 500); do
        h=$(curl -s -D - -o /dev/null "http://${NODE_GW[$i]}/limited")
        if grep -qi '^ratelimit-limit:' <<<"$h"; then
            grep -q '^HTTP/1.1 200' <<<"$h" && probes_ok=$((probes_ok + 1))
            break
        fi
        sleep 0.01
    done
done

{
    machine_facts | head -2
    echo "wrk -t1 -c${CONNECTIONS_PER_NODE:-8} -d$DURATION on each of 3 nodes (core $CLIENT_CPU); nodes on core(s) ${GATEWAY_CPUS:-$SERVER_CPU}; gateway $GATEWAY_BIN"
} | tee "$OUT/facts.txt"
log "wrk on all three nodes for $DURATION, limit $LIMIT per minute"
for i in 0 1 2; do
    taskset -c "$CLIENT_CPU" wrk -t1 -c"${CONNECTIONS_PER_NODE:-8}" -d"$DURATION" --latency \
        "http://${NODE_GW[$i]}/limited" >"$OUT/wrk-node$i.txt" &
    WRKS+=($!)
done
for p in "${WRKS[@]}"; do wait "$p"; done

total_ok=$probes_ok
total_refused=0
for i in 0 1 2; do
    reqs=$(awk '/requests in/ { print $1 }' "$OUT/wrk-node$i.txt")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$OUT/wrk-node$i.txt")
    non2xx=${non2xx:-0}
    ok=$((reqs - non2xx))
    echo "node $i: $reqs requests, $ok admitted (200), $non2xx refused (429)" | tee -a "$OUT/summary.txt"
    total_ok=$((total_ok + ok))
    total_refused=$((total_refused + non2xx))
done
key=$(redis-cli -u "$REDIS" --scan --pattern "${PREFIX}*" | awk 'NR == 1')
granted=$(redis-cli -u "$REDIS" get "$key")
bound=$((LIMIT - 2 * (BATCH - 1)))
{
    echo "probes admitted: $probes_ok"
    echo "cluster: $total_ok admitted, $total_refused refused; Redis granted $granted of $LIMIT ($key)"
    echo "bounds: admitted <= $LIMIT (overshoot 0) and >= $bound (LIMIT - (3 - 1) * (BATCH - 1))"
} | tee -a "$OUT/summary.txt"
grep -h "throttl" "$OUT"/node*.err | head -5 || true
((total_ok <= LIMIT)) || { log "FAIL: $total_ok admitted > $LIMIT"; exit 1; }
((total_ok >= bound)) || { log "FAIL: $total_ok admitted < $bound"; exit 1; }
log "ok: $total_ok admitted of $LIMIT per minute across 3 nodes"
