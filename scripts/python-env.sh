# Sourced: sets VENV to a Python venv with stream-client-py's test and
# benchmark requirements, creating it on first use. The venv is cached
# outside the checkout (pyspark is ~850 MB and ~40 s to install), one per
# hash of the requirements, so a fresh clone reuses it:
#   ${SCORE_CACHE_DIR:-~/.cache/score}/venv-<hash>
# Also exports what PySpark needs to stay on loopback with Java 17.
requirements=stream-client-py/requirements-test.txt

# PySpark needs a JVM (17) and the venv module; install them if missing and
# allowed (root with apt-get), else say what is missing.
need_pkgs=()
command -v java >/dev/null 2>&1 || [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ] ||
  need_pkgs+=(openjdk-17-jre-headless)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_pkgs[*]} (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
  else
    echo "missing: ${need_pkgs[*]}; install them (e.g. apt-get install ${need_pkgs[*]})" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
cache=${SCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/score}
hash=$( (python3 --version; cat "$requirements") | sha256sum | cut -c1-12)
VENV=$cache/venv-$hash
# A venv counts only once complete (a run stopped half-way leaves no marker).
if [ ! -e "$VENV/.complete" ]; then
  echo "creating $VENV (pip install -r $requirements)" >&2
  rm -rf "$VENV"
  mkdir -p "$cache"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  touch "$VENV/.complete"
fi
export VENV
if [ -z "${JAVA_HOME:-}" ] && [ -d /usr/lib/jvm/java-17-openjdk-amd64 ]; then
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
export PYSPARK_PYTHON="$VENV/bin/python" PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
export SPARK_LOCAL_IP=127.0.0.1
