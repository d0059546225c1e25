# Sourced by generate.sh and zoo.sh: `ensure_venv DIR REQUIREMENTS` builds
# (or rebuilds, when the pinned requirements changed) a venv at DIR.
ensure_venv() {
  local venv=$1 requirements=$2
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
  fi
}
