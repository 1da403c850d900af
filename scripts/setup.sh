#!/usr/bin/env bash
# Installs every Debian package mlforge's build and tests need. Idempotent: packages already
# present are skipped, so re-running costs one dpkg query per package.
set -euo pipefail
# plink2 and bcftools are test references only: genotype PCA is checked against plink2 --pca, and
# bcftools concat merges the 1000 Genomes VCFs for it (tests/genotype_pca/plink2_compare.py).
pkgs=(build-essential cmake pkg-config libeigen3-dev libprotobuf-dev protobuf-compiler libgtest-dev
      libgmock-dev libbenchmark-dev libgloo-dev nlohmann-json3-dev libcpp-httplib-dev libboost-dev libcli11-dev
      libspdlog-dev libfmt-dev libhts-dev libdeflate-dev zlib1g-dev libarchive-dev libopenblas-dev
      python3-venv plink2 bcftools)
# With arguments it installs those packages instead (container/image.sh's tools); a leading
# --recommends also installs what they recommend.
recommends=(--no-install-recommends)
if [ "${1:-}" = --recommends ]; then
  recommends=()
  shift
fi
[ $# -gt 0 ] && pkgs=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${recommends[@]}" "${missing[@]}"
