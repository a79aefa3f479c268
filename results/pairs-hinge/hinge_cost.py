"""The hinge cost of a training log: mean of the tqdm bar's mono= over the first 20 and the last 30 steps, reading
for each step counter the last value shown. Usage: python results/pairs-hinge/hinge_cost.py runs/pairs-hinge/train-fixed-proj-s1.log"""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read().replace("\r", "\n")
cost = {int(m[1]): float(m[2]) for m in re.finditer(r"(\d+)/\d+ \[[^\]]*mono=([-+\d.e]+)", text)}
values = [cost[k] for k in sorted(cost) if k > 0]
print(f"{len(values)} steps: first 20 {sum(values[:20]) / 20:.2f}, last 30 {sum(values[-30:]) / 30:.2f}")
