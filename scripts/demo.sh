#!/usr/bin/env bash
# The main job, from a fresh machine: install, build, then cluster genotypes two ways: k-means
# (k = 5) on the dosages, and genotype PCA -> k-means on the top 10 PCs; print the adjusted Rand
# index of each against the population labels, confusion tables and timings, and draw the PC1/PC2
# and PC3/PC4 scatter plots (PNG and SVG in the work directory).
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
# The PC scatter plots need matplotlib: the project's venv (scripts/pyenv.sh) has it.
plot=()
if py=$(bash "$root/scripts/pyenv.sh"); then
  plot=(--plot-python "$py" --plot-script "$root/scripts/plot_pca.py")
else
  echo "demo: no Python venv with matplotlib (see the reason above): the PC plots are skipped"
fi
exec "$build/cli/mlforge" demo "${args[@]}" "${plot[@]}" "$@"
