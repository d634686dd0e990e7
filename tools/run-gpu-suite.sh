#!/usr/bin/env bash
# Runs the GPU test suite (and optionally the benchmarks) on a GPU host from a bundle made by tools/make-bundle.sh.
# Needs only what the bundle carries plus the NVIDIA driver: no Maven, no network, no installed Java.
#
# Usage: bash dist/facm-bundle/run-gpu-suite.sh [options] [OUTDIR]
#   OUTDIR          where logs, JUnit XML reports and benchmark JSON go (default ./out)
#   --bench         also run the JMH benchmarks (JSON to OUTDIR/jmh.json) and the PyTorch GEMM reference
#                   (OUTDIR/torch_gemm.json), then compare them
#   --cpu-tests     also run the tests not tagged gpu
#   --select REGEX  run only the test classes whose fully qualified name matches REGEX (JUnit's --include-classname,
#                   which replaces its default Test-name pattern), still within the tags above: a class,
#                   'facm\.model\.LightningDiTBf16GpuTest', a package, 'facm\.backend\.cuda\..*', or an alternation
#   --jmh "ARGS"    JMH arguments instead of the default "$default_jmh_args" (e.g. a benchmark regex first)
#   --bundle DIR    the bundle folder (default: the folder of this script, or dist/facm-bundle next to tools/)
#   --deadline S    finish everything, summary included, within S seconds (default 570; the device tool stops a
#                   command at 600 s): each stage gets at most what is left
# The summary table is printed last. Exit status 1 when a test failed, no tests were found, a GPU is present but
# every GPU test skipped, or info or JMH failed or ran out of time; else 0. A failing PyTorch reference (no torch,
# no GPU for it) only shows in the summary. The GPU tests run with -Dfacm.cuda.syncCheck=true, the CPU tests without.
set -uo pipefail

default_jmh_args="GemmBenchmark -f 1 -wi 2 -i 3 -w 1s -r 1s -foe true"
jmh_args="$default_jmh_args"
out_arg="out"
bundle=""
run_bench=0
run_cpu_tests=0
select=""
deadline=570
junit_jar="junit-platform-console-standalone-6.0.1.jar"

while [ $# -gt 0 ]; do
  case "$1" in
    --bench) run_bench=1 ;;
    --cpu-tests) run_cpu_tests=1 ;;
    --select) [ $# -ge 2 ] || { echo "run-gpu-suite: --select needs a class-name regex" >&2; exit 2; }; select="$2"; shift ;;
    --jmh) jmh_args="$2"; shift ;;
    --bundle) bundle="$2"; shift ;;
    --deadline) deadline="$2"; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' | sed "s/\$default_jmh_args/$default_jmh_args/"; exit 0 ;;
    -*) echo "run-gpu-suite: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) out_arg="$1" ;;
  esac
  shift
done

started=$SECONDS
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$bundle" ]; then
  if [ -f "$here/runtime/bin/java" ]; then bundle="$here"; else bundle="$here/../dist/facm-bundle"; fi
fi
[ -f "$bundle/runtime/bin/java" ] || { echo "run-gpu-suite: no bundle at $bundle (runtime/bin/java missing): run tools/make-bundle.sh first" >&2; exit 2; }
# A copy that lost its execute bits would fail late (jspawnhelper starts JMH's forks): restore them when we may.
if [ ! -x "$bundle/runtime/bin/java" ] || [ ! -x "$bundle/runtime/lib/jspawnhelper" ]; then
  chmod u+x "$bundle"/runtime/bin/* "$bundle/runtime/lib/jspawnhelper" 2>/dev/null \
    || { echo "run-gpu-suite: $bundle/runtime has lost its execute bits and cannot be fixed (read-only?)" >&2; exit 2; }
fi
bundle=$(cd "$bundle" && pwd)
mkdir -p "$out_arg" || { echo "run-gpu-suite: cannot create $out_arg" >&2; exit 2; }
out=$(cd "$out_arg" && pwd)
cd "$bundle" || exit 2
java="$bundle/runtime/bin/java"
summary=()      # lines of the final table, in stage order
have_gpu=0      # set when nvidia-smi lists a GPU
failed=0

log() { echo; echo "==> $*"; }

# Seconds a stage may run: its own cap, but never past the deadline (keeping 15 s for the summary).
budget() {
  local cap=$1 left=$((deadline - (SECONDS - started) - 15))
  [ "$left" -lt "$cap" ] && cap=$left
  echo "$cap"
}

# run_stage NAME CAP LOGFILE CMD... : runs CMD under a timeout, output to the terminal and LOGFILE; sets $rc.
run_stage() {
  local name=$1 cap; cap=$(budget "$2"); local logfile=$3; shift 3
  if [ "$cap" -lt 10 ]; then
    echo "(no time left for $name before the ${deadline}s deadline)" | tee "$logfile"
    rc=124; return
  fi
  timeout --kill-after=10 "$cap" "$@" 2>&1 | tee "$logfile"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "run-gpu-suite: $name stopped after ${cap}s (timeout)" | tee -a "$logfile"
  fi
}

# "N tests successful" etc. from the console launcher's closing block.
junit_count() { sed -n "s/^\[ *\([0-9][0-9]*\) $2 *\]\$/\1/p" "$1" | tail -n1; }

# One summary line for a JUnit run, plus the distinct skip reasons from its XML report.
junit_summary() {
  local label=$1 logfile=$2 reports=$3 code=$4
  local ok fail ab sk cfail cab
  ok=$(junit_count "$logfile" "tests successful"); fail=$(junit_count "$logfile" "tests failed")
  ab=$(junit_count "$logfile" "tests aborted"); sk=$(junit_count "$logfile" "tests skipped")
  cfail=$(junit_count "$logfile" "containers failed"); cab=$(junit_count "$logfile" "containers aborted")
  local verdict="ok"
  if [ "$code" = 124 ] || [ "$code" = 137 ]; then verdict="TIMED OUT"
  elif [ "$code" = 2 ]; then verdict="NO TESTS FOUND"
  elif [ "$code" != 0 ]; then verdict="FAILED"
  elif [ "$label" = "gpu tests" ] && [ "$have_gpu" = 1 ] && [ "${ok:-0}" = 0 ]; then
    verdict="NONE RAN: a GPU is here but every GPU test skipped"
  fi
  [ "$verdict" = ok ] || failed=1
  summary+=("$(printf '%-12s %s passed, %s failed, %s skipped (%s aborted + %s disabled); containers: %s failed, %s aborted  [%s, exit %s]' \
    "$label" "${ok:-?}" "${fail:-?}" "$(( ${ab:-0} + ${sk:-0} ))" "${ab:-?}" "${sk:-?}" "${cfail:-?}" "${cab:-?}" "$verdict" "$code")")
  local xml reasons failures
  # Skip reasons from the ASCII tree: "name() [A] reason" (aborted by an assumption) or "[S] reason" (disabled).
  reasons=$(sed -n 's/.* \[[AS]\] \(.*\)$/\1/p' "$logfile" | cut -c1-160 | sort | uniq -c | sort -rn | head -n 5 | sed 's/^ *\([0-9]*\) /\1x /')
  if [ -n "$reasons" ]; then
    while IFS= read -r r; do summary+=("$(printf '%-12s   skipped %s' "" "$r")"); done <<<"$reasons"
  fi
  xml=$(cat "$reports"/*.xml 2>/dev/null | tr '\n' ' ')
  failures=$(grep -o '<testcase name="[^"]*" classname="[^"]*"[^>]*>[[:space:]]*<\(failure\|error\)' <<<"$xml" \
    | sed 's/<testcase name="\([^"]*\)" classname="\([^"]*\)".*/\2.\1/' | head -n 10)
  if [ -n "$failures" ]; then
    while IFS= read -r r; do summary+=("$(printf '%-12s   FAILED %s' "" "$r")"); done <<<"$failures"
  fi
}

# ---------------------------------------------------------------- the machine
log "GPUs (nvidia-smi -L)"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L 2>&1 | tee "$out/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee -a "$out/nvidia-smi.txt"
  gpu=$(nvidia-smi -L 2>/dev/null | head -n1 | sed 's/ (UUID.*//')
  nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]' && have_gpu=1
else
  echo "nvidia-smi not found: no NVIDIA driver on this machine" | tee "$out/nvidia-smi.txt"
  gpu="none (no nvidia-smi)"
fi
echo "bundle: $bundle"; sed -n '1,3p' "$bundle/BUNDLE.txt" 2>/dev/null
echo "cuBLAS libraries known to the loader: $(ldconfig -p 2>/dev/null | grep -o 'libcublas[A-Za-z]*\.so\.[0-9]*' | sort -u | paste -sd' ' - || true)"
summary+=("$(printf '%-12s %s' "GPU" "$gpu")")

# ---------------------------------------------------------------- engine info
log "java -jar facm-engine.jar info"
run_stage info 60 "$out/info.log" "$java" --enable-native-access=ALL-UNNAMED -jar facm-engine.jar info
[ "$rc" = 0 ] || failed=1
summary+=("$(printf '%-12s exit %s: %s' "info" "$rc" "$(grep -v -e '^WARNING' -e '^$' "$out/info.log" | head -n1 | cut -c1-140)")")
# info's gpu and kernels lines say whether this host can run the GPU tests at all.
while IFS= read -r line; do
  [ -n "$line" ] && summary+=("$(printf '%-12s   %s' "" "$(tr -s ' ' <<<"$line" | cut -c1-150)")")
done < <(grep -E '^(gpu|kernels|device|cuda|driver)[: ]' "$out/info.log" | head -n 6)

# ---------------------------------------------------------------- tests
# The GPU tests check every launch (syncCheck); the CPU tests run as under Maven's surefire (same flags, no syncCheck).
java_test_opts=(--enable-native-access=ALL-UNNAMED -Xss4m)
# A lean bundle (make-bundle.sh --lean) has no fixtures in its tests jar: take them from the checkout it sits in.
test_cp=facm-engine.jar:facm-engine-tests.jar
if [ -d "$bundle/../../src/test/resources/fixtures" ]; then
  test_cp="$test_cp:$(cd "$bundle/../../src/test/resources" && pwd):$(cd "$bundle/../../src/main/resources" && pwd)"
fi
junit_common=(execute --disable-banner --disable-ansi-colors --class-path "$test_cp"
  --scan-class-path=facm-engine-tests.jar --details=tree --details-theme=ascii --fail-if-no-tests)
if [ -n "$select" ]; then
  junit_common+=(--include-classname "$select")
  summary+=("$(printf '%-12s %s' "selected" "classes matching $select")")
fi

log "GPU tests (JUnit, --include-tag gpu)"
run_stage "GPU tests" 300 "$out/junit-gpu.log" "$java" -Dfacm.cuda.syncCheck=true "${java_test_opts[@]}" -jar "$junit_jar" "${junit_common[@]}" \
  --include-tag gpu --reports-dir "$out/junit"
junit_summary "gpu tests" "$out/junit-gpu.log" "$out/junit" "$rc"

if [ "$run_cpu_tests" = 1 ]; then
  log "CPU tests (JUnit, --exclude-tag gpu)"
  run_stage "CPU tests" 180 "$out/junit-cpu.log" "$java" "${java_test_opts[@]}" -jar "$junit_jar" "${junit_common[@]}" \
    --exclude-tag gpu --reports-dir "$out/junit-cpu"
  junit_summary "cpu tests" "$out/junit-cpu.log" "$out/junit-cpu" "$rc"
fi

# ---------------------------------------------------------------- benchmarks
if [ "$run_bench" = 1 ]; then
  if [ -f benchmarks.jar ]; then
    log "JMH benchmarks: $jmh_args"
    # shellcheck disable=SC2086  # jmh_args is a list of words on purpose
    # Native access comes from the jar's manifest here and from each benchmark's @Fork(jvmArgsAppend) in the forks.
    run_stage "JMH" 300 "$out/jmh.log" "$java" --sun-misc-unsafe-memory-access=allow -cp benchmarks.jar:facm-engine.jar org.openjdk.jmh.Main $jmh_args \
      -rf json -rff "$out/jmh.json"
    if [ "$rc" != 0 ]; then
      failed=1
      what="FAILED"; { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && what="TIMED OUT (no JSON; per-benchmark results are in jmh.log)"
      summary+=("$(printf '%-12s %s (exit %s), see jmh.log' "jmh" "$what" "$rc")")
      first_error=$(grep -m1 -E '^[a-zA-Z.]+(Exception|Error): ' "$out/jmh.log" | cut -c1-160)
      [ -n "$first_error" ] && summary+=("$(printf '%-12s   %s' "" "$first_error")")
    fi
  else
    summary+=("$(printf '%-12s not in this bundle (made with --no-bench)' "jmh")")
  fi

  log "PyTorch GEMM reference"
  if command -v python3 >/dev/null 2>&1; then
    run_stage "PyTorch GEMM" 120 "$out/torch_gemm.log" python3 reference/gemm_bench.py --json "$out/torch_gemm.json"
    [ "$rc" = 0 ] || summary+=("$(printf '%-12s exit %s, see torch_gemm.log: %s' "pytorch" "$rc" "$(tail -n1 "$out/torch_gemm.log" | cut -c1-120)")")
  else
    summary+=("$(printf '%-12s python3 not found: reference skipped' "pytorch")")
  fi
fi

# ---------------------------------------------------------------- summary, last
{
  echo
  echo "======================== facm GPU suite summary ========================"
  printf '%s\n' "${summary[@]}"
  if [ "$run_bench" = 1 ]; then
    echo "--- benchmarks (TFLOP/s = 2·m·n·k per GEMM / time; ratio = ours / PyTorch)"
    if command -v python3 >/dev/null 2>&1; then
      python3 reference/gemm_bench.py --compare "$out/jmh.json" "$out/torch_gemm.json" --gpu "$gpu" 2>&1
    elif [ -f "$out/jmh.log" ]; then
      sed -n '/^Benchmark  /,$p' "$out/jmh.log"
    fi
  fi
  echo "outputs: $out   elapsed: $((SECONDS - started)) s"
  if [ "$failed" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
} | tee "$out/summary.txt"
exit "$failed"
