#!/usr/bin/env bash
# Prints the home of a JDK >= 25 (JAVA_HOME first, then the usual install folders), or explains what to install.
# Usage: JAVA_HOME=$(tools/find-jdk.sh) || exit 1
set -u
need=25

major_of() { # $1 = JDK home; prints its feature version or nothing
  local rel="$1/release" v=""
  [ -x "$1/bin/java" ] || return 0
  if [ -f "$rel" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$rel" | head -n1)
  fi
  if [ -z "$v" ]; then
    v=$("$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  fi
  echo "$v"
}

is_jdk() { [ -x "$1/bin/javac" ] || [ -x "$1/bin/jlink" ]; }

candidates=()
[ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
for d in /usr/lib/jvm/* /opt/java/* /opt/jdk* /usr/java/* "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/* \
         /Library/Java/JavaVirtualMachines/*/Contents/Home; do
  [ -d "$d" ] && candidates+=("$d")
done
if command -v javac >/dev/null 2>&1; then
  candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")")
fi

best="" bestv=0
for c in "${candidates[@]}"; do
  is_jdk "$c" || continue
  v=$(major_of "$c")
  [ -n "$v" ] || continue
  if [ "$v" -ge "$need" ] && [ "$v" -gt "$bestv" ]; then best="$c"; bestv="$v"; fi
  # JAVA_HOME wins when it is new enough
  if [ "$c" = "${JAVA_HOME:-}" ] && [ "$v" -ge "$need" ]; then best="$c"; break; fi
done

if [ -z "$best" ]; then
  cat >&2 <<MSG
facm-engine needs a JDK $need or newer and found none (looked at JAVA_HOME and /usr/lib/jvm, /opt/java, /opt/jdk*, ~/.sdkman, ~/.jdks).
Install Temurin $need, e.g. on Debian/Ubuntu: add the Adoptium apt repository (https://adoptium.net/installation/linux/)
and run 'apt-get install temurin-$need-jdk', or unpack https://adoptium.net/temurin/releases/?version=$need and set JAVA_HOME to it.
MSG
  exit 1
fi
echo "$best"
