#!/usr/bin/env bash
# Checks the load scripts without running any load: every script parses, and the round
# summary of run.sh takes its medians and per-round ratios as documented, and the cluster
# benchmark's summary reads its inputs as documented. Run by CI.
source "$(dirname "$0")/lib.sh"

for f in "$ROOT"/benches/load/*.sh; do
    bash -n "$f"
done

dir=$(mktemp -d)
# Three rounds in rotated orders; the anonymous API's ratios to that round's nginx are 0.50,
# 0.80 and 0.75 (median 0.75, not the 20000 / 28000 of the median figures), its p99 ratios
# 3.00, 2.00 and 1.58; one of its runs had one non-2xx answer.
printf 'nginx\t30000\t1.0\t2.0\t0\t0\nstagegate anonymous\t15000\t2.0\t6.0\t0\t0\n' >"$dir/round-1.tsv"
printf 'stagegate anonymous\t20000\t1.5\t4.0\t1\t0\nnginx\t25000\t1.2\t2.0\t0\t0\n' >"$dir/round-2.tsv"
printf 'nginx\t28000\t1.1\t1.9\t0\t0\nstagegate anonymous\t21000\t1.4\t3.0\t0\t0\n' >"$dir/round-3.tsv"
got=$(print_summary "$dir"/round-1.tsv "$dir"/round-2.tsv "$dir"/round-3.tsv | tail -n 2)
rm -rf "$dir"
want='| nginx | 28000 | 1.00 (1.00–1.00) | 1.100 | 1.00 | 2.000 | 1.00 | 0 |
| stagegate anonymous | 20000 | 0.75 (0.50–0.80) | 1.500 | 1.27 | 4.000 | 2.00 | 1 |'
if [ "$got" != "$want" ]; then
    printf 'print_summary gave\n%s\nexpected\n%s\n' "$got" "$want" >&2
    exit 1
fi
# The cluster benchmark (benches/cluster/run.sh): it parses, and its summary reads churn's
# per-node lines and wrk's figures as documented.
for f in "$ROOT"/benches/cluster/*.sh; do
    bash -n "$f"
done
dir=$(mktemp -d)
printf 'steady\t20000\t1.0\t2.0\t0\t0\nduring changes\t18000\t1.2\t2.5\t0\t0\n' >"$dir/results.tsv"
cat >"$dir/churn.txt" <<'EOF_CHURN'
churn_changes=1000 churn_seconds=10.0 stable_checked=0 spurious_404=0 stable_other_errors=0
node=0 gw=http://a n=1000 timeouts=0 live_p50_ms=3.00 live_p99_ms=9.00 live_max_ms=12.00
node=1 gw=http://b n=1000 timeouts=0 live_p50_ms=2.00 live_p99_ms=5.00 live_max_ms=7.00
kind=all n=1000 admin_errors=0 timeouts=0 ack_p50_ms=1.50 ack_p99_ms=4.00 live_p50_ms=3.00 live_p99_ms=9.00 live_max_ms=12.00 after_ack_p50_ms=1.00 after_ack_p99_ms=5.00
EOF_CHURN
got=$(CLUSTER_SELFTEST=1 OUT=$dir bash -c 'source "$1"; summarize "$2/results.tsv" "$2/churn.txt"' _ "$ROOT/benches/cluster/run.sh" "$dir")
rm -rf "$dir"
want='data plane steady: 20000 req/s, p50 1.000 ms, p99 2.000 ms (1.00x steady), non-2xx (failed or spurious 404) 0, socket errors 0
data plane during changes: 18000 req/s, p50 1.200 ms, p99 2.500 ms (1.25x steady), non-2xx (failed or spurious 404) 0, socket errors 0
changes: 1000 in 10.0 s = 100 per second
change-to-live on node 0: p50 3.00 ms, p99 9.00 ms, max 12.00 ms, not live in 5 s 0
change-to-live on node 1 (the admin node): p50 2.00 ms, p99 5.00 ms, max 7.00 ms, not live in 5 s 0
admin commit: p50 1.50 ms, p99 4.00 ms; admin errors 0'
if [ "$got" != "$want" ]; then
    printf 'cluster summarize gave\n%s\nexpected\n%s\n' "$got" "$want" >&2
    exit 1
fi
echo "load scripts: syntax and round summary ok"
