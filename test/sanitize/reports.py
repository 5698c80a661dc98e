#!/usr/bin/python3
"""Sanitizer report files of a test/sanitize.sh run -> exit 1 when one counts.

Every AddressSanitizer error and UBSan runtime error counts. A leak counts when
its allocation stack passes through pg_personalize.so: PostgreSQL itself keeps
process-lifetime malloc() blocks (ps display arguments, GUC strings, ...) that
LeakSanitizer reports at every exit, and frees memory contexts rather than
blocks; those are tallied, never counted. (A suppression file cannot say "not
ours": PostmasterMain is on the stack of every backend allocation, ours too.)
"""
import glob
import re
import sys

OURS = "pg_personalize.so"
failures, ignored = [], 0
for path in sorted(glob.glob(sys.argv[1] + "/*")):
    text = open(path, errors="replace").read()
    if "ERROR: AddressSanitizer" in text or "runtime error" in text:
        failures.append(f"{path}:\n{text}")
        continue
    for block in re.split(r"\n(?=(?:Direct|Indirect) leak of )", text):
        if not re.match(r"(Direct|Indirect) leak of ", block):
            continue
        if OURS in block:
            failures.append(f"{path}: leak from our code\n{block.strip()}")
        else:
            ignored += 1
for f in failures:
    print(f)
print(f"sanitizer reports: {len(failures)} counted; {ignored} leak reports of PostgreSQL's own "
      f"process-lifetime allocations not counted")
sys.exit(1 if failures else 0)
