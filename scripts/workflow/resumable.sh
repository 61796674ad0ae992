#!/usr/bin/env bash
# Run one training of the workflow so that a re-run after an interruption resumes it.
#
#   resumable.sh vision|fairseq DIR COMMAND...
#
# DIR is the directory the training writes (vision/distill.py --output-dir, fairseq --save-dir).
# DIR/.command records the command. When DIR holds an interrupted run of the same command, a vision
# training gets --resume (fairseq resumes from DIR/checkpoint_last.pt by itself); when it holds a run
# of another command (Snakemake re-runs a job whose parameters, code or inputs changed), DIR is
# cleared first, so no training ever continues a checkpoint of another configuration. After
# success, DIR/model.pt (the rule's declared output) is a hard link to the finished checkpoint (vision:
# DIR/checkpoint.pt, or DIR/T<T>/checkpoint.pt of a sweep of one T; fairseq: checkpoint_best.pt):
# the trainer's own resume state is never a declared output, so Snakemake's clean-up of an
# incomplete job's outputs never deletes it.
set -euo pipefail
kind=$1 dir=$2
shift 2
want="$(printf '%q ' "$@")"
if [ -f "$dir/.command" ] && [ "$(cat "$dir/.command")" = "$want" ]; then
  if [ "$kind" = vision ] && { [ -f "$dir/checkpoint.pt" ] || compgen -G "$dir/T*/checkpoint.pt" >/dev/null; }; then
    echo "[workflow] $dir: resuming the interrupted run of the same command (--resume)"
    set -- "$@" --resume
  elif [ "$kind" = fairseq ] && [ -f "$dir/checkpoint_last.pt" ]; then
    echo "[workflow] $dir: resuming the interrupted run of the same command (checkpoint_last.pt)"
  fi
else
  if [ -n "$(find "$dir" -type f -print -quit 2>/dev/null)" ]; then   # (empty folders: Snakemake's, for the outputs)
    echo "[workflow] $dir: holds a run of another command; starting afresh"
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  printf '%s' "$want" > "$dir/.command"
fi
echo "\$ $*"
"$@"
case "$kind" in
  vision) one=("$dir"/T*/checkpoint.pt)   # model.pt: a teacher's checkpoint, or the student's of a one-T sweep
          if [ -f "$dir/checkpoint.pt" ]; then ln -f "$dir/checkpoint.pt" "$dir/model.pt"
          elif [ ${#one[@]} = 1 ] && [ -f "${one[0]}" ]; then ln -f "${one[0]}" "$dir/model.pt"; fi ;;
  fairseq) ln -f "$dir/checkpoint_best.pt" "$dir/model.pt" ;;
  *) echo "resumable.sh: unknown kind $kind" >&2; exit 2 ;;
esac
