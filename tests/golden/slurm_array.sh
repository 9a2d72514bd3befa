#!/bin/bash
# threshold-probe job: tp-array-L001-aaa-3-123abc
#SBATCH --job-name=tp-array-L001-aaa-3-123abc
#SBATCH --array=0-2%2
#SBATCH --output=/home/jdoe/.threshold-probe/jobs/array-L001-aaa-3-123abc/%a/stdout.log
#SBATCH --error=/home/jdoe/.threshold-probe/jobs/array-L001-aaa-3-123abc/%a/stderr.log
#SBATCH --partition=standard
#SBATCH --account=proj42
#SBATCH --qos=short
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4096M
#SBATCH --time=00:10:00
#SBATCH --gres=gpu:1
#SBATCH --exclusive

set -euo pipefail
# The job's start on this node's clock: the queue wait ends here.
started="${EPOCHREALTIME:-}"

module load python/3.11
module load gcc

source ~/venv/bin/activate

case "${SLURM_ARRAY_TASK_ID:?not an array task}" in
  0)
    cd /home/jdoe/.threshold-probe/jobs/array-L001-aaa-3-123abc/0
    printf '%s\n' "$started" > .slurm-started
    export PYTHONUNBUFFERED=1
    exec '/opt/py 3/bin/python3' /home/jdoe/.threshold-probe/shared/0123456789abcdef/runner.py payload.pkl
    ;;
  1)
    cd /home/jdoe/.threshold-probe/jobs/array-L001-aaa-3-123abc/1
    printf '%s\n' "$started" > .slurm-started
    export PYTHONUNBUFFERED=1
    exec '/opt/py 3/bin/python3' /home/jdoe/.threshold-probe/shared/0123456789abcdef/runner.py payload.pkl
    ;;
  2)
    cd /home/jdoe/.threshold-probe/jobs/array-L001-aaa-3-123abc/2
    printf '%s\n' "$started" > .slurm-started
    export PYTHONUNBUFFERED=1
    exec '/opt/py 3/bin/python3' /home/jdoe/.threshold-probe/shared/0123456789abcdef/runner.py payload.pkl
    ;;
  *)
    echo "threshold-probe: no task ${SLURM_ARRAY_TASK_ID} in this array" >&2
    exit 2
    ;;
esac
