#!/usr/bin/env bash
# mlforge genotype pca against plink2 --pca on the same machine, same threads, same answer.
#
#   bash bench/genotype_pca_vs_plink2.sh [--threads 2] [--repeats 3] [--synth-samples 10000]
#        [--synth-variants 100000] [--no-synth] [--out bench/results/genotype_pca_vs_plink2_DATE.txt]
#
# 1. The 1000 Genomes panel (<shared data>/1000genomes, 22 autosome VCFs of 1126 samples), merged
#    into one VCF with bcftools concat (plink2 takes one --vcf); mlforge reads the merged file and,
#    separately, the 22 files. Timed end to end from the VCF (wall clock, median of --repeats):
#      plink2 --vcf M --max-alleles 2 --snps-only just-acgt --pca 10 [approx]
#      mlforge genotype pca --vcf M --pcs 10 [--approx]
#    and the compute alone: plink2 --pfile (the VCF imported to .pgen first) --pca 10, against
#    mlforge's own GRM + eigensolve seconds (PREFIX.genotype_pca.json).
# 2. A synthetic cohort (`mlforge data synth genotypes`, BGZF VCF, 1% missing calls): plink2 and
#    mlforge, exact and approx, with peak RSS (/usr/bin/time). The default 10,000 x 100,000 cohort
#    takes several minutes per exact run on 2 cores.
# Every pair of runs is checked for the same answer (eigenvalues, |correlation| of the PCs) by
# bench/genotype_pca_agree.py, and the log says so. Needs plink2 and bcftools (scripts/setup.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=2 repeats=3 synth_n=10000 synth_m=100000 synth=1
out="$root/bench/results/genotype_pca_vs_plink2_$(date +%F).txt"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --synth-samples) synth_n=$2; shift 2 ;;
    --synth-variants) synth_m=$2; shift 2 ;;
    --no-synth) synth=0; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
build=${MLFORGE_BUILD_DIR:-$root/build}
ml="$build/cli/mlforge"
data=${MLFORGE_SHARED_DATA:-$root/../shared/data}/1000genomes
py="$(bash "$root/scripts/pyenv.sh")"
command -v plink2 >/dev/null && command -v bcftools >/dev/null || { echo "needs plink2 and bcftools (scripts/setup.sh)" >&2; exit 2; }
[ -x "$ml" ] || bash "$root/scripts/build.sh" --target mlforge
work=$(mktemp -d /tmp/mlforge-gpca-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
exec > >(tee "$out") 2>&1

echo "# genotype PCA: mlforge vs plink2, $(date -u +%FT%TZ)"
echo "# machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# plink2: $(plink2 --version | head -1); mlforge: $(git -C "$root" rev-parse --short HEAD); threads $threads; median of $repeats"

# time_cmd LABEL CMD...: runs CMD `repeats` times, prints each wall time and peak RSS, and sets
# MEDIAN (seconds) and RSS (MB of the median run).
time_cmd() {
  local label=$1
  shift
  local times=() rss=()
  for ((i = 0; i < repeats; i++)); do
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    read -r t m <"$work/time"
    times+=("$t")
    rss+=("$m")
  done
  MEDIAN=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  RSS=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]/1024}')
  printf '%-58s %s s  (runs: %s)  peak RSS %s MB\n' "$label" "$MEDIAN" "${times[*]}" "$RSS"
}

agree() {  # agree LABEL PLINK_PREFIX ML_PREFIX PCS
  "$py" "$root/bench/genotype_pca_agree.py" "$1" "$2" "$3" "$4"
}

if [ -f "$data/1KG_phase3_subset_chr22.vcf.gz" ]; then
  files=()
  for c in $(seq 1 22); do files+=("$data/1KG_phase3_subset_chr$c.vcf.gz"); done
  bcftools concat -Oz -o "$work/panel.vcf.gz" "${files[@]}" 2>/dev/null
  echo
  echo "## 1000 Genomes panel: 1126 samples, 24,640 variants read, 22,220 biallelic SNVs used; 10 PCs"
  time_cmd "plink2 --vcf merged --pca 10 (end to end)" plink2 --vcf "$work/panel.vcf.gz" --max-alleles 2 \
    --snps-only just-acgt --pca 10 --threads "$threads" --out "$work/pl"
  t_pl=$MEDIAN
  time_cmd "mlforge genotype pca --vcf merged --pcs 10 (end to end)" "$ml" genotype pca --vcf "$work/panel.vcf.gz" \
    --pcs 10 --threads "$threads" --out "$work/ml"
  t_ml=$MEDIAN
  agree "panel exact" "$work/pl" "$work/ml" 10
  time_cmd "mlforge genotype pca --vcf 22 files --pcs 10 (end to end)" "$ml" genotype pca --vcf "${files[@]}" \
    --pcs 10 --threads "$threads" --out "$work/ml22"
  t_ml22=$MEDIAN
  "$py" - "$work/ml.genotype_pca.json" "$work/ml22.genotype_pca.json" <<'EOF'
import json, sys
for p in sys.argv[1:]:
    s = json.load(open(p))["seconds"]
    print(f"  mlforge phases ({p.rsplit('/', 1)[1].split('.')[0]}): " + ", ".join(f"{k} {v:.3f} s" for k, v in s.items()))
EOF
  plink2 --vcf "$work/panel.vcf.gz" --max-alleles 2 --snps-only just-acgt --make-pgen --threads "$threads" \
    --out "$work/pg" >/dev/null
  time_cmd "plink2 --pfile --pca 10 (compute, from its own pgen)" plink2 --pfile "$work/pg" --pca 10 \
    --threads "$threads" --out "$work/plc"
  t_plc=$MEDIAN
  ml_compute=$("$py" -c "import json; s=json.load(open('$work/ml.genotype_pca.json'))['seconds']; print(f\"{s['grm'] + s['eigen']:.3f}\")")
  echo "mlforge GRM + eigensolve (compute, from its 2-bit store)               $ml_compute s"
  time_cmd "plink2 --vcf merged --pca 10 approx (end to end)" plink2 --vcf "$work/panel.vcf.gz" --max-alleles 2 \
    --snps-only just-acgt --pca 10 approx --threads "$threads" --out "$work/pla"
  t_pla=$MEDIAN
  time_cmd "mlforge genotype pca --vcf merged --pcs 10 --approx" "$ml" genotype pca --vcf "$work/panel.vcf.gz" \
    --pcs 10 --approx --threads "$threads" --out "$work/mla"
  t_mla=$MEDIAN
  agree "panel approx (mlforge) vs plink2 exact, top 4" "$work/pl" "$work/mla" 4
  "$py" - "$t_pl" "$t_ml" "$t_ml22" "$t_plc" "$ml_compute" "$t_pla" "$t_mla" <<'EOF'
import sys
pl, ml, ml22, plc, mlc, pla, mla = map(float, sys.argv[1:])
print(f"ratios (plink2 / mlforge): end to end {pl / ml:.2f}x (merged VCF), {pl / ml22:.2f}x (22 files); "
      f"compute {plc / mlc:.2f}x (plink2's pgen run, startup and I/O included, over mlforge's GRM + eigensolve); "
      f"approx {pla / mla:.2f}x")
EOF
else
  echo "## no 1000 Genomes panel under $data: skipped"
fi

if [ "$synth" = 1 ]; then
  echo
  echo "## synthetic cohort: $synth_n samples x $synth_m variants, 5 populations, 1% missing calls, BGZF VCF"
  t0=$(date +%s.%N)
  "$ml" data synth genotypes --rows "$synth_n" --cols "$synth_m" --populations 5 --missing-rate 0.01 --compression-level 1 \
    --threads "$threads" "$work/syn.vcf.gz" >/dev/null 2>&1
  echo "written in $(echo "$(date +%s.%N) - $t0" | bc) s: $(du -h "$work/syn.vcf.gz" | cut -f1)"
  repeats=1
  time_cmd "plink2 --vcf --pca 10 meanimpute (end to end)" plink2 --vcf "$work/syn.vcf.gz" --pca 10 meanimpute \
    --threads "$threads" --out "$work/spl"
  time_cmd "mlforge genotype pca --pcs 10 (end to end)" "$ml" genotype pca --vcf "$work/syn.vcf.gz" --pcs 10 \
    --threads "$threads" --out "$work/sml"
  "$py" -c "import json; s=json.load(open('$work/sml.genotype_pca.json')); print('  mlforge phases: ' + ', '.join(f'{k} {v:.1f} s' for k, v in s['seconds'].items()) + f\", store {s['genotype_store_bytes'] / 2**20:.0f} MB\")"
  agree "synthetic exact" "$work/spl" "$work/sml" 10
  time_cmd "plink2 --vcf --pca 10 approx meanimpute" plink2 --vcf "$work/syn.vcf.gz" --pca 10 approx meanimpute \
    --threads "$threads" --out "$work/spla"
  time_cmd "mlforge genotype pca --pcs 10 --approx" "$ml" genotype pca --vcf "$work/syn.vcf.gz" --pcs 10 --approx \
    --threads "$threads" --out "$work/smla"
  agree "synthetic approx (mlforge) vs plink2 exact, top 4" "$work/spl" "$work/smla" 4
fi
echo
echo "log: $out"
