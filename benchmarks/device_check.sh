#!/usr/bin/env bash
# One prepared check of the sweep program on an accelerator, about 8 minutes in all.
#
#   OUT=/some/dir PYTHONPATH=. bash benchmarks/device_check.sh          # on the GPU machine
#   OUT=/tmp/check SMOKE=1 bash benchmarks/device_check.sh              # rehearsal at smoke size (CPU: ~2 min)
#
# From the repository root (the package need not be installed: PYTHONPATH=. is enough).
# Writes into $OUT (at most 5 files, none in subfolders):
#   device_check.log             everything printed (nvidia-smi, jax devices, both tables)
#   sweep_program.json           benchmarks/sweep_program_bench.py: one row per precision:R in
#                                $PLAN order, rewritten after every row (a timeout keeps the rows done)
#   sweep_program_profile.json   one step of the R=10 float32 program: trace summary and XLA op view
#   profile_r10_float32.txt      the same as tables
#   trace_r10_float32.xplane.pb  the raw trace, only if at most 15 MiB
# Knobs (environment): PLAN, BUDGET_S (rows + evaluation, default 330), MAIN_TIMEOUT_S (400),
# PROFILE (10:float32), PROFILE_TIMEOUT_S (100), PYTHON (python), SMOKE (1: --smoke everywhere).
set -u
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder to write results into}"
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
SMOKE=${SMOKE:-0}
# Most informative first: one run (the baseline, and the sequential sweep), the table1
# group size (3) and all 30 runs in one program, in float32, then bfloat16 and tf32 at the
# same sizes; R = 10 (to interpolate the groups of 6) and R = 1 of the other precisions last.
DEFAULT_PLAN="float32:1,float32:3,float32:30,float32:10,bfloat16:3,bfloat16:30,tf32:3,tf32:30,bfloat16:10,tf32:10,bfloat16:1,tf32:1"
SMOKE_FLAG=""
if [ "$SMOKE" = 1 ]; then
    SMOKE_FLAG=--smoke
    DEFAULT_PLAN="float32:1,float32:3,bfloat16:3"
fi
PLAN=${PLAN:-$DEFAULT_PLAN}
BUDGET_S=${BUDGET_S:-330}
MAIN_TIMEOUT_S=${MAIN_TIMEOUT_S:-400}
PROFILE=${PROFILE:-10:float32}
PROFILE_TIMEOUT_S=${PROFILE_TIMEOUT_S:-100}
TAG=r${PROFILE/:/_}

limit() {  # limit SECONDS CMD...: SIGINT after SECONDS (the bench keeps its JSON), SIGKILL 20 s later
    local seconds=$1; shift
    if command -v timeout >/dev/null; then
        timeout --signal=INT --kill-after=20 "$seconds" "$@"
    else
        "$@"
    fi
}

main() {
    local start=$SECONDS status=0
    echo "== $(date -u +%FT%TZ) device check (SMOKE=$SMOKE), plan $PLAN, budget ${BUDGET_S} s"
    echo "== nvidia-smi"
    nvidia-smi 2>&1 || echo "(nvidia-smi not available)"
    echo "== jax"
    "$PY" -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, jax.default_backend()); print(jax.devices()); print(jax.devices()[0].memory_stats())" 2>&1

    echo "== sweep program ($(( SECONDS - start )) s)"
    limit "$MAIN_TIMEOUT_S" "$PY" benchmarks/sweep_program_bench.py $SMOKE_FLAG --plan "$PLAN" \
        --budget-s "$BUDGET_S" --out "$OUT/sweep_program.json" || status=$?
    echo "(exit status $status)"

    # Command buffers (CUDA graphs) trace as one op; without them every kernel shows.
    echo "== profile of one step, $PROFILE ($(( SECONDS - start )) s)"
    profile() {
        limit "$PROFILE_TIMEOUT_S" "$PY" benchmarks/sweep_program_bench.py $SMOKE_FLAG --plan "" \
            --profile "$PROFILE" --profile-text "$OUT/profile_${TAG}.txt" \
            --keep-trace "$OUT/trace_${TAG}.xplane.pb" --out "$OUT/sweep_program_profile.json"
    }
    local pstatus=0
    XLA_FLAGS="--xla_gpu_enable_command_buffer= ${XLA_FLAGS:-}" profile || pstatus=$?
    if [ "$pstatus" != 0 ] && ! grep -qs '"profile"' "$OUT/sweep_program_profile.json" && [ $(( SECONDS - start )) -lt 450 ]; then
        echo "(exit status $pstatus; again without the XLA flag)"
        pstatus=0
        profile || pstatus=$?
    fi
    [ "$pstatus" = 0 ] || status=$pstatus
    echo "(exit status $pstatus)"
    echo "== done in $(( SECONDS - start )) s; files in $OUT:"
    ls -l "$OUT"
    return "$status"
}

main 2>&1 | tee "$OUT/device_check.log"
exit "${PIPESTATUS[0]}"
