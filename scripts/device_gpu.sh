#!/usr/bin/env bash
# Issue #13's GPU measurements in ONE call of the device tool (a lent nvidia-h200: Python 3.12 with its
# own torch; no network; 15 min of device time per session, <= 10 min per command).
#
# STATUS: NOT YET RUN ON A GPU. It was written in a session that was lent no device and checked on
# CPU only (bash -n, DRY_RUN=1 below). The first session lent a GPU runs it, fixes what breaks,
# records the numbers (results/benchmarks_gpu.csv, results/paper_gpu/) and updates this line.
#
# 1. Here, with network:  make device-prep
#      .whl/tensorly-*.whl (the one package gross imports that the device image lacks; pinned in
#      requirements.txt), data/cifar10-jpeg.tar.gz (from ../shared/data; DEVICE_DATA_SRC=... to
#      override) and data/device-prep.txt (commit id, sizes, sha256). Both folders are git-ignored.
# 2. Device tool:  run  command="bash scripts/device_gpu.sh"  carry=[".whl", "data"]  timeout_s=600
#
# Stages, in this order (the most valuable numbers first), each under `timeout` inside one overall
# budget (TOTAL_S, default 560 s), each one's files copied to $OUT as soon as it ends, so a call
# stopped at its limit still returns what was done:
#   install  carried wheels -> /tmp/site (pip --no-index --no-deps --target), PYTHONPATH=repo:/tmp/site
#   env      nvidia-smi, python/torch/CUDA and package versions, import of every gross module
#            (then: no CUDA -> clear error, exit 3, unless DRY_RUN=1)
#   tests    the CUDA unit tests: pytest -k cuda on the test files with skipif-no-CUDA tests
#   batched  python -m gross.bench --device cuda --only batched: aggregate 4-layer training throughput,
#            K = 8, 32, 64 networks at once (vmap) vs one at a time, 40k images (target >= 20x)
#   packed   python -m gross.bench --device cuda --only packed: 45 configurations fine-tuned at once
#            vs one at a time, 40k images (target: 45 x 100 epochs <= 3 min on one H200)
#            (gross.bench.jobs.JOB_PRESETS["default"]; 2 epochs each, the last one timed. Estimate from
#            the H100's 30-60k images/s for one network: 1-2 min for both rows if batching pays,
#            about 5 min if it does not; budgets 170 s + 150 s)
#   data     decode CIFAR-10 once into gross's cache (data/cifar10-*.pt), so the workers only read it
#   paper    scripts/paper_four_layer.py: the 4-layer part of the `paper` profile, steps in notebook
#            order, executor `local` with several workers on the one GPU; gets the time left (the
#            target is <= 10 min for all of it, more than one call leaves: with STAGES=env,data,paper
#            it gets about 8.5 min). Resumes from runs/device/ when the machine was still warm.
#
# Back in $OUT (the tool returns at most 8 files):
#   summary.csv             stage, status (ok | failed | timeout | skipped), rc, wall_s, budget_s, note
#   device_gpu.log          everything printed
#   env.txt                 nvidia-smi, versions, carried files, module imports
#   pytest_cuda.xml         JUnit report of the CUDA tests
#   benchmarks_gpu.csv      rows of `batched` and `packed` (columns of gross.bench.COLUMNS)
#   benchmarks_gpu.tar.gz   each bench run's .csv/.md/.meta.json and the merged benchmarks_gpu.{csv,md,meta.json}
#   paper_four_layer.tar.gz paper_outputs/{results,figures} (steps.jsonl: wall time per step), paper.log,
#                           jobs_done.txt (finished job outputs per step), gpu_util.csv (nvidia-smi every 5 s)
#
# Settings (environment variables):
#   STAGES          comma list, default env,tests,batched,packed,data,paper (install and the CUDA
#                   check always run; STAGES=none: only those)
#   TOTAL_S         overall budget in seconds (default 560; keep under the run's timeout_s)
#   BUDGET_<STAGE>  per-stage cap in s: ENV 60, TESTS 90, BATCHED 170, PACKED 150, DATA 90, PAPER (rest)
#   PAPER_PROFILE   default paper;  PAPER_STEPS default all (base,btd,gross,uniform,individual,search,ap,timing)
#   PAPER_SET       space-separated KEY=VALUE config overrides (no spaces inside a value),
#                   e.g. "four_layer__true_repeats=1 four_layer__repeats=2"
#   PAPER_EXECUTOR  GROSS_EXECUTOR of the paper stage,
#                   default name=local,workers=12,gpus=1,workers_per_gpu=12,threads=1 (16 cores there)
#   PAPER_FRESH=1   delete runs/device/<profile> first (default: resume what a warm machine left)
#   PYTHON          interpreter (default python3: the device image's, which holds torch)
#   DRY_RUN=1       plumbing check on a machine without CUDA: same stages, tiny settings (bench --quick
#                   on CPU, paper stage = smoke profile with 2 CPU workers), OUT defaults to runs/device_out
# shellcheck disable=SC2329  # the stage_* functions are called as "stage_$2" in a child (bash $0 __stage NAME)
set -uo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
cd "$REPO" || exit 2

export DRY_RUN=${DRY_RUN:-0}
export PY=${PYTHON:-python3}
export SITE=${SITE:-/tmp/site}
export TOTAL_S=${TOTAL_S:-560}
export RESERVE_S=${RESERVE_S:-15}   # kept for packaging after the last stage
export MIN_STAGE_S=${MIN_STAGE_S:-20}
export STAGES=${STAGES:-env,tests,batched,packed,data,paper}
export PAPER_PROFILE=${PAPER_PROFILE:-paper}
export PAPER_STEPS=${PAPER_STEPS:-base,btd,gross,uniform,individual,search,ap,timing}
export PAPER_SET=${PAPER_SET:-}
export PAPER_FRESH=${PAPER_FRESH:-0}
export PAPER_EXECUTOR=${PAPER_EXECUTOR:-name=local,workers=12,gpus=1,workers_per_gpu=12,threads=1}
export BENCH_DEVICE=cuda BENCH_MODE=""
export DATA_CACHE_DIR=""            # "" = gross's own cache folder (data/), where the pipeline's workers look
if [[ $DRY_RUN == 1 ]]; then
  export OUT=${OUT:-$REPO/runs/device_out}
  export BENCH_DEVICE=cpu BENCH_MODE=--quick
  export PAPER_PROFILE=${DRY_PAPER_PROFILE:-smoke}
  export PAPER_EXECUTOR=${DRY_PAPER_EXECUTOR:-name=local,workers=2,gpus=0,threads=1}
fi
if [[ -z ${OUT:-} ]]; then
  echo "device_gpu.sh: OUT is not set: it is the device tool's output folder; on a CPU use DRY_RUN=1" >&2
  exit 2
fi
export OUT
mkdir -p "$OUT" || exit 2
export WORK=${WORK:-$(mktemp -d /tmp/gross-device.XXXXXX)}
export GROSS_RUNS=${PAPER_RUNS:-$REPO/runs/device}
export GROSS_DATA=${GROSS_DATA:-$REPO/data/cifar10-jpeg.tar.gz}
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
# the copy on the device has no .git: provenance (meta.json "git") takes the commit make device-prep recorded
GROSS_GIT_COMMIT=${GROSS_GIT_COMMIT:-$(sed -n 's/^commit=//p' data/device-prep.txt 2>/dev/null)}
export GROSS_GIT_COMMIT
[[ $DRY_RUN == 1 ]] && export DATA_CACHE_DIR=$WORK/cifar-cache  # keep the 180 MB cache out of data/ here

# ----------------------------------------------------------------------------- helpers
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[device_gpu $(date -u +%H:%M:%S)] $*"; }

# ----------------------------------------------------------------------------- stages (run in a child: bash $SELF __stage NAME)
stage_env() {
  env_report 2>&1 | tee "$WORK/env.txt"
  return "${PIPESTATUS[0]}"
}

env_report() {
  {
    echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  DRY_RUN=$DRY_RUN"
    echo "# uname: $(uname -a)"
    echo "# nproc: $(nproc)  memory: $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi
      nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,utilization.gpu --format=csv
    else
      echo "# nvidia-smi: not found"
    fi
    echo "# data/device-prep.txt (written by make device-prep):"
    cat data/device-prep.txt 2>/dev/null || echo "(missing: run make device-prep before the run call)"
    echo "# carried wheels:" .whl/*.whl
    echo "# GROSS_DATA=$GROSS_DATA ($(stat -c %s "$GROSS_DATA" 2>/dev/null || echo missing) bytes)"
    echo "# python: $PY -> $(command -v "$PY")  PYTHONPATH=$PYTHONPATH"
  } 2>&1
  "$PY" - <<'EOF'
import importlib, importlib.metadata as md, pkgutil, platform, sys, traceback
print("python", platform.python_version(), sys.executable)
for pkg in ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "tabulate", "tqdm",
            "pytest", "tensorly", "submitit", "triton"):
    try:
        print(f"{pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        print(f"{pkg} not installed")
import torch
print("torch.cuda.is_available", torch.cuda.is_available(), "torch.version.cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name} {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, cc {p.major}.{p.minor}")
import gross
print("gross from", gross.__file__)
bad = []
for mod in pkgutil.walk_packages(gross.__path__, "gross."):
    if mod.name.endswith(".__main__"):  # gross.bench.__main__ would run the benchmarks
        continue
    try:
        importlib.import_module(mod.name)
    except Exception:  # noqa: BLE001 - report every module that does not import here
        bad.append(mod.name)
        print(f"IMPORT FAILED: {mod.name}\n{traceback.format_exc()}")
print(f"gross modules: {'all import' if not bad else 'FAILED ' + ', '.join(bad)}")
sys.exit(1 if bad else 0)
EOF
}

stage_tests() {
  local files
  files=$(grep -l "skipif(not torch.cuda.is_available()" tests/test_*.py | tr '\n' ' ')
  [[ -n $files ]] || { echo "no test file has a skipif-no-CUDA test"; return 1; }
  echo "CUDA tests in: $files"
  # shellcheck disable=SC2086 # one word per file
  "$PY" -m pytest -q -p no:cacheprovider -m "not slow" -k cuda -rA --junitxml="$WORK/pytest_cuda.xml" $files
}

stage_bench() {  # $1 = batched | packed
  "$PY" -m gross.bench --device "$BENCH_DEVICE" ${BENCH_MODE:+"$BENCH_MODE"} --only "$1" --name "benchmarks_gpu_$1" \
    --out "$WORK/bench"
}

stage_batched() { stage_bench batched; }
stage_packed() { stage_bench packed; }

stage_data() {
  "$PY" - <<'EOF'
import os, time
from gross.data import cifar
t0 = time.perf_counter()
ds = cifar.cifar10(os.environ["GROSS_DATA"], cache_dir=os.environ.get("DATA_CACHE_DIR") or None, download=False)
print(f"CIFAR-10 from {os.environ['GROSS_DATA']}: train {len(ds.train)}, val {len(ds.val)}, test {len(ds.test)} "
      f"in {time.perf_counter() - t0:.1f} s (cache: {ds.info.get('cache')})")
EOF
}

stage_paper() {
  local sets=() kv words=()
  read -ra words <<<"$PAPER_SET"   # KEY=VALUE words: no spaces inside a value
  for kv in "${words[@]}"; do sets+=(--set "$kv"); done
  export GROSS_OUTPUTS=$WORK/paper_outputs GROSS_EXECUTOR=$PAPER_EXECUTOR
  mkdir -p "$GROSS_OUTPUTS"
  echo "paper stage: profile $PAPER_PROFILE, steps $PAPER_STEPS, sets [${PAPER_SET}], GROSS_EXECUTOR=$GROSS_EXECUTOR, GROSS_RUNS=$GROSS_RUNS"
  "$PY" scripts/paper_four_layer.py --profile "$PAPER_PROFILE" --steps "$PAPER_STEPS" "${sets[@]}" 2>&1 \
    | tee "$WORK/paper.log"
}

if [[ ${1:-} == __stage ]]; then
  "stage_$2"
  exit $?
fi

# ----------------------------------------------------------------------------- driver
T0=$(date +%s)
FAILED=0

record() {  # name status rc wall budget note
  echo "$1,$2,$3,$4,$5,\"${6//\"/\'}\"" >>"$OUT/summary.csv"
  log "stage $1: $2 (rc $3, ${4} s of ${5} s) $6"
  [[ $2 == ok || $2 == skipped ]] || FAILED=1
}

budget_for() {  # cap -> seconds this stage may use (the cap, or what is left of TOTAL_S)
  local left=$((T0 + TOTAL_S - RESERVE_S - $(date +%s)))
  if [[ -n ${1:-} && $1 -lt $left ]]; then echo "$1"; else echo "$left"; fi
}

STAGE_NOTE=""
run_stage() {  # name cap ('' = the rest)
  local name=$1 budget t rc status
  budget=$(budget_for "$2")
  if ((budget < MIN_STAGE_S)); then
    record "$name" skipped "" 0 "$budget" "only ${budget} s left of TOTAL_S=$TOTAL_S"
    return 1
  fi
  log "== stage $name: budget ${budget} s =="
  t=$(now)
  timeout -k 10 "$budget" bash "$SELF" __stage "$name"
  rc=$?
  case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
  record "$name" "$status" "$rc" "$(elapsed "$t")" "$budget" "$STAGE_NOTE"
  STAGE_NOTE=""
  [[ $status == ok ]]
}

want() { [[ ",$STAGES," == *",$1,"* ]]; }

merge_bench() {  # benchmarks_gpu.{csv,md,meta.json} from the parts there are; copies to $OUT
  "$PY" - "$WORK/bench" <<'EOF' || log "merging the bench parts failed (the parts are in the tar)"
import json, sys
from pathlib import Path
import pandas as pd
from gross import utils
d = Path(sys.argv[1])
parts = [p for p in ("batched", "packed") if (d / f"benchmarks_gpu_{p}.csv").exists()]
if parts:
    metas = {p: json.loads((d / f"benchmarks_gpu_{p}.meta.json").read_text()) for p in parts}
    meta = dict(metas[parts[0]])
    meta.update(command="scripts/device_gpu.sh: " + "; ".join(m.get("command", "") for m in metas.values()),
                benchmark_seconds={k: v for m in metas.values() for k, v in m.get("benchmark_seconds", {}).items()},
                wall_time_s=round(sum(m.get("wall_time_s", 0) for m in metas.values()), 2), parts=metas)
    table = pd.concat([pd.read_csv(d / f"benchmarks_gpu_{p}.csv") for p in parts], ignore_index=True)
    utils.save_table(table, "benchmarks_gpu", meta, directory=d)
EOF
  [[ -f $WORK/bench/benchmarks_gpu.csv ]] && cp "$WORK/bench/benchmarks_gpu.csv" "$OUT/"
  tar -czf "$OUT/benchmarks_gpu.tar.gz" -C "$WORK" bench
}

package_paper() {
  local dir=$WORK/paper_outputs jobs=$GROSS_RUNS/$PAPER_PROFILE/jobs
  mkdir -p "$dir"
  if [[ -d $jobs ]]; then
    find "$jobs" -name '*.pt' | sed "s|^$jobs/||; s|/.*||" | sort | uniq -c >"$dir/jobs_done.txt"
  else
    echo "no job outputs under $jobs" >"$dir/jobs_done.txt"
  fi
  local files=(paper_outputs)
  [[ -f $WORK/paper.log ]] && files+=(paper.log)
  tar -czf "$OUT/paper_four_layer.tar.gz" -C "$WORK" "${files[@]}"
}

main() {
  local t util_pid before gpu
  log "start: DRY_RUN=$DRY_RUN STAGES=$STAGES TOTAL_S=$TOTAL_S OUT=$OUT WORK=$WORK REPO=$REPO"
  echo "stage,status,rc,wall_s,budget_s,note" >"$OUT/summary.csv"

  # install: carried wheels, exactly as the device README says (no index, no deps, a target folder)
  t=$(now)
  if compgen -G ".whl/*.whl" >/dev/null; then
    if timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl; then
      record install ok 0 "$(elapsed "$t")" 120 "$(printf '%s ' .whl/*.whl)-> $SITE"
    else
      record install failed 1 "$(elapsed "$t")" 120 "pip install of .whl/*.whl into $SITE failed"
    fi
  else
    record install failed 1 "$(elapsed "$t")" 120 "no .whl/*.whl: run make device-prep here and carry .whl"
  fi
  export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  [[ -f $GROSS_DATA ]] || log "WARNING: no CIFAR-10 archive at $GROSS_DATA: run make device-prep here and carry data"

  if want env; then
    run_stage env "${BUDGET_ENV:-60}"
    [[ -f $WORK/env.txt ]] && cp "$WORK/env.txt" "$OUT/"
  fi
  if gpu=$("$PY" -c 'import sys, torch; sys.exit(3) if not torch.cuda.is_available() else print(torch.cuda.get_device_name(0))'); then
    log "CUDA: $gpu"
  elif [[ $DRY_RUN == 1 ]]; then
    log "no CUDA: DRY_RUN=1, so every stage runs its CPU plumbing check with tiny settings"
  else
    record cuda failed 3 0 0 "torch.cuda.is_available() is False for $PY: this script needs the lent GPU machine (device tool's run); on a CPU use DRY_RUN=1"
    return 3
  fi

  if want tests; then
    run_stage tests "${BUDGET_TESTS:-90}"
    [[ -f $WORK/pytest_cuda.xml ]] && cp "$WORK/pytest_cuda.xml" "$OUT/"
  fi
  mkdir -p "$WORK/bench"
  if want batched; then
    run_stage batched "${BUDGET_BATCHED:-170}"
    merge_bench
  fi
  if want packed; then
    run_stage packed "${BUDGET_PACKED:-150}"
    merge_bench
  fi
  if want data; then
    run_stage data "${BUDGET_DATA:-90}"
  fi
  if want paper; then
    if [[ $PAPER_FRESH == 1 ]]; then rm -rf "${GROSS_RUNS:?}/${PAPER_PROFILE:?}"; fi
    before=$(find "$GROSS_RUNS/$PAPER_PROFILE/jobs" -name '*.pt' 2>/dev/null | wc -l)
    if ((before > 0)); then STAGE_NOTE="resumed: $before job outputs existed before (not end to end)"; fi
    util_pid=""
    if command -v nvidia-smi >/dev/null; then
      mkdir -p "$WORK/paper_outputs"
      nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >"$WORK/paper_outputs/gpu_util.csv" 2>&1 &
      util_pid=$!
    fi
    run_stage paper "${BUDGET_PAPER:-}"
    [[ -n $util_pid ]] && kill "$util_pid" 2>/dev/null
    package_paper
  fi

  log "done in $(($(date +%s) - T0)) s; summary ($OUT/summary.csv):"
  column -s, -t <"$OUT/summary.csv" 2>/dev/null || cat "$OUT/summary.csv"
  if [[ -f $OUT/benchmarks_gpu.csv ]]; then
    "$PY" -c 'import sys, pandas as pd
t = pd.read_csv(sys.argv[1])
print(t[["benchmark", "case", "measured_s", "versus_s", "ratio", "target", "met"]].to_string(index=False))' \
      "$OUT/benchmarks_gpu.csv"
  fi
  ls -la "$OUT"
  return "$FAILED"
}

rm -f "$OUT"/{summary.csv,device_gpu.log,env.txt,pytest_cuda.xml,benchmarks_gpu.csv,benchmarks_gpu.tar.gz,paper_four_layer.tar.gz}
main 2>&1 | tee -a "$OUT/device_gpu.log"
exit "${PIPESTATUS[0]}"
