#!/usr/bin/env bash
# The prepared GPU check (see device_check.py for the phases). Run from the repository root:
#
#   OUT=/some/empty/folder benchmarks/gpu/device_check.sh CORPUS [CONFIG] [DEVICE]
#
# CORPUS: a folder or .tar.xz with train.txt + heldout.txt; CONFIG: default configs/pretrain/gpu.yaml;
# DEVICE: cuda (default) or cpu (a dry run). Environment: BUDGET_S (python's phases, default 430),
# WALL_S (the whole script, default 505), RUN_DIR (default /tmp/elmo-gpu-run), SPEED_S (default 15),
# RESERVE_S (seconds kept after training, default 75), DRY_RUN_SHAPES=1 (tiny speed candidates, for a CPU dry run).
# Writes into $OUT: device_check.json (every figure), device_check.log (everything printed) and
# model.tar.part-aa, -ab, ... (RUN_DIR/model + log.jsonl + summary.json + config.json as one tar cut
# into pieces under 16 MiB: cat model.tar.part-* | tar -x). Never more than 8 files.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=.
OUT=${OUT:?set OUT to the output folder}
CORPUS=${1:?usage: device_check.sh CORPUS [CONFIG] [DEVICE]}
CONFIG=${2:-configs/pretrain/gpu.yaml}
DEVICE=${3:-cuda}
BUDGET_S=${BUDGET_S:-430}
WALL_S=${WALL_S:-505}
SPEED_S=${SPEED_S:-15}
RUN=${RUN_DIR:-/tmp/elmo-gpu-run}
PY=${PYTHON:-python}
mkdir -p "$OUT"
rm -rf "$RUN"
LOG="$OUT/device_check.log"
echo "[device_check.sh] start $(date -u +%FT%TZ) corpus=$CORPUS config=$CONFIG device=$DEVICE budget=${BUDGET_S}s" | tee "$LOG"
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv) 2>&1 | tee -a "$LOG"

timeout -k 5 $((BUDGET_S + 30)) "$PY" -u benchmarks/gpu/device_check.py --corpus "$CORPUS" --config "$CONFIG" \
    --out "$OUT" --run "$RUN" --device "$DEVICE" --budget-s "$BUDGET_S" --speed-s "$SPEED_S" \
    ${RESERVE_S:+--reserve-s "$RESERVE_S"} ${DRY_RUN_SHAPES:+--dry-run-shapes} 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
echo "[device_check.sh] python exit $rc after ${SECONDS}s" | tee -a "$LOG"

# the run was cut before its export: export its last checkpoint (config.json is the run's full config)
if [ ! -f "$RUN/model/weights.hdf5" ] && [ -f "$RUN/checkpoint.pt" ]; then
    left=$((WALL_S - SECONDS - 15))
    if [ "$left" -gt 20 ]; then
        echo "[device_check.sh] exporting the last checkpoint (up to ${left}s)" | tee -a "$LOG"
        timeout -k 5 "$left" "$PY" -m elmo_tasks.cli pretrain "$RUN/config.json" --out "$RUN" --resume \
            --export-only --device "$DEVICE" 2>&1 | tail -n 5 | tee -a "$LOG"
    fi
fi

if [ -d "$RUN/model" ]; then
    parts=()
    for f in model log.jsonl summary.json config.json; do [ -e "$RUN/$f" ] && parts+=("$f"); done
    # room for 6 pieces next to the json and the log; a model too large for that leaves its softmax out
    size=$(du -cb "${parts[@]/#/$RUN/}" | tail -n 1 | cut -f 1)
    excluded=()
    if [ "$size" -gt $((6 * 16000 * 1024 - 1048576)) ]; then
        excluded=(--exclude model/softmax.hdf5)
        echo "[device_check.sh] $size bytes: packing without model/softmax.hdf5" | tee -a "$LOG"
    fi
    tar -cf - "${excluded[@]}" -C "$RUN" "${parts[@]}" | split -b 16000k -a 2 - "$OUT/model.tar.part-"
    n=$(ls "$OUT" | wc -l)
    echo "[device_check.sh] packed ${parts[*]} into $(ls "$OUT"/model.tar.part-* | wc -l) pieces; $n files in OUT" | tee -a "$LOG"
    if [ "$n" -gt 8 ]; then
        echo "[device_check.sh] more than 8 files: dropping the tar (the figures stay)" | tee -a "$LOG"
        rm -f "$OUT"/model.tar.part-*
    fi
else
    echo "[device_check.sh] no exported model to pack" | tee -a "$LOG"
fi
echo "[device_check.sh] end $(date -u +%FT%TZ) after ${SECONDS}s, python exit $rc" | tee -a "$LOG"
exit "$rc"
