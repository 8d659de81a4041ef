#!/bin/sh
# Run a pipeline stage (what every cmd of dvc.yaml calls), or switch the profile:
#   sh scripts/stage.sh world            sh scripts/stage.sh --profile smoke
# Nothing is taken from the PATH but this shell: the Python is $S2I_PYTHON if set, else the
# project's .venv/bin/python (make env), else python3 on the PATH (e.g. an activated conda env).
# See s2i/stage.py.
cd "$(dirname "$0")/.." || exit 1
if [ -n "$S2I_PYTHON" ]; then py=$S2I_PYTHON
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else
  py=python3
  if ! "$py" -c "import papermill, s2i" 2>/dev/null; then
    echo "scripts/stage.sh: no .venv/bin/python (run: make env), and '$py' on the PATH cannot import" \
      "s2i and papermill (activate the s2i environment, or set S2I_PYTHON)" >&2
    exit 127
  fi
fi
exec "$py" -m s2i.stage "$@"
