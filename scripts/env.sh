# Source this before running cargo by hand: `source scripts/env.sh`.
# The Makefile exports the same variables; this is for interactive work.
_dp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LIBTORCH_USE_PYTORCH=1
export VIRTUAL_ENV="$_dp_root/.venv"
export PATH="$_dp_root/.venv/bin:$PATH"
export DPERSONA_PYTHON="$_dp_root/.venv/bin/python"
unset _dp_root
