# Shell helpers shared by the benchmark scripts in tools/ (source it; bash only).

# median: the median of the numbers on stdin, one or more per line separated by blanks;
# empty input prints nothing.
median() {
    tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
