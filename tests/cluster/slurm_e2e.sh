#!/usr/bin/env bash
# The tiny demo workflow through workflow/profiles/slurm on a single-node SLURM brought up on loopback, compared
# byte for byte with a local run of the same workflow; then SLURM is taken down.
#
#   sudo tests/cluster/slurm_e2e.sh            (root: it installs slurm-wlm + munge with apt-get if missing)
#   PYTHON=/path/to/venv/bin/python tests/cluster/slurm_e2e.sh
#
# Exits 0 with "SKIP: ..." where SLURM cannot be installed or started (not root, no apt, daemons refuse to start),
# 0 with "PASS" when the outputs agree, 1 otherwise. All SLURM and munge state lives in a temporary directory.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PYTHON")
export PATH="$BIN:$PATH" MPLBACKEND=Agg SOURCE_DATE_EPOCH=0
unset SNAKEMAKE_PROFILE
T0=$(date +%s)
WORK=$(mktemp -d /tmp/embedrobust-slurm.XXXXXX)
chmod 755 "$WORK"
PIDS=()

skip() { echo "SKIP: $*"; exit 0; }
log() { echo "[slurm_e2e $(($(date +%s) - T0)) s] $*"; }

teardown() {
    set +e
    [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ] && scontrol shutdown >/dev/null 2>&1
    sleep 1
    if [ -n "${SLURM_CONF:-}" ]; then
        rm -f "$SLURM_CONF"
        [ -e "$WORK/slurm.conf.orig" ] && mv "$WORK/slurm.conf.orig" "$SLURM_CONF"
    fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for f in "$WORK"/state/slurmctld.pid "$WORK"/state/slurmd.pid "$WORK"/munge/munged.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap teardown EXIT

# -- install -----------------------------------------------------------------------------------------------------
[ -x "$PYTHON" ] || skip "no Python at $PYTHON (run 'make setup' or set PYTHON)"
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null || skip "snakemake-executor-plugin-slurm missing"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    [ "$(id -u)" = 0 ] || skip "slurm-wlm/munge not installed and not root to install them"
    command -v apt-get >/dev/null || skip "slurm-wlm/munge not installed and no apt-get"
    log "installing slurm-wlm munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$WORK/apt.log" 2>&1 \
        || skip "apt-get install slurm-wlm munge failed (see the log: $(tail -1 "$WORK/apt.log"))"
fi
[ "$(id -u)" = 0 ] || skip "the daemons must start as root (slurmd runs jobs as the submitting user)"

# -- munge -------------------------------------------------------------------------------------------------------
mkdir -p "$WORK/munge" && chmod 700 "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge/munge.key"
SOCK="$WORK/munge/munge.socket"
munged --force --key-file="$WORK/munge/munge.key" --socket="$SOCK" --pid-file="$WORK/munge/munged.pid" \
    --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/munged.seed" \
    || skip "munged did not start: $(tail -2 "$WORK/munge/munged.log" 2>/dev/null)"
chmod 755 "$WORK/munge"   # clients (slurm commands) reach the socket through this directory

# -- slurm -------------------------------------------------------------------------------------------------------
mkdir -p "$WORK/state" "$WORK/spool"
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
# At the default path: the executor's job step deletes every SLURM_* variable (SLURM_CONF too) before its srun.
# A slurm.conf already there is put back on exit.
SLURM_CONF=/etc/slurm/slurm.conf
mkdir -p /etc/slurm
[ -e "$SLURM_CONF" ] && mv "$SLURM_CONF" "$WORK/slurm.conf.orig"
cat >"$SLURM_CONF" <<EOF
ClusterName=embedrobust
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/state/slurmctld.pid
SlurmdPidFile=$WORK/state/slurmd.pid
SlurmctldLogFile=$WORK/state/slurmctld.log
SlurmdLogFile=$WORK/state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# squeue must still list a finished job when the executor next polls (no accounting database, no sacct).
MinJobAge=3600
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF" || skip "slurmctld did not start: $(tail -3 "$WORK/state/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" -N localhost || skip "slurmd did not start: $(tail -3 "$WORK/state/slurmd.log" 2>/dev/null)"
for _ in $(seq 30); do
    sinfo -h -N -o %t 2>/dev/null | grep -qE '^(idle|mix)' && break
    sleep 1
done
sinfo -h -N -o %t 2>/dev/null | grep -qE '^(idle|mix)' \
    || skip "the SLURM node did not come up: $(sinfo -h -N -o '%t %E' 2>&1; tail -3 "$WORK/state/slurmd.log")"
srun -t 1 true || skip "srun cannot run a job on the loopback node: $(tail -3 "$WORK/state/slurmd.log")"
log "SLURM up: $(sinfo -h -N -o '%N %t %c CPUs %m MB')"

# -- two copies of the tiny project ------------------------------------------------------------------------------
"$PYTHON" - "$REPO" "$WORK" <<'EOF'
import sys
from pathlib import Path

import yaml

repo, work = Path(sys.argv[1]), Path(sys.argv[2])
sys.path[:0] = [str(repo / "tests")]
from conftest import TINY
from workflow_helpers import copy_project

for name in ("local", "slurm"):
    copy_project(work / name)
    (work / name / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
EOF

# The local reference run goes on beside the SLURM run (it is waited for below).
(cd "$WORK/local" && T=$(date +%s) \
    && snakemake --workflow-profile workflow/profiles/default --cores 2 reports/final.pdf >"$WORK/local.log" 2>&1 \
    && echo $(($(date +%s) - T)) >"$WORK/local.seconds") &
LOCAL_PID=$!
PIDS+=("$LOCAL_PID")

# The same threads as the local run (bytes of multi-threaded BLAS may depend on the thread count: embed's 2, the
# light stages' 1 of LIGHT_THREADS), and requests this one node can grant. Regression and report get 1 worker
# process here against the local run's 2: their bytes must not depend on it.
cd "$WORK/slurm"
T_SLURM=$(date +%s)
snakemake reports/final.pdf --workflow-profile workflow/profiles/slurm --slurm-status-command squeue --slurm-no-account \
    --slurm-init-seconds-before-status-checks 1 --latency-wait 5 --jobs 4 --cores 2 \
    --default-resources mem_mb=1000 runtime=10 \
    --set-threads fetch=1 embed=2 text=1 metrics=1 downstream=1 regression=1 report=1 \
    --set-resources embed:mem_mb=1000 fetch:mem_mb=1000 text:mem_mb=1000 metrics:mem_mb=1000 \
    downstream:mem_mb=1000 regression:mem_mb=1000 report:mem_mb=1000 >"$WORK/slurm.log" 2>&1 \
    || { tail -40 "$WORK/slurm.log"; find .snakemake/slurm_logs -name '*.log' -exec tail -20 {} +
         tail -5 "$WORK/state/slurmd.log"; echo "FAIL: the SLURM run failed"; exit 1; }
T_SLURM=$(($(date +%s) - T_SLURM))
N_JOBS=$(grep -c "Submitted batch job\|has been submitted with SLURM jobid" "$WORK/slurm.log" || true)
log "SLURM run: $T_SLURM s, $N_JOBS jobs submitted; $(squeue -h -t all -o '%i %j %T' | wc -l) jobs known to squeue"
squeue -h -t all -o '%T' | sort | uniq -c

wait "$LOCAL_PID" || { tail -30 "$WORK/local.log"; echo "FAIL: the local run failed"; exit 1; }
T_LOCAL=$(cat "$WORK/local.seconds")
log "local run: $T_LOCAL s"

# -- compare -----------------------------------------------------------------------------------------------------
digest() {
    (cd "$1" && find reports/metrics.json data/embeddings data/metrics data/downstream data/regression data/text \
        data/dense data/task_attack data/dense_datasets \
        -type f | LC_ALL=C sort | xargs sha256sum)
}
if diff <(digest "$WORK/local") <(digest "$WORK/slurm") >"$WORK/diff.txt"; then
    log "PASS: $(digest "$WORK/local" | wc -l) files equal byte for byte (local $T_LOCAL s, SLURM $T_SLURM s)"
else
    cat "$WORK/diff.txt"
    echo "FAIL: SLURM outputs differ from the local run"
    exit 1
fi
