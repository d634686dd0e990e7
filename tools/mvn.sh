#!/usr/bin/env bash
# Runs Maven with a JDK >= 25 found by tools/find-jdk.sh, from the repository root. All arguments go to Maven.
#   tools/mvn.sh -B verify      build, run the tests, make target/facm-engine.jar
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
JAVA_HOME=$("$root/tools/find-jdk.sh") || exit 1
export JAVA_HOME PATH="$JAVA_HOME/bin:$PATH"
if ! command -v mvn >/dev/null 2>&1; then
  echo "facm-engine builds with Apache Maven 3.8 or newer, and 'mvn' is not on PATH: install it (Debian/Ubuntu: apt-get install maven)." >&2
  exit 1
fi
cd "$root"
# Maven 3.8 on JDK 25 prints guava's sun.misc.Unsafe warnings; they are harmless.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
exec mvn "$@"
