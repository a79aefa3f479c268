"""The script that built runs/gain/planted: stage 3 (planted.plant_gain) on an existing stage-2 planted model, as
planted.py --gain does after stage 2 in one command. Kept as run; it writes gain.json, and the "gain" entry of that
model's planted.json was copied from its printed stats (planted.py --gain writes it itself).
Usage: python results/planted-gain/add_gain.py STAGE2_DIR OUT_DIR G0 G1"""
import sys, json, time, shutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import torch
import dilemmas, planted, harness
src, out = sys.argv[1], sys.argv[2]
g0, g1 = float(sys.argv[3]), float(sys.argv[4])
t = time.time()
model, tok = harness.load_model(src)
_, v = planted.load_delta(Path(src) / "delta.safetensors")
layer = json.loads((Path(src) / "planted.json").read_text())["training"]["layer"]
rows, honest, ids = planted.tune_rows()
questions = [dilemmas.row_question(r) for r in rows]
st = planted.plant_gain(model, tok, questions, v, layer, g0, g1)
print(json.dumps(st), time.time() - t)
model.save_pretrained(out); tok.save_pretrained(out)
shutil.copy(Path(src) / "delta.safetensors", out); shutil.copy(Path(src) / "planted.json", out)
b = str(layer); json.dump({"neuron": [layer, st["neurons"][b]]}, open(f"{out}/gain.json", "w"))
