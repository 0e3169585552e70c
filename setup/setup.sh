#!/usr/bin/env bash
# Idempotent set-up of everything the local stack and the tests need:
#   1. .venv with Airflow (requirements-local.txt: the Astro image ships its own), the pinned
#      Airflow-side, job-side and dev packages (constraints.txt locks them),
#   2. the Delta Lake JVM jars in .local/jars (from Maven Central, once; never at Spark start),
#   3. Azurite (Azure Blob emulator) from npm in .local/node,
#   4. Debian's chromium + chromium-driver, for the headless browser test (tests/e2e).
# Steps 1-3 keep a stamp holding the hash of their inputs and are skipped while that hash is
# unchanged; step 4 is skipped while both binaries exist. A second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
STATE=.local
mkdir -p "$STATE/stamps"

say() { printf '[setup] %s\n' "$*"; }
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
# The same over each file's name and content: a file added to, dropped from or renamed in a step's
# inputs changes the hash even where the concatenated contents would not.
named_fingerprint() {
  local f
  for f in "$@"; do printf '%s\0' "$f"; cat "$f"; printf '\0'; done | sha256sum | cut -d' ' -f1
}
fresh() { [ -f "$STATE/stamps/$1" ] && [ "$(cat "$STATE/stamps/$1")" = "$2" ]; }
stamp() { echo "$2" > "$STATE/stamps/$1"; }

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "[setup] error: '$1' is required ($2)" >&2; exit 1; }
}
need "$PYTHON" "Python 3.11"
need java "a JDK 17+ for local Spark"
need mvn "Maven, to fetch the Delta Lake jars"
need npm "Node.js 20 + npm, to install Azurite"

# 1. Python packages -------------------------------------------------------------------------
py_inputs=(requirements.txt requirements-local.txt spark_jobs/requirements.txt requirements-dev.txt
  constraints.txt)
py_hash=$(named_fingerprint "${py_inputs[@]}")
if fresh python "$py_hash" && [ -x .venv/bin/python ]; then
  say "python packages: up to date"
else
  say "python packages: installing into .venv (first run takes about 3 minutes)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r requirements.txt -r requirements-local.txt -r spark_jobs/requirements.txt \
    -r requirements-dev.txt -c constraints.txt
  stamp python "$py_hash"
fi

# 2. Delta Lake jars -------------------------------------------------------------------------
jar_hash=$(fingerprint setup/jars/pom.xml)
if fresh jars "$jar_hash" && ls "$STATE"/jars/delta-spark_*.jar >/dev/null 2>&1; then
  say "delta jars: up to date"
else
  say "delta jars: fetching with Maven into $STATE/jars"
  rm -rf "$STATE/jars"
  # Only Delta's own artifacts: everything else they need (Hadoop, Jackson, Parquet, Scala)
  # ships with pyspark, and a second copy on the classpath would conflict.
  mvn -q -B -Dstyle.color=never -f setup/jars/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DincludeGroupIds=io.delta,io.unitycatalog \
    -DoutputDirectory="$ROOT/$STATE/jars"
  stamp jars "$jar_hash"
fi

# 3. Azurite ---------------------------------------------------------------------------------
az_hash=$(fingerprint setup/node/package.json setup/node/package-lock.json)
if fresh azurite "$az_hash" && [ -x "$STATE/node/node_modules/.bin/azurite" ]; then
  say "azurite: up to date"
else
  say "azurite: installing from npm into $STATE/node"
  mkdir -p "$STATE/node"
  cp setup/node/package.json setup/node/package-lock.json "$STATE/node/"
  (cd "$STATE/node" && npm ci --silent --no-audit --no-fund >/dev/null)
  stamp azurite "$az_hash"
fi

# 4. Chromium for the browser test -----------------------------------------------------------
# Debian's packages (not a browser build downloaded at run time): the browser and the
# chromedriver of the same version.
chrome_pkgs=(chromium chromium-driver)
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  say "chromium: up to date"
else
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    as_root=(sudo)  # asks for a password only on a terminal
  else
    echo "[setup] error: the browser test needs Debian's ${chrome_pkgs[*]} (/usr/bin/chromium," \
      "/usr/bin/chromedriver): install them as root with" \
      "'apt-get install ${chrome_pkgs[*]}'" >&2
    exit 1
  fi
  need apt-get "Debian's apt, to install ${chrome_pkgs[*]}"
  say "chromium: installing ${chrome_pkgs[*]} with apt-get (first run takes about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${chrome_pkgs[@]}" >/dev/null
fi
say "ready"
