#!/usr/bin/env bash
# Builds everything a GPU host needs to run our tests and benchmarks, into one folder that travels with the device
# tool's `carry` (the GPU hosts have no Java, no Maven and no network):
#
#   dist/facm-bundle/
#     runtime/                          jlink'd JDK 25, only the modules the jars need
#     facm-engine.jar                   runnable engine (fatbins + JCuda's driver binding inside)
#     facm-engine-tests.jar             test classes and test resources
#     junit-platform-console-standalone-6.0.1.jar
#     benchmarks.jar                    JMH benchmarks (bench/)
#     reference/*.py                    PyTorch reference scripts
#     run-gpu-suite.sh                  what to run on the GPU host
#     BUNDLE.txt                        commit, build time, modules, kernel build, sizes
#
# Usage: tools/make-bundle.sh [--no-bench] [--skip-build] [--out DIR]
#   --no-bench     leave out benchmarks.jar (a test-only bundle; faster to build)
#   --skip-build   reuse the jars already in target/ and bench/target/ (after an earlier full run)
#   --out DIR      bundle folder (default dist/facm-bundle; anything there is replaced)
#   --pack         also write DIR.tar.xz (xz shrinks the runtime and jars to ~60 %) and check that against the limit
#                  instead: carry the .tar.xz and unpack it on the GPU host first (the command the script prints)
#   --lean         leave the test fixtures (src/test/resources/fixtures, ~5 MB) out of facm-engine-tests.jar and the
#                  bundled Fashion-MNIST (facm/data/fashion-mnist, 4.4 MB) out of facm-engine.jar: for a bundle that travels with
#                  the repository (the device tool carries both, 64 MiB in all); run-gpu-suite.sh and
#                  tools/gpu-training-run.sh then put the checkout's src/test/resources and src/main/resources on
#                  the class path instead
# Extra Maven arguments come from FACM_MVN_ARGS, e.g. FACM_MVN_ARGS=-o for an offline build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist/facm-bundle"
pack=0
with_bench=1
build=1
lean=0
junit_version=6.0.1
# The 64 MiB the device tool carries must also hold the repository's tracked files: keep the bundle well below it.
limit_bytes=$((60 * 1000 * 1000))

while [ $# -gt 0 ]; do
  case "$1" in
    --no-bench) with_bench=0 ;;
    --lean) lean=1 ;;
    --pack) pack=1 ;;
    --skip-build) build=0 ;;
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-bundle: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

fail() { echo "make-bundle: $*" >&2; exit 1; }
step() { echo "==> $*"; }

# ---------------------------------------------------------------- tools: JDK 25 (with jlink and jdeps) and Maven
JAVA_HOME=$("$root/tools/find-jdk.sh") || fail "no JDK 25 found (see the message above); it is needed to build and to jlink the runtime"
export JAVA_HOME PATH="$JAVA_HOME/bin:$PATH"
for t in jlink jdeps jar; do
  [ -x "$JAVA_HOME/bin/$t" ] || fail "$JAVA_HOME is a JDK without bin/$t; install a full JDK 25 (e.g. temurin-25-jdk)"
done
if [ "$build" = 1 ]; then
  command -v mvn >/dev/null 2>&1 || fail "Apache Maven ('mvn') is not on PATH; install Maven 3.8+ (Debian/Ubuntu: apt-get install maven)"
fi
mvn_run() { # runs Maven through the project's wrapper (it pins the JDK); FACM_MVN_ARGS is word-split on purpose
  # shellcheck disable=SC2086
  "$root/tools/mvn.sh" -q -B ${FACM_MVN_ARGS:-} "$@"
}

engine_jar="$root/target/facm-engine.jar"
tests_jar="$root/target/facm-engine-thin-tests.jar"
bench_jar="$root/bench/target/benchmarks.jar"
junit_jar_name="junit-platform-console-standalone-$junit_version.jar"

# ---------------------------------------------------------------- build
if [ "$build" = 1 ]; then
  # install (not just package): the bench module depends on dev.facm:facm-engine from the local repository.
  # cuda.required=1: a bundle for a GPU host without compiled kernels is useless, so nvcc failing fails the build.
  step "building the engine (tools/mvn.sh -DskipTests -Dcuda.required=1 install)"
  mvn_run -DskipTests -Dcuda.required=1 install || fail "the engine build failed (see Maven's output above)"
  if [ "$with_bench" = 1 ]; then
    step "building the JMH benchmarks (bench/)"
    mvn_run -f "$root/bench/pom.xml" -DskipTests package || fail "the bench module build failed (see Maven's output above)"
  fi
fi
for f in "$engine_jar" "$tests_jar"; do
  [ -f "$f" ] || fail "$f is missing: run without --skip-build"
done
if [ "$with_bench" = 1 ] && [ ! -f "$bench_jar" ]; then
  fail "$bench_jar is missing: run without --skip-build, or pass --no-bench"
fi

# ---------------------------------------------------------------- assemble
step "assembling $out"
rm -rf "$out"
mkdir -p "$out/reference"
[ "$lean" = 1 ] || cp "$engine_jar" "$out/facm-engine.jar"
without() { # without SRC DST PREFIX: copy a jar leaving out the entries under PREFIX
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile
src, dst, prefix = sys.argv[1:4]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if not item.filename.startswith(prefix):
            zout.writestr(item, zin.read(item.filename))
PY
}
if [ "$lean" = 1 ]; then
  without "$tests_jar" "$out/facm-engine-tests.jar" fixtures/
  without "$engine_jar" "$out/facm-engine.jar" facm/data/fashion-mnist/
else
  cp "$tests_jar" "$out/facm-engine-tests.jar"
fi
[ "$with_bench" = 1 ] && cp "$bench_jar" "$out/benchmarks.jar"
cp "$root"/tools/reference/*.py "$out/reference/"
cp "$root/tools/run-gpu-suite.sh" "$out/run-gpu-suite.sh"
chmod +x "$out/run-gpu-suite.sh"

junit_cached="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$junit_version/$junit_jar_name"
if [ -f "$junit_cached" ]; then
  cp "$junit_cached" "$out/$junit_jar_name"
else
  step "fetching $junit_jar_name"
  mvn_run org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="org.junit.platform:junit-platform-console-standalone:$junit_version" -DoutputDirectory="$out" \
    || fail "could not fetch $junit_jar_name (offline? it must be in ~/.m2 or downloadable)"
fi
[ -f "$out/$junit_jar_name" ] || fail "$junit_jar_name did not arrive in $out"

# ---------------------------------------------------------------- runtime: jlink with what the jars need
# The platform.md base set, plus java.xml (JUnit writes its XML reports with it), jdk.zipfs (JUnit scans the tests
# jar through the "jar" file system, a service that jdeps cannot see) and whatever else jdeps finds.
base_modules="java.base,java.logging,java.management,jdk.management,jdk.unsupported,java.xml,jdk.zipfs"
# jdeps also lists modules that only optional code paths touch; each costs megabytes, so they stay out:
#   jdk.jfr       JUnit's Flight Recorder listener, loaded only when JFR is present
#   java.sql      Gson's java.sql.Date/Time adapters, which Gson skips when java.sql is absent
#   java.desktop  commons-math3's 2-D geometry (java.awt.geom), which JMH does not use
#   java.compiler Error Prone's annotations (javax.lang.model), needed only by javac
# The smoke checks below run the console launcher, JMH and the engine on the result.
optional_modules="jdk.jfr,java.sql,java.desktop,java.compiler"
jars=("$out/facm-engine.jar" "$out/facm-engine-tests.jar" "$out/$junit_jar_name")
[ "$with_bench" = 1 ] && jars+=("$out/benchmarks.jar")
found=$(jdeps --print-module-deps --ignore-missing-deps --multi-release 25 "${jars[@]}") \
  || fail "jdeps could not analyse ${jars[*]}"
modules=$(printf '%s\n' "${base_modules//,/$'\n'}" "${found//,/$'\n'}" | grep -v -x -F -e "${optional_modules//,/$'\n'}" \
  | sort -u | paste -sd, -)
left_out=$(printf '%s\n' "${found//,/$'\n'}" | grep -x -F -e "${optional_modules//,/$'\n'}" | sort -u | paste -sd, - || true)
step "jlink runtime with modules: $modules${left_out:+ (optional, left out: $left_out)}"
jlink --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --compress=zip-9 \
  --output "$out/runtime" || fail "jlink failed"
# Temurin's libjvm.so keeps its full symbol table (5 MB of 30); the dynamic symbols that linking and JNI need stay.
# Without it a JVM crash log names fewer HotSpot-internal frames, which is no loss for our purposes.
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$out/runtime/lib/server/libjvm.so" || fail "strip of the runtime's libjvm.so failed"
else
  echo "make-bundle: no 'strip' (binutils) here: libjvm.so keeps its symbol table (+5 MB)" >&2
fi

# ---------------------------------------------------------------- smoke checks (no GPU needed)
"$out/runtime/bin/java" -version >/dev/null 2>&1 || fail "the jlink'd runtime does not start"
"$out/runtime/bin/java" -jar "$out/$junit_jar_name" --version >/dev/null 2>&1 \
  || fail "the JUnit console launcher does not start on the jlink'd runtime (a module missing?)"
if [ "$with_bench" = 1 ]; then
  "$out/runtime/bin/java" -cp "$out/benchmarks.jar:$out/facm-engine.jar" org.openjdk.jmh.Main -l >/dev/null 2>&1 \
    || fail "benchmarks.jar cannot list its benchmarks on the jlink'd runtime (missing BenchmarkList or a module?)"
fi
# 'info' must work without a GPU too (it says why there is none); it loads the engine's classes and JCuda.
"$out/runtime/bin/java" --enable-native-access=ALL-UNNAMED -jar "$out/facm-engine.jar" info >/dev/null 2>&1 \
  || echo "make-bundle: WARNING: 'java -jar facm-engine.jar info' failed on the jlink'd runtime here" >&2

# ---------------------------------------------------------------- record what this bundle is
kernels_props=$(unzip -p "$out/facm-engine.jar" facm/kernels/kernels.properties 2>/dev/null || echo "kernels.properties: missing")
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=" (with uncommitted changes)"
{
  echo "facm-engine GPU bundle"
  echo "commit: $commit$dirty"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "jdk: $("$out/runtime/bin/java" -version 2>&1 | head -n1)"
  echo "runtime modules: $modules"
  echo "benchmarks: $([ "$with_bench" = 1 ] && echo included || echo 'left out (--no-bench)')"
  echo "--- kernels.properties"
  echo "$kernels_props"
  echo "--- sizes"
  (cd "$out" && du -sh runtime ./*.jar reference | sed 's/\.\///')
} > "$out/BUNDLE.txt"

# ---------------------------------------------------------------- size check
total_bytes=$(du -sb "$out" | cut -f1)
total_mib=$(awk -v b="$total_bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
sed -n '/^--- sizes/,$p' "$out/BUNDLE.txt" | sed 1d
echo "bundle: $out  total $total_bytes bytes = $total_mib MiB (limit $limit_bytes bytes)"
echo "total: $total_bytes bytes" >> "$out/BUNDLE.txt"
if grep -q '^built=false' <<<"$kernels_props"; then
  echo "make-bundle: WARNING: the kernels were not built ($(sed -n 's/^reason=//p' <<<"$kernels_props")): GPU tests will skip" >&2
fi
if [ "$pack" = 1 ]; then
  # The jlinked runtime's module image and the jars shrink to ~60 % under xz: a packed full bundle (benchmarks, tests,
  # data) travels next to the repository where the unpacked one would not fit the 64 MiB carry.
  packed="$out.tar.xz"
  tar -C "$(dirname "$out")" -cf - "$(basename "$out")" | xz -T0 -6 > "$packed.tmp" && mv -f "$packed.tmp" "$packed"
  packed_bytes=$(stat -c %s "$packed")
  echo "packed: $packed  $packed_bytes bytes; carry ${packed#"$root"/} and start the command with:"
  echo "  tar -xJf ${packed#"$root"/} -C $(dirname "${out#"$root"/}")"
  [ "$packed_bytes" -lt "$limit_bytes" ] || fail "the packed bundle is $packed_bytes bytes, over $limit_bytes"
elif [ "$total_bytes" -ge "$limit_bytes" ]; then
  fail "the bundle is $total_mib MiB, over the limit of $limit_bytes bytes: it must travel with the 64 MiB carry (try --pack)"
fi
echo "on the GPU host: bash ${out#"$root"/}/run-gpu-suite.sh [--bench] [--cpu-tests] \$OUT"
