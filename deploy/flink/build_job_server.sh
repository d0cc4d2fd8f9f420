#!/usr/bin/env bash
# Builds a manifest-only ("thin") Beam Flink job-server jar: no classes of its own, just
#   Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver
#   Class-Path: every jar in LIB_DIR, relative to the output jar's folder
# so `java -jar OUT_JAR` (which is what Beam's Python FlinkRunner runs for --flink_job_server_jar)
# starts the job server on the jars deploy/flink/pom.xml fetched. See that pom for why.
#
#   deploy/flink/build_job_server.sh OUT_JAR LIB_DIR
set -euo pipefail
export LC_ALL=C  # byte-wise string slicing for the 72-byte manifest lines

if [[ $# -ne 2 ]]; then
    echo "usage: $0 OUT_JAR LIB_DIR" >&2
    exit 2
fi
out_jar=$1
lib_dir=$2
main_class=org.apache.beam.runners.flink.FlinkJobServerDriver

command -v jar >/dev/null || { echo "$0: the JDK 'jar' tool is not on PATH" >&2; exit 1; }
[[ -d $lib_dir ]] || { echo "$0: no lib dir $lib_dir (run the mvn fetch first)" >&2; exit 1; }

mkdir -p "$(dirname "$out_jar")"
out_dir=$(cd "$(dirname "$out_jar")" && pwd -P)
lib_abs=$(cd "$lib_dir" && pwd -P)

# Class-Path entries are URLs relative to the jar's folder; spaces would have to be %20-escaped.
rel_lib=$(realpath --relative-to="$out_dir" "$lib_abs")
shopt -s nullglob
jars=("$lib_abs"/*.jar)
[[ ${#jars[@]} -gt 0 ]] || { echo "$0: no jars in $lib_dir" >&2; exit 1; }
[[ $rel_lib != *" "* ]] || { echo "$0: lib path must not contain spaces: $rel_lib" >&2; exit 1; }
found=""
for j in "$lib_abs"/beam-runners-flink-*.jar; do
    if unzip -Z1 "$j" | grep -Fx "${main_class//.//}.class" >/dev/null; then found=$j; fi
done
[[ -n $found ]] || { echo "$0: $main_class not in $lib_dir/beam-runners-flink-*.jar" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The manifest spec allows at most 72 bytes per line; longer values continue on lines that start
# with one space. Write it wrapped so the jar tool (which also checks/wraps) takes it as it is.
classpath=""
for j in "${jars[@]}"; do
    classpath+="${classpath:+ }$rel_lib/$(basename "$j")"
done
# First line: "Class-Path: " + 60 bytes; continuation lines: one space + 71 bytes.
{
    echo "Manifest-Version: 1.0"
    echo "Main-Class: $main_class"
    line="Class-Path: $classpath"
    echo "${line:0:72}"
    rest=${line:72}
    while [[ -n $rest ]]; do
        echo " ${rest:0:71}"
        rest=${rest:71}
    done
} >"$work/MANIFEST.MF"

mkdir "$work/empty"
rm -f "$out_jar"
jar cfm "$out_jar" "$work/MANIFEST.MF" -C "$work/empty" .

# Check what the jar tool wrote: every line <= 72 bytes, and the Class-Path resolves to the jars.
unzip -p "$out_jar" META-INF/MANIFEST.MF >"$work/written.mf"
if awk '{ sub(/\r$/, "") } length($0) > 72 { bad = 1 } END { exit !bad }' "$work/written.mf"; then
    echo "$0: manifest has lines over 72 bytes" >&2
    exit 1
fi
written_cp=$(tr -d '\r' <"$work/written.mf" | awk '
    /^Class-Path: / { cp = substr($0, 13); on = 1; next }
    on && /^ / { cp = cp substr($0, 2); next }
    { on = 0 }
    END { print cp }')
[[ $written_cp == "$classpath" ]] || { echo "$0: Class-Path in the jar differs from the one written" >&2; exit 1; }
for entry in $written_cp; do
    [[ -f $out_dir/$entry ]] || { echo "$0: Class-Path entry $entry does not exist" >&2; exit 1; }
done
echo "$out_jar: Main-Class $main_class, Class-Path ${#jars[@]} jars in $rel_lib/"
