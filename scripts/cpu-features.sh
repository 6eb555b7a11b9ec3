#!/usr/bin/env bash
# Prints the ggml CMake flags for the x86 instruction sets this CPU really runs.
#
# Why not GGML_NATIVE / -march=native: CPUID can list features the machine cannot execute. A
# virtualised Xeon here lists AMX, and a llama-server built natively dies with SIGILL on
# `tilezero` at its first matrix product. So each feature is enabled only if a probe compiled
# for it runs to exit 0 here, and AMX is never enabled (see below).
#
#   scripts/cpu-features.sh     # e.g. -DGGML_NATIVE=OFF -DGGML_AVX=ON ... -DGGML_AMX_TILE=OFF
#
# On a CPU that is not x86-64 it prints -DGGML_NATIVE=ON (ggml's ARM probe checks itself).
set -euo pipefail

case "$(uname -m)" in
  x86_64 | amd64 | AMD64) ;;
  *) echo "-DGGML_NATIVE=ON"; exit 0 ;;
esac

CC=${CC:-cc}
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

# probe NAME "COMPILER FLAGS" "C BODY": 0 if the body compiles with the flags and runs.
probe() {
  local name=$1 flags=$2 body=$3
  cat >"$dir/$name.c" <<EOF
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
volatile int sink;
int main(void) {
$body
  return 0;
}
EOF
  # shellcheck disable=SC2086 # flags are several words on purpose
  "$CC" -O0 $flags "$dir/$name.c" -o "$dir/$name" 2>/dev/null || return 1
  # A SIGILL kills the probe, not this script.
  (timeout 10 "$dir/$name") >/dev/null 2>&1
}

on() { if probe "$@"; then echo ON; else echo OFF; fi; }

declare -A f
f[SSE42]=$(on sse42 "-msse4.2" 'sink = (int)_mm_crc32_u32(1u, (unsigned)sink);')
f[AVX]=$(on avx "-mavx" '__m256 a = _mm256_set1_ps((float)sink); a = _mm256_add_ps(a, a); sink = (int)_mm256_cvtss_f32(a);')
f[AVX2]=$(on avx2 "-mavx2" '__m256i a = _mm256_set1_epi32(sink); a = _mm256_add_epi32(a, a); sink = _mm256_extract_epi32(a, 0);')
f[FMA]=$(on fma "-mavx -mfma" '__m256 a = _mm256_set1_ps((float)sink); a = _mm256_fmadd_ps(a, a, a); sink = (int)_mm256_cvtss_f32(a);')
f[F16C]=$(on f16c "-mavx -mf16c" '__m128i h = _mm_set1_epi16((short)sink); __m128 a = _mm_cvtph_ps(h); sink = (int)_mm_cvtss_f32(a);')
f[BMI2]=$(on bmi2 "-mbmi2" 'sink = (int)_pdep_u32((unsigned)sink, 0xF0F0u);')
f[AVX_VNNI]=$(on avxvnni "-mavx2 -mavxvnni" '__m256i a = _mm256_set1_epi32(sink); a = _mm256_dpbusd_avx_epi32(a, a, a); sink = _mm256_extract_epi32(a, 0);')
# GGML_AVX512 turns on F, CD, VL, DQ and BW together: one instruction of each.
f[AVX512]=$(on avx512 "-mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw" '
  __m512i a = _mm512_set1_epi32(sink);
  a = _mm512_add_epi32(a, a);
  a = _mm512_add_epi8(a, a);
  a = _mm512_conflict_epi32(a);
  __m512d d = _mm512_and_pd(_mm512_set1_pd((double)sink), _mm512_set1_pd(1.0));
  __m256i v = _mm256_mask_add_epi32(_mm512_castsi512_si256(a), (__mmask8)3, _mm512_castsi512_si256(a), _mm512_castsi512_si256(a));
  sink = _mm256_extract_epi32(v, 0) + (int)_mm512_reduce_add_pd(d);')
f[AVX512_VBMI]=$(on vbmi "-mavx512f -mavx512vbmi" '__m512i a = _mm512_set1_epi32(sink); a = _mm512_permutexvar_epi8(a, a); sink = _mm512_reduce_add_epi32(a);')
f[AVX512_VNNI]=$(on avx512vnni "-mavx512f -mavx512vnni" '__m512i a = _mm512_set1_epi32(sink); a = _mm512_dpbusd_epi32(a, a, a); sink = _mm512_reduce_add_epi32(a);')
f[AVX512_BF16]=$(on avx512bf16 "-mavx512f -mavx512bf16" '__m512 a = _mm512_set1_ps((float)sink); __m512bh b = _mm512_cvtne2ps_pbh(a, a); memcpy((void *)&sink, &b, sizeof sink);')
# AMX stays off. On a virtualised Xeon here, a probe that requests tile state and runs
# tilezero/tdpbssd in several threads passes, yet llama.cpp 0.3.36's AMX kernel still dies
# with SIGILL on `tilezero` in its first product. caro has no AMX kernels, so the reference
# built without them compares like with like (AVX-512 VNNI against AVX-512 VNNI).
f[AMX_TILE]=OFF
f[AMX_INT8]=OFF
f[AMX_BF16]=OFF

out="-DGGML_NATIVE=OFF"
for k in SSE42 AVX AVX2 FMA F16C BMI2 AVX_VNNI AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8 AMX_BF16; do
  out+=" -DGGML_$k=${f[$k]}"
done
echo "$out"
