#!/usr/bin/env bash
# fio_compare.sh: measures vde's block devices against fio on the same file, in the same run.
#
# 4 KiB O_DIRECT random reads, one thread. fio (ioengine=io_uring at iodepth 1/8/32/128, plain and
# with fixedbufs+registerfiles, SQPOLL and batch-synchronous variants at 32, and ioengine=psync)
# and bench/blockdev_bench (every backend and batch size) take turns on one file: in each round
# every configuration of ours runs right next to the fio job it is compared with, and the order
# is reversed every other round. The report shows medians over the rounds, and each ratio is the
# median of the per-round ratios. Absolute figures on a shared machine drift; the ratios, whose
# two sides are measured seconds apart on the same file, are what to quote.
#
# Exits non-zero when a tool fails (fio, the benchmark, the file); a missed target is reported in
# the table, not in the exit status. Progress goes to stderr, and only when it is a terminal.
#
# Usage: bench/fio_compare.sh [-f FILE] [-s MIB] [-t SECONDS] [-r ROUNDS] [-b BENCH_BINARY]
#                             [-n NICE] [-k] [-o RAW_FILE]
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: fio_compare.sh [options]
  -f, --file PATH       test file on a disk file system (default: a new file beside the benchmark
                        binary, deleted at exit). An existing file is reused and kept.
  -s, --size MIB        file size in MiB (default 1024)
  -t, --seconds N       seconds per measurement (default 5)
  -r, --rounds N        rounds; each runs every configuration once, ours beside the fio job
                        it is compared with, in reverse order every other round; the table
                        shows medians (default 3)
  -b, --bench PATH      blockdev_bench binary (default: build-bench/bench/blockdev_bench, else
                        build/bench/blockdev_bench, under the repository)
  -n, --nice N          run fio and the benchmark under `nice -n N` (e.g. -10 as root, to
                        shield both alike from other work on a shared machine; default 0)
  -k, --keep            keep a test file this script created
  -o, --raw FILE        also write every measurement (key, round, IOPS, enters/1k) to FILE
  -h, --help            this text
EOF
}

die() {
  echo "fio_compare.sh: $*" >&2
  exit 1
}
progress() { if [[ -t 2 ]]; then echo "[fio_compare] $*" >&2; fi; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
file="" size_mib=1024 seconds=5 rounds=3 bench="" keep=0 niceness=0 raw=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -f | --file) file=${2:?}; shift 2 ;;
    -s | --size) size_mib=${2:?}; shift 2 ;;
    -t | --seconds) seconds=${2:?}; shift 2 ;;
    -r | --rounds | --repetitions) rounds=${2:?}; shift 2 ;;
    -b | --bench) bench=${2:?}; shift 2 ;;
    -n | --nice) niceness=${2:?}; shift 2 ;;
    -k | --keep) keep=1; shift ;;
    -o | --raw) raw=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || die "bad size '$size_mib' (MiB)"
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "bad seconds '$seconds'"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad rounds '$rounds'"
[[ $niceness =~ ^-?[0-9]+$ ]] || die "bad nice value '$niceness'"
run=(nice -n "$niceness")

command -v fio >/dev/null || die "fio not found (apt-get install fio)"
if [[ -z $bench ]]; then
  for b in "$repo/build-bench/bench/blockdev_bench" "$repo/build/bench/blockdev_bench"; do
    if [[ -x $b ]]; then bench=$b; break; fi
  done
fi
[[ -n $bench && -x $bench ]] || die "blockdev_bench not found: build it or pass --bench"

work=$(mktemp -d "${TMPDIR:-/tmp}/fio_compare.XXXXXX")
created=0
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ $created -eq 1 && $keep -eq 0 ]]; then rm -f -- "$file"; fi
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $file ]]; then file="$(dirname "$bench")/fio_compare.$$.dat"; fi
fstype=$(stat -f -c %T "$(dirname "$file")") || die "no directory for $file"
[[ $fstype != tmpfs && $fstype != ramfs ]] || die "$file is on $fstype: use a disk file system"
if [[ ! -e $file ]]; then
  progress "writing ${size_mib} MiB to $file"
  created=1
  "$bench" --vde_bench_file="$file" --vde_bench_file_mib="$size_mib" --vde_bench_prepare_only ||
    die "could not write $file"
fi
[[ -f $file ]] || die "$file is not a regular file"
file_bytes=$(stat -c %s "$file")
(( file_bytes >= size_mib * 1048576 )) || die "$file holds $file_bytes bytes, under $size_mib MiB"
size_bytes=$((size_mib * 1048576))

results="$work/results" # lines: <key> <round> <iops or -> <enters/1k or -> [error text]
: >"$results"

# fio_unit KEY ROUND: one fio job, configured by KEY; appends its read IOPS to $results.
fio_unit() {
  local key=$1 round=$2 depth=${1##*/} out
  local -a extra=(--ioengine=io_uring)
  case "$key" in
    fio_uring/*) ;;
    fio_uring_fixed/*) extra+=(--fixedbufs=1 --registerfiles=1) ;;
    fio_uring_sqpoll/*) extra+=(--fixedbufs=1 --registerfiles=1 --sqthread_poll=1) ;;
    # Like ReadBatch: submit the whole batch, wait for all of it, repeat.
    fio_uring_batchsync/*)
      extra+=(--iodepth_batch_submit="$depth" --iodepth_batch_complete_min="$depth"
        --iodepth_batch_complete_max="$depth") ;;
    fio_psync/*) extra=(--ioengine=psync) ;;
    *) die "unknown fio job $key" ;;
  esac
  progress "round $round: $key"
  out=$("${run[@]}" fio --name="${key//\//_}" --filename="$file" --size="$size_bytes" \
    --rw=randread --bs=4k --direct=1 --iodepth="$depth" --norandommap --randrepeat=0 --time_based \
    --runtime="$seconds" --numjobs=1 --output-format=terse --terse-version=3 "${extra[@]}" \
    2>"$work/fio.err") || die "fio $key failed: $(cat "$work/fio.err")"
  # Terse v3: field 5 is the error code, field 8 the read IOPS.
  echo "$out" | awk -F';' -v key="$key" -v round="$round" '
    $1 == "3" { if ($5 != 0) exit 1; print key, round, $8, "-"; found = 1 }
    END { if (!found) exit 1 }' >>"$results" || die "fio $key: unreadable output: $out"
}

# vde_unit MODE/BATCH ROUND: one blockdev_bench benchmark; appends IOPS and enters/1k I/Os, or
# the reason it was skipped.
vde_unit() {
  local key=$1 round=$2 json="$work/bench.json"
  progress "round $round: vde $key"
  "${run[@]}" "$bench" --vde_bench_file="$file" --vde_bench_file_mib="$size_mib" \
    --benchmark_filter="^RandRead4K/${key%/*}/batch:${key##*/}/" \
    --benchmark_min_time="$seconds" --benchmark_out="$json" --benchmark_out_format=json \
    >/dev/null 2>"$work/bench.err" || die "blockdev_bench failed: $(cat "$work/bench.err")"
  # Google Benchmark writes its JSON one key per line.
  awk -v key="$key" -v round="$round" '
    /"error_message":/ { s = $0; sub(/.*"error_message": "/, "", s); sub(/",?$/, "", s); err = s }
    /"items_per_second":/ { s = $0; sub(/.*: /, "", s); sub(/,$/, "", s); iops = s }
    /"enters_per_1k_io":/ { s = $0; sub(/.*: /, "", s); sub(/,$/, "", s); enters = s }
    END {
      if (err != "") print key, round, "-", "-", err
      else if (iops != "") print key, round, iops, (enters != "" ? enters : "-")
      else exit 1
    }' "$json" >>"$results" || die "blockdev_bench $key: no result in $json"
}

# One round: each of our configurations next to the fio jobs it is compared with, so that a
# ratio's two sides are measured seconds apart. Even rounds run the list backwards.
units=()
for d in 1 8 32 128; do
  units+=("fio:fio_uring_fixed/$d" "vde:io_uring_fixed/$d" "vde:io_uring/$d" "fio:fio_uring/$d")
  if [[ $d == 1 ]]; then units+=("fio:fio_psync/1"); fi
  units+=("vde:io_uring_sqpoll/$d" "vde:file/$d")
  if [[ $d == 32 ]]; then units+=("fio:fio_uring_sqpoll/32" "fio:fio_uring_batchsync/32"); fi
done

progress "file $file ($((file_bytes >> 20)) MiB), ${seconds}s per run, $rounds rounds"
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
for ((r = 1; r <= rounds; r++)); do
  order=("${units[@]}")
  if ((r % 2 == 0)); then
    order=()
    for ((i = ${#units[@]} - 1; i >= 0; i--)); do order+=("${units[i]}"); done
  fi
  for u in "${order[@]}"; do
    if [[ $u == fio:* ]]; then fio_unit "${u#fio:}" "$r"; else vde_unit "${u#vde:}" "$r"; fi
  done
done

if [[ -n $raw ]]; then cp -- "$results" "$raw" || die "cannot write $raw"; fi

# Exit status: a benchmark error other than an unavailable SQPOLL is a tool failure.
failed=0
while read -r key _ _ _ err; do
  if [[ -n $err && $key != io_uring_sqpoll/* ]]; then failed=1; fi
done <"$results"

# The report. Medians over rounds; a ratio is the median of the per-round ratios of two
# measurements taken next to each other.
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
awk -v nproc="$(nproc)" -v kernel="$(uname -r)" -v fiov="$(fio --version)" -v file="$file" \
  -v load="$load_start" -v load_end="$load_end" -v niceness="$niceness" \
  -v mib="$((file_bytes >> 20))" -v secs="$seconds" -v rounds="$rounds" '
  {
    if ($3 != "-") { iops[$1, $2] = $3 + 0; has[$1] = 1 }
    if ($4 != "-") { ent[$1] = ent[$1] " " $4 }
    if (NF > 4 && !($1 in err)) { e = $5; for (i = 6; i <= NF; i++) e = e " " $i; err[$1] = e }
  }
  function median(list,   v, n, i, j, t) {
    n = split(list, v, " ")
    if (n == 0) return -1
    for (i = 2; i <= n; i++) {
      t = v[i] + 0
      for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
      v[j + 1] = t
    }
    return (n % 2) ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  function med(k,   r, l) {
    l = ""
    for (r = 1; r <= rounds; r++) if ((k, r) in iops) l = l " " iops[k, r]
    return median(l)
  }
  function ratios(a, b,   r, l) {  # the per-round ratios a / b, space-separated
    l = ""
    for (r = 1; r <= rounds; r++) {
      if ((a, r) in iops && (b, r) in iops && iops[b, r] > 0) l = l " " iops[a, r] / iops[b, r]
    }
    return l
  }
  function ratio(a, b) { return median(ratios(a, b)) }  # -1 when unknown
  function spread(a, b,   v, n, i, lo, hi) {  # "min-max" of the per-round ratios
    n = split(ratios(a, b), v, " ")
    if (n == 0) return "n/a"
    lo = hi = v[1] + 0
    for (i = 2; i <= n; i++) { if (v[i] + 0 < lo) lo = v[i] + 0; if (v[i] + 0 > hi) hi = v[i] + 0 }
    return sprintf("%.2f-%.2f", lo, hi)
  }
  function fmt(v) { return v < 0 ? "n/a" : sprintf("%.0f", v) }
  function fr(v) { return v < 0 ? "n/a" : sprintf("%.2f", v) }
  function ents(k) { return (k in ent) ? sprintf("%.1f", median(ent[k])) : "n/a" }
  function row(ours, ref, label,   note) {
    note = (ours in err) ? err[ours] : ""
    printf "| %-20s | %9s | %-22s | %9s | %7s | %9s | %9s | %s |\n", ours, fmt(med(ours)),
      label, fmt(med(ref)), fr(ratio(ours, ref)), spread(ours, ref), ents(ours), note
  }
  function target(text, a, b, min,   v) {
    v = ratio(a, b)
    printf "| %-62s | %8s | %9s | %-4s |\n", text, (v < 0 ? "n/a" : sprintf("%.2fx", v)),
      spread(a, b), (v < 0 ? "n/a" : (v >= min ? "PASS" : "FAIL"))
  }
  END {
    printf "4 KiB O_DIRECT random reads, 1 thread, %s MiB file %s; %ss per run; " \
      "medians of %s rounds; nice %s.\n", mib, file, secs, rounds, niceness
    printf "nproc %s, kernel %s, %s; load average %s at the start, %s at the end.\n\n",
      nproc, kernel, fiov, load, load_end
    print "| vde mode/batch       |  vde IOPS | fio engine/iodepth     |  fio IOPS | vde/fio |  min-max  | enters/1k | note |"
    print "|----------------------|----------:|------------------------|----------:|--------:|----------:|----------:|------|"
    split("1 8 32 128", depths, " ")
    for (i = 1; i <= 4; i++) {
      d = depths[i]
      row("io_uring_fixed/" d, "fio_uring_fixed/" d, "io_uring fixedbufs/" d)
      row("io_uring/" d, "fio_uring/" d, "io_uring/" d)
      # Like for like: fio waiting for the whole batch, as ReadBatch does.
      if (d == 32) row("io_uring_fixed/32", "fio_uring_batchsync/32", "io_uring batch-sync/32")
      # Against fio without SQPOLL: see fio_uring_sqpoll/32 in the list below for why.
      row("io_uring_sqpoll/" d, "fio_uring_fixed/" d, "io_uring fixedbufs/" d)
      row("file/" d, "fio_psync/1", "psync/1")
    }
    print ""
    print "| fio job                |  fio IOPS |"
    print "|------------------------|----------:|"
    n = split("fio_uring/1 fio_uring/8 fio_uring/32 fio_uring/128 fio_uring_fixed/1 " \
      "fio_uring_fixed/8 fio_uring_fixed/32 fio_uring_fixed/128 fio_uring_sqpoll/32 " \
      "fio_uring_batchsync/32 fio_psync/1", order, " ")
    for (i = 1; i <= n; i++) printf "| %-22s | %9s |\n", order[i], fmt(med(order[i]))
    print ""
    print "| target                                                         | measured |  min-max  | pass |"
    print "|----------------------------------------------------------------|---------:|----------:|------|"
    target("io_uring (fixed bufs) batch 32 >= 0.9x fio io_uring iodepth 32",
      "io_uring_fixed/32", "fio_uring/32", 0.9)
    target("  the same without fixed bufs", "io_uring/32", "fio_uring/32", 0.9)
    target("io_uring (fixed bufs) batch 32 >= 4x FileBlockDevice batch 32",
      "io_uring_fixed/32", "file/32", 4)
    # What the machine allows for the ratio above: fio against fio.
    printf "| %-62s | %8s | %9s | %-4s |\n", "  for scale: fio io_uring iodepth 32 / fio psync iodepth 1",
      (ratio("fio_uring/32", "fio_psync/1") < 0 ? "n/a" : \
        sprintf("%.2fx", ratio("fio_uring/32", "fio_psync/1"))),
      spread("fio_uring/32", "fio_psync/1"), "info"
    target("io_uring (fixed bufs) batch 1 >= 0.9x fio psync iodepth 1",
      "io_uring_fixed/1", "fio_psync/1", 0.9)
    printf "| %-62s | %8s | %9s | %-4s |\n",
      "io_uring_enter calls per 1000 I/Os, batch 32, no SQPOLL", ents("io_uring_fixed/32"), "",
      "info"
    printf "| %-62s | %8s | %9s | %-4s |\n",
      "io_uring_enter calls per 1000 I/Os, batch 32, SQPOLL", ents("io_uring_sqpoll/32"), "",
      (("io_uring_sqpoll/32" in err) ? "skip" : "info")
  }' "$results"

exit "$failed"
