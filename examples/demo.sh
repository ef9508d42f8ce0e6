#!/usr/bin/env bash
# The main job on the bundled tiny example (no download): inspect the TF checkpoint, convert it to a
# hub folder with verification, load it with plain transformers, and convert it back to TF.
# $1 is the venv's bin directory (make demo passes it).
set -euo pipefail
BIN=${1:-.venv/bin}
cd "$(dirname "$0")/.."
OUT=${CKPTKIT_DEMO_OUT:-demo-out}
rm -rf "$OUT"
echo "== 1. inspect the TF checkpoint (weights, Adam slots, global_step)"
"$BIN/ckptkit" inspect examples/tiny-bert --quiet   # the summary; without --quiet every tensor is listed
echo "== 2. convert to a hub folder and verify it against the TF variables"
"$BIN/ckptkit" convert examples/tiny-bert "$OUT/tiny-bert" --verify --language en --license apache-2.0
echo "== 3. load it with plain transformers (no trust_remote_code)"
"$BIN/python" - "$OUT/tiny-bert" <<'PY'
import sys, torch
from transformers import AutoModelForPreTraining, AutoTokenizer
folder = sys.argv[1]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForPreTraining.from_pretrained(folder).eval()
batch = tok(["convert the model checkpoint", "korean bert"], padding=True, return_tensors="pt")
with torch.no_grad():
    out = model(**batch)
print(f"loaded {type(model).__name__} with {type(tok).__name__}: prediction_logits {tuple(out.prediction_logits.shape)}")
PY
echo "== 4. and back to a TF checkpoint that Google's BERT code restores"
"$BIN/ckptkit" convert "$OUT/tiny-bert" "$OUT/tiny-bert-tf" --to tf1 --global-step 20000
"$BIN/ckptkit" verify "$OUT/tiny-bert" "$OUT/tiny-bert-tf" --quiet && echo "round trip verified"
