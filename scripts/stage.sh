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
# glibc's malloc: freed blocks up to 32 MiB stay in the heap, and its top is kept up to 256 MiB, so
# torch's activations are reused instead of page-faulted in on every call (the same floats; the
# values of s2i.app.cli.keep_freed_memory, docs/benchmarks.md section 4). Values already set win.
: "${MALLOC_MMAP_THRESHOLD_:=33554432}" "${MALLOC_TRIM_THRESHOLD_:=268435456}"
export MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_
exec "$py" -m s2i.stage "$@"
