#!/bin/bash
# threshold-probe job: tp-L003-abc123
#SBATCH --job-name=tp-L003-abc123
#SBATCH --output=/home/jdoe/.threshold-probe/jobs/L003-abc123-9f8e7d/stdout.log
#SBATCH --error=/home/jdoe/.threshold-probe/jobs/L003-abc123-9f8e7d/stderr.log
#SBATCH --partition=standard
#SBATCH --account=proj42
#SBATCH --qos=short
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=300M
#SBATCH --time=00:02:00
#SBATCH --gres=gpu:1
#SBATCH --exclusive

set -euo pipefail
# The job's start on this node's clock: the queue wait ends here.
started="${EPOCHREALTIME:-}"

module load python/3.11
module load gcc

source ~/venv/bin/activate

cd /home/jdoe/.threshold-probe/jobs/L003-abc123-9f8e7d
printf '%s\n' "$started" > .slurm-started
export PYTHONUNBUFFERED=1
export WEIRD='a b'"'"'c$d'
( sleep 90 && printf '%s\n' 'threshold-probe: time limit of 90s reached: the runner killed the job (SLURM counts time limits in whole minutes)' >&2 && kill -KILL $$ ) &
exec '/opt/py 3/bin/python3' /home/jdoe/.threshold-probe/shared/0123456789abcdef/runner.py payload.pkl
