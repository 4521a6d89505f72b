#!/usr/bin/env bash
# The GPU device check (issue 23) in two short calls of the device tool (a lent H200: Python with its own
# torch, no network, 15 min of device time per session, the machine's start on top of each call).
#
# STATUS: NOT YET RUN ON A GPU. Written and checked on CPU only (DRY_RUN=1: tests/test_device_script.py).
#
#   Here, with network:   make device-prep        (.whl/tensorly wheel, data/cifar10-jpeg.tar.gz + sha256)
#   Call 1 (<= 5 min):    run command="bash scripts/device_gpu.sh 1" carry=[".whl","data"] timeout_s=330
#   Call 2 (only if >= 6 min of device time remain):
#                         run command="bash scripts/device_gpu.sh 2" carry=[".whl","data"] timeout_s=330
#   Sizes on the command line, after the call number (python -m gross.bench.device --help), e.g.
#                         bash scripts/device_gpu.sh 1 --networks 1,8,32 --images 20000 --epochs 2
#
# Call 1: install (carried wheels), preflight (CUDA, compute mode, /dev/shm, tensorly, data checksum; env.txt),
#         tests (the CUDA unit tests), ksweep (aggregate 4-layer training throughput, K = 1/8/32/64 at once),
#         individual (45 individual fine-tunes at once: seconds for 100 epochs).
# Call 2: install, paper (2 epochs of each stage of the 4-layer `paper` part: base, GroSS fine-tune, 64 individual
#         fine-tunes at once; per-epoch seconds, images/s), estimate (the full `paper` profile extrapolated:
#         paper_gpu_estimate.{csv,md,meta.json}; commit it under results/).
# Each stage runs under `timeout` inside the call's budget (TOTAL_S, default 290 s); every benchmark row is
# appended to $OUT/device_rows.csv and printed the moment it is measured, so a stage stopped at its limit
# keeps the rows it finished. Back in $OUT: device_rows.csv, summary.csv (stage, status, rc, wall_s,
# budget_s), device_gpu.log, env.txt + pytest_cuda.xml (call 1), paper_gpu_estimate.* (call 2).
#
# Settings: TOTAL_S (default 290), BUDGET_<STAGE> (PREFLIGHT 45, TESTS 60, KSWEEP 120, INDIVIDUAL 60, PAPER 230,
# ESTIMATE 20), SKIP_STAGES (comma list), PYTHON (default python3), DRY_RUN=1 (CPU plumbing check with tiny sizes, OUT defaults to
# runs/device_out).
set -uo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
cd "$REPO" || exit 2

CALL=${1:-}
if [[ $CALL != 1 && $CALL != 2 ]]; then
  echo "usage: bash scripts/device_gpu.sh 1|2 [python -m gross.bench.device options]" >&2
  exit 2
fi
shift
export DRY_RUN=${DRY_RUN:-0}
export PY=${PYTHON:-python3}
export SITE=${SITE:-/tmp/site}
export TOTAL_S=${TOTAL_S:-290}
export MIN_STAGE_S=${MIN_STAGE_S:-10}
export GROSS_DATA=${GROSS_DATA:-$REPO/data/cifar10-jpeg.tar.gz}
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
SIZES=()
if [[ $DRY_RUN == 1 ]]; then
  export OUT=${OUT:-$REPO/runs/device_out}
  SIZES=(--device cpu --allow-cpu --networks 1,2 --individual 2 --paper-networks 2 --images 64 --epochs 1)
fi
SIZES+=("$@")  # the command line's sizes win (argparse: the last value counts)
if [[ -z ${OUT:-} ]]; then
  echo "device_gpu.sh: OUT is not set: it is the device tool's output folder; on a CPU use DRY_RUN=1" >&2
  exit 2
fi
mkdir -p "$OUT" || exit 2
export WORK=${WORK:-$(mktemp -d /tmp/gross-device.XXXXXX)}
# the copy on the device has no .git: provenance takes the commit make device-prep recorded
GROSS_GIT_COMMIT=${GROSS_GIT_COMMIT:-$(sed -n 's/^commit=//p' data/device-prep.txt 2>/dev/null)}
export GROSS_GIT_COMMIT

T0=$(date +%s)
FAILED=0
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[device_gpu $(date -u +%H:%M:%S)] $*"; }
record() {  # name status rc wall budget note
  echo "$1,$2,$3,$4,$5,\"${6//\"/\'}\"" >>"$OUT/summary.csv"
  log "stage $1: $2 (rc $3, $4 s of $5 s) $6"
  [[ $2 == ok || $2 == skipped ]] || FAILED=1
}
bench() { "$PY" -m gross.bench.device "$1" --out "$OUT" "${SIZES[@]}" "${@:2}"; }

stage_preflight() {
  {
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname) nproc $(nproc) DRY_RUN=$DRY_RUN"
    command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi
    cat data/device-prep.txt 2>/dev/null || echo "(no data/device-prep.txt: run make device-prep)"
    "$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  } >"$OUT/env.txt" 2>&1
  bench preflight --budget-s "$1"
}
stage_tests() {
  local files
  files=$(grep -l "skipif(not torch.cuda.is_available()" tests/test_*.py | tr '\n' ' ')
  [[ -n $files ]] || { echo "no test file has a skipif-no-CUDA test"; return 1; }
  # shellcheck disable=SC2086 # one word per file
  "$PY" -m pytest -q -p no:cacheprovider -m "not slow" -k cuda -rA --junitxml="$OUT/pytest_cuda.xml" $files
}
stage_ksweep() { bench ksweep --budget-s "$(($1 - 15))"; }
stage_individual() { bench individual --budget-s "$1"; }
stage_paper() { bench paper --budget-s "$(($1 - 15))"; }
stage_estimate() { bench estimate; }

run_stage() {  # name cap
  local name=$1 left budget t rc status
  if [[ ",${SKIP_STAGES:-}," == *",$name,"* ]]; then
    record "$name" skipped "" 0 0 "SKIP_STAGES=$SKIP_STAGES"
    return 0
  fi
  left=$((T0 + TOTAL_S - $(date +%s)))
  budget=$(($2 < left ? $2 : left))
  if ((budget < MIN_STAGE_S)); then
    record "$name" skipped "" 0 "$budget" "only ${budget} s left of TOTAL_S=$TOTAL_S"
    return 1
  fi
  log "== stage $name: budget ${budget} s =="
  t=$(now)
  timeout -k 5 "$budget" bash -c "$(declare -f bench "stage_$name"); SIZES=(${SIZES[*]@Q}); stage_$name $budget"
  rc=$?
  case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
  record "$name" "$status" "$rc" "$(elapsed "$t")" "$budget" ""
}

main() {
  log "call $CALL: DRY_RUN=$DRY_RUN TOTAL_S=$TOTAL_S OUT=$OUT sizes: ${SIZES[*]}"
  echo "stage,status,rc,wall_s,budget_s,note" >"$OUT/summary.csv"
  local t
  t=$(now)
  if compgen -G ".whl/*.whl" >/dev/null; then
    if timeout 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl; then
      record install ok 0 "$(elapsed "$t")" 60 "$(printf '%s ' .whl/*.whl)-> $SITE"
    else
      record install failed 1 "$(elapsed "$t")" 60 "pip install of .whl/*.whl into $SITE failed"
    fi
  else
    record install skipped "" 0 60 "no .whl/*.whl (make device-prep, carry .whl); tensorly must be importable"
  fi
  export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  if [[ $DRY_RUN != 1 ]] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)'; then
    record cuda failed 3 0 0 "torch.cuda.is_available() is False for $PY: this script needs the lent GPU machine (device tool's run); on a CPU use DRY_RUN=1"
    return 3
  fi
  if [[ $CALL == 1 ]]; then
    run_stage preflight "${BUDGET_PREFLIGHT:-45}"
    run_stage tests "${BUDGET_TESTS:-60}"
    run_stage ksweep "${BUDGET_KSWEEP:-120}"
    run_stage individual "${BUDGET_INDIVIDUAL:-60}"
  else
    run_stage paper "${BUDGET_PAPER:-230}"
    run_stage estimate "${BUDGET_ESTIMATE:-20}"
  fi
  log "call $CALL done in $(($(date +%s) - T0)) s"
  column -s, -t <"$OUT/summary.csv" 2>/dev/null || cat "$OUT/summary.csv"
  [[ -f $OUT/device_rows.csv ]] && column -s, -t <"$OUT/device_rows.csv" 2>/dev/null | cut -c1-160
  return "$FAILED"
}

rm -f "$OUT"/{summary.csv,device_gpu.log,env.txt,pytest_cuda.xml,device_rows.csv,paper_gpu_estimate.csv,paper_gpu_estimate.md,paper_gpu_estimate.meta.json}
main 2>&1 | tee -a "$OUT/device_gpu.log"
exit "${PIPESTATUS[0]}"
