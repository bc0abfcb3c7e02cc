#!/usr/bin/env bash
# Checks the load scripts without running any load: every script parses, and the round
# summary of run.sh takes its medians and per-round ratios as documented. Run by CI.
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
echo "load scripts: syntax and round summary ok"
