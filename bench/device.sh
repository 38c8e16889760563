#!/usr/bin/env bash
# GPU tests + GPU bench of the compiled JAX path, in one command (< 5 minutes on one H200).
#
#   bash bench/device.sh            # from the repository root
#
# Needs only what an accelerator worker image has: python3 with JAX (+ its CUDA plugin), numpy,
# h5py, pytest. No TensorFlow: exactness is checked against the float64 reference read from the
# .h5 files. Models: $PLASTICS_MODEL_STORE, else ./shared/models (a copy inside the checkout, as
# a worker receives it), else ../shared/models. Results (JSON, JUnit XML, log) go to $OUT, else
# bench/results/device/. Without a GPU it runs the same on JAX's CPU backend (a dry run) and
# says so. Exit status: non-zero if the tests or the bench failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/results/device}
mkdir -p "$OUT"
if [ -z "${PLASTICS_SHARED:-}" ] && [ -d shared/models ]; then export PLASTICS_SHARED=$PWD/shared; fi
export PLASTICS_SHARED=${PLASTICS_SHARED:-$(cd .. && pwd)/shared}
export PLASTICS_MODEL_STORE=${PLASTICS_MODEL_STORE:-$PLASTICS_SHARED/models}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
LOG=$OUT/device.log

{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import jax, jaxlib, numpy, h5py; print('python', __import__('sys').version.split()[0], '| jax', jax.__version__, '| jaxlib', jaxlib.__version__, '| numpy', numpy.__version__, '| h5py', h5py.__version__); print('backend', jax.default_backend(), jax.devices())"
  "$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() != 'cpu' else 1)" \
    || echo "WARNING: JAX sees no accelerator: this is a CPU dry run; its figures are not GPU figures"
} 2>&1 | tee "$LOG"

timeout 150 "$PY" -m pytest -q -p no:cacheprovider --junitxml="$OUT/tests.xml" \
  tests/test_compiled_reference.py tests/test_models_compiled.py -k "float64 or buckets or device_settings" \
  2>&1 | tee -a "$LOG"
tests_rc=${PIPESTATUS[0]}

timeout 240 "$PY" -m bench.device --out "$OUT/device_bench.json" 2>&1 | tee -a "$LOG"
bench_rc=${PIPESTATUS[0]}

printf '{"tests_rc": %d, "bench_rc": %d, "finished": "%s"}\n' "$tests_rc" "$bench_rc" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$OUT/device_status.json"
echo "tests rc=$tests_rc bench rc=$bench_rc; results in $OUT" | tee -a "$LOG"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
