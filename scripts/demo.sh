#!/usr/bin/env bash
# The main job, from a fresh machine: install, build, then cluster genotypes with k-means (k = 5)
# and print the adjusted Rand index against the population labels, a confusion table and timings.
# Data: the 1000 Genomes panel in $MLFORGE_SHARED_DATA/1000genomes (default ../shared/data) when it
# is there (chr1..chr22 VCFs + samples.tsv), else synthetic genotypes (`mlforge data synth genotypes`).
# Extra arguments go to `mlforge demo` (e.g. --device cpu, --k 6, --hp mini_batch_size=500).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh" --target mlforge
build=${MLFORGE_BUILD_DIR:-$root/build}
data=${MLFORGE_SHARED_DATA:-$root/../shared/data}/1000genomes
args=()
if [ -f "$data/samples.tsv" ] && [ -f "$data/1KG_phase3_subset_chr22.vcf.gz" ]; then
  echo "demo: 1000 Genomes panel in $data (chr1..chr22)"
  args+=(--labels "$data/samples.tsv" --vcf)
  for c in $(seq 1 22); do args+=("$data/1KG_phase3_subset_chr$c.vcf.gz"); done
else
  echo "demo: no 1000 Genomes panel at $data; using synthetic genotypes (5 populations)"
fi
exec "$build/cli/mlforge" demo "${args[@]}" "$@"
