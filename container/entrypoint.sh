#!/bin/sh
# The image's ENTRYPOINT. SageMaker runs `docker run IMAGE train` (training jobs) and
# `docker run IMAGE serve` (endpoints, batch transform); those map onto mlforge's container
# commands. Anything else is passed to mlforge (`docker run IMAGE info`, `... predict ...`).
set -e
echo "Docker entrypoint called with argument(s): $*" >&2
case "${1:-}" in
  train) shift; exec mlforge container train "$@" ;;
  serve) shift; exec mlforge container serve "$@" ;;
  "") echo "usage: docker run IMAGE train|serve (or any mlforge command, e.g. info)" >&2; exit 2 ;;
  *) exec mlforge "$@" ;;
esac
