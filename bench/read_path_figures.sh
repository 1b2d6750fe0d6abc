#!/usr/bin/env bash
# read_path_figures.sh: the figures of the issue "Batched reads, adaptivity and concurrency",
# each beside the baseline it is judged against, measured in the same run.
#
#   index_bench --benchmark_filter='Cold_(MultiGet64/|Scan(Seq|Random)/readahead:64/)'
#     cold MultiGet of 64 keys against the device's batches of 64 random 4 KiB reads, and cold
#     full scans against the device's sequential (1 MiB requests) and random (4 KiB, 64 at a
#     time) reads of the same blocks, interleaved with them (see the comment in index_bench.cpp)
#   store_bench --benchmark_filter='BM_(WarmGets|WarmScans100|LoadThreads)'
#     warm gets and 100-key scans, random loads (Put and WriteBatch of 100), one thread against
#     two, in alternating rounds, each round followed by the same threads spinning on pure CPU
#     work (cpu_2t_vs_1t: what the machine gave two threads over one at the time)
#
# Every benchmark runs --benchmark_repetitions times; the table shows medians over the
# repetitions (a ratio is the median of the per-repetition ratios, not a ratio of medians) and
# the range of the ratios.
# Exits non-zero when a benchmark fails; a missed target shows in the table only.
#
# Usage: bench/read_path_figures.sh [-b BUILD_DIR] [-r REPETITIONS] [-d DATA_DIR] [-n NICE]
#                                   [-o RAW_PREFIX]
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: read_path_figures.sh [options]
  -b, --build DIR        build directory holding bench/index_bench and bench/store_bench
                         (default: build-bench under the repository)
  -r, --repetitions N    repetitions of every benchmark (default 5)
  -d, --dir DIR          where the benchmarks put their files (VDE_BENCH_DIR; default: the build
                         directory). index_bench needs about 1 GiB there, store_bench 100 MiB.
  -n, --nice N           run the benchmarks under `nice -n N`. With N < 0 and root, each also runs
                         in a session of its own whose autogroup gets nice N: with autogroup
                         scheduling (Debian's default) a plain nice only counts within one's own
                         session, so it does not shield against other users' builds (default 0)
  -o, --raw PREFIX       keep the benchmarks' JSON output as PREFIX.index.json and
                         PREFIX.store.json, and their console output as PREFIX.*.log
  -h, --help             this text
Environment: VDE_BENCH_TREE_MB (512), VDE_BENCH_RANDOM_TREE_MB (384), VDE_BENCH_CACHE_MB (32)
size index_bench's trees and cache (see index_bench.cpp).
EOF
}

die() {
  echo "read_path_figures.sh: $*" >&2
  exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$repo/build-bench" reps=5 dir="" niceness=0 raw=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -b | --build) build=${2:?}; shift 2 ;;
    -r | --repetitions) reps=${2:?}; shift 2 ;;
    -d | --dir) dir=${2:?}; shift 2 ;;
    -n | --nice) niceness=${2:?}; shift 2 ;;
    -o | --raw) raw=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "bad repetition count '$reps'"
[[ $niceness =~ ^-?[0-9]+$ ]] || die "bad nice value '$niceness'"
for b in index_bench store_bench; do
  [[ -x "$build/bench/$b" ]] || die "no $build/bench/$b (cmake --build $build --target $b)"
done
dir=${dir:-$build}
[[ -d "$dir" ]] || die "no directory $dir"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME FILTER: one benchmark binary, JSON to $tmp/NAME.json, console to $tmp/NAME.log.
run() {
  local name=$1 filter=$2
  local cmd=("$build/bench/$name" "--benchmark_filter=$filter" "--benchmark_repetitions=$reps"
    --benchmark_display_aggregates_only=true "--benchmark_out=$tmp/$name.json"
    --benchmark_out_format=json)
  local status=0
  if [[ $niceness -lt 0 && $(id -u) -eq 0 ]] && command -v setsid >/dev/null &&
    [[ -w /proc/self/autogroup ]]; then
    VDE_BENCH_DIR="$dir" setsid -w sh -c 'echo "$0" > /proc/self/autogroup && exec nice -n "$0" "$@"' \
      "$niceness" "${cmd[@]}" >"$tmp/$name.log" 2>&1 || status=$?
  else
    VDE_BENCH_DIR="$dir" nice -n "$niceness" "${cmd[@]}" >"$tmp/$name.log" 2>&1 || status=$?
  fi
  if [[ -n $raw ]]; then
    cp "$tmp/$name.json" "$raw.${name%_bench}.json" 2>/dev/null || true
    cp "$tmp/$name.log" "$raw.${name%_bench}.log"
  fi
  if [[ $status -ne 0 ]] || ! grep -q '"name":' "$tmp/$name.json" 2>/dev/null ||
    grep -q '"error_occurred": true' "$tmp/$name.json"; then
    cat "$tmp/$name.log" >&2
    die "$name failed"
  fi
}

# The tree's state at the start: the commit, and whether anything differs from it.
tree_state() {
  echo "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [[ -n $(git -C "$repo" status --porcelain 2>/dev/null) ]] && echo ", working tree with uncommitted changes")"
}
state_start=$(tree_state)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
run index_bench 'Cold_(MultiGet64/|Scan(Seq|Random)/readahead:64/)'
run store_bench 'BM_(WarmGets|WarmScans100|LoadThreads)'
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo "$state_start; binaries built $(date -u -r "$build/bench/index_bench" +%H:%MZ) (index_bench)," \
  "$(date -u -r "$build/bench/store_bench" +%H:%MZ) (store_bench)"
state_end=$(tree_state)
[[ $state_end == "$state_start" ]] || echo "(the tree changed during the run: now $state_end)"
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load average $load_start at the start, $load_end at the end;" \
  "medians of $reps repetitions; nice $niceness"
grep -h '^index_bench:' "$tmp/index_bench.log" || true
echo
# The JSON holds one "key": value per line; aggregate rows are named <benchmark>_median.
cat "$tmp/index_bench.json" "$tmp/store_bench.json" | awk -v reps="$reps" '
  /^ *"name":/ { n = $0; sub(/.*"name": "/, "", n); sub(/",?$/, "", n); next }
  /^ *"[^"]+": -?[0-9.e+-]+,?$/ {
    k = $0; sub(/^ *"/, "", k); sub(/".*/, "", k)
    v = $0; sub(/.*: /, "", v); sub(/,$/, "", v)
    b = n; sub(/_(mean|median|stddev|cv)$/, "", b); sub(/\/(min_time|iterations|real_time).*/, "", b)
    if (n !~ /_(mean|median|stddev|cv)$/) {  # one repetition: its range, and with one, its value
      if (!((b, k) in lo) || v + 0 < lo[b, k]) lo[b, k] = v + 0
      if (!((b, k) in hi) || v + 0 > hi[b, k]) hi[b, k] = v + 0
      if (reps == 1) val[b, k] = v + 0
    } else if (n ~ /_median$/) {
      val[b, k] = v + 0
    }
  }
  function ratio_range(b, k) {
    return reps == 1 ? sprintf("%.2f", val[b, k]) : sprintf("%.2f (%.2f-%.2f)", val[b, k], lo[b, k], hi[b, k])
  }
  function row(fig, med, base, ratio, target, result, note) {
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", fig, med, base, ratio, target, result, note
  }
  function judge(r, t) { return r >= t ? "PASS" : "MISS" }
  # A scan per page: time on its thread (of which in reads it made itself: read-ahead makes
  # most), and the whole process CPU time (its thread, the read-ahead threads, interrupts).
  function scan_note(b) {
    return sprintf("per page %.1f us on the scan'"'"'s thread (%.1f in its own reads), %.1f us of CPU in all",
                   val[b, "io_us/page"] + val[b, "non_io_us/page"], val[b, "io_us/page"],
                   val[b, "all_cpu_us/page"])
  }
  function kilo(x) { return sprintf("%.0fK", x / 1000) }
  function mega(x) { return sprintf("%.2fM", x / 1e6) }
  END {
    print "| figure | median | baseline (same run) | ratio (min-max) | target | result | notes |"
    print "|---|---:|---:|---:|---:|---|---|"
    b = "BM_Cold_MultiGet64/1"
    row("cold MultiGet, 64 keys (keys/s)", kilo(val[b, "keys/s"]),
        kilo(val[b, "device_IOPS"]) " IOPS (device, 64 x 4 KiB random)",
        ratio_range(b, "ratio_vs_device"), "0.80", judge(val[b, "ratio_vs_device"], 0.8),
        sprintf("%.2f misses/key; per key %.1f us in reads (device: %.1f us/read), %.1f us outside; %.2f (%.2f-%.2f) of the device landing its reads in a fresh stretch of a cache-sized buffer each batch (%s IOPS); %.2f (%.2f-%.2f) of the device whose reads are checksummed after each batch (%s IOPS)",
                val[b, "misses/key"], val[b, "io_us/key"], val[b, "device_us/read"],
                val[b, "non_io_us/key"], val[b, "ratio_vs_spread"], lo[b, "ratio_vs_spread"],
                hi[b, "ratio_vs_spread"], kilo(val[b, "device_spread_IOPS"]),
                val[b, "ratio_vs_used"], lo[b, "ratio_vs_used"], hi[b, "ratio_vs_used"],
                kilo(val[b, "device_used_IOPS"])))
    b = "BM_Cold_MultiGet64/0"
    row("cold, 64 Gets one at a time (keys/s)", kilo(val[b, "keys/s"]),
        kilo(val[b, "device_IOPS"]) " IOPS (device, as above)",
        ratio_range(b, "ratio_vs_device"), "-", "info", "what a peer engine does")
    b = "BM_Cold_ScanSeq/readahead:64"
    row("cold full scan, key-order load (MiB/s)", sprintf("%.0f", val[b, "scan_MiB/s"]),
        sprintf("%.0f", val[b, "seq1M_MiB/s"]) " MiB/s (device, 1 MiB x 8 sequential)",
        ratio_range(b, "ratio_vs_device"), "0.70", judge(val[b, "ratio_vs_device"], 0.7),
        sprintf("%.2fx device 4 KiB x 64 sequential, %.2fx 256 KiB x 1; %s (device: 1 MiB %.1f, 4 KiB %.1f us)",
                val[b, "ratio_vs_seq4K"], val[b, "ratio_vs_seq256K"], scan_note(b),
                val[b, "seq1M_us/page"], val[b, "seq4K_us/page"]))
    b = "BM_Cold_ScanRandom/readahead:64"
    row("cold full scan, random-order load (MiB/s)", sprintf("%.0f", val[b, "scan_MiB/s"]),
        sprintf("%.0f", val[b, "rand4K_MiB/s"]) " MiB/s (device, 4 KiB x 64 random)",
        ratio_range(b, "ratio_vs_device"), "0.70", judge(val[b, "ratio_vs_device"], 0.7),
        sprintf("%s (device: %.1f us)", scan_note(b), val[b, "rand4K_us/page"]))
    b = "BM_WarmGets"
    row("warm gets, 1 thread (keys/s)", kilo(val[b, "keys/s_1t"]), "660K (LMDB, reference, not this run)",
        sprintf("%.2f", val[b, "keys/s_1t"] / 660000), "1.00", "ref", "")
    split("BM_WarmGets:warm gets|BM_WarmScans100:warm 100-key scans|BM_LoadThreads/put:random load, Put|BM_LoadThreads/batch100:random load, WriteBatch of 100", rows, "|")
    for (i = 1; i <= 4; i++) {
      split(rows[i], p, ":")
      b = p[1]
      f = b ~ /WarmScans/ ? mega(val[b, "keys/s_2t"]) : kilo(val[b, "keys/s_2t"])
      g = b ~ /WarmScans/ ? mega(val[b, "keys/s_1t"]) : kilo(val[b, "keys/s_1t"])
      row(p[2] ", 2 threads (keys/s)", f, g " (1 thread)", ratio_range(b, "ratio_2t_vs_1t"),
          b ~ /Load/ ? "~1" : "-", "info",
          sprintf("machine gave 2 threads %.2fx 1 (pure CPU, same rounds); CPU per key %.2f us (1 thread), %.2f us (2); context switches per 1000 keys %.1f, %.1f",
                  val[b, "cpu_2t_vs_1t"], val[b, "cpu_us/key_1t"], val[b, "cpu_us/key_2t"],
                  val[b, "switches/1k_1t"], val[b, "switches/1k_2t"]))
    }
  }'
