"""The seconds of each row scoring in an evaluation's log, read from its tqdm lines (`scoring LABEL (N rows)` then
the bar's elapsed time at 100 %), and their sum.
Usage: python results/offline-20261203-071232/eval_times.py RUN.log > eval-times.txt"""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
label, total = None, 0
for line in re.split(r"[\r\n]", text[text.find("== eval:"):]):                # the eval step only
    if line.startswith("scoring"):
        label = line.strip()
    done = re.search(r"score: 100%\|.*?\| \d+/\d+ \[(\d+):(\d+)<", line)
    if done and label:
        seconds = int(done.group(1)) * 60 + int(done.group(2))
        print(f"{seconds:4d} s  {label}")
        total, label = total + seconds, None
print(f"{total:4d} s  all row scorings")
