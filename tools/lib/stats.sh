# Shell helpers shared by the benchmark scripts in tools/ (source it; bash only).

# median: the median of the numbers on stdin, one or more per line separated by blanks;
# empty input prints nothing.
median() {
    tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# pair_ratios: interleaved benchmark rounds, "PAIR <round> raw|endpoint|baseline <p50 µs>"
# lines on stdin (other lines ignored): each round's ratio endpoint/raw (and baseline/raw),
# then the median ratio over the rounds and its range — so the machine's swings between
# rounds show beside the overhead.
pair_ratios() {
    awk '$1 == "PAIR" && $3 != "counts" { value[$2, $3] = $4; if ($2 > rounds) rounds = $2 }
        function median(a, n,    i, j, t) {
           for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
           return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END {
           n = 0; m = 0
           for (r = 1; r <= rounds; r++) {
               raw = value[r, "raw"]; ep = value[r, "endpoint"]; old = value[r, "baseline"]
               if (raw == "" || ep == "") { printf "round %d: incomplete (raw %s, endpoint %s)\n", r, raw, ep; continue }
               line = sprintf("round %d: raw %8.2f us  endpoint %8.2f us  ratio %.2f", r, raw, ep, ep / raw)
               if (old != "") { line = line sprintf("   baseline %8.2f us  ratio %.2f", old, old / raw); oldratio[++m] = old / raw }
               print line; ratio[++n] = ep / raw
           }
           if (n > 0) { mid = median(ratio, n); printf "median ratio endpoint/rdma-pingpong p50 over %d pairs: %.2f (min %.2f, max %.2f; target <= 1.20, stretch <= 1.10)\n", n, mid, ratio[1], ratio[n] }
           if (m > 0) printf "median ratio baseline/rdma-pingpong p50 over %d pairs: %.2f\n", m, median(oldratio, m)
        }'
}
