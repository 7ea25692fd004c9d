#!/usr/bin/env bash
# The main job end to end on the bundled ResNet-8 (Fashion-MNIST): inspect the float model,
# quantize it with RAPQ to 4-bit weights and activations (power-of-two scales; first and last
# layers 8-bit), compile it to multiplier-free C, verify the C bit-exactly against the simulator (gcc, clang,
# sanitizers), prove it multiplier-free (RV32I), and print the integer program's top-1 accuracy
# on the 10,000 test images next to the float model's.
set -euo pipefail
cd "$(dirname "$0")/.."
PQC=${PQC:-.venv/bin/pqc}
MODEL=examples/models/resnet8.onnx
OUT=${OUT:-build/demo-resnet8}

echo "== pqc inspect $MODEL"
$PQC inspect "$MODEL"

echo
echo "== pqc compile $MODEL --target shift-accel --method rapq --wbits 4 --abits 4 -o $OUT"
$PQC compile "$MODEL" --target shift-accel --method rapq --wbits 4 --abits 4 --calib fashion-mnist:train:256 \
    -o "$OUT" --force "$@"

echo
echo "== pqc verify $OUT --inputs fashion-mnist:test:16"
$PQC verify "$OUT" --inputs fashion-mnist:test:16

echo
echo "== pqc evaluate $OUT --data fashion-mnist:test   (10,000 images)"
$PQC evaluate "$OUT" --data fashion-mnist:test

echo
echo "Generated C: $OUT/model.c $OUT/model.h (harness $OUT/main.c); report: $OUT/report.md"
