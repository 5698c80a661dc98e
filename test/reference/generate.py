#!/usr/bin/python3
"""Reference values for the tests, computed independently (numpy, scipy, sklearn, statsmodels).

    /usr/bin/python3 test/reference/generate.py              # (re)write the files
    /usr/bin/python3 test/reference/generate.py --check      # fail if they differ
    /usr/bin/python3 test/reference/generate.py --self-test  # the comparison rule rejects what it should

Each concern has a module ref_<concern>.py with a files() function that returns
{file name: text}. Everything derives from fixed seeds.

The comparison rule of --check: numpy's BLAS picks other kernels on other CPUs,
so a float may differ in its last digits from the committed copy. Each line is
split into numbers and the text between them. Text must match exactly; so must
integers (ids, counts: no '.', exponent, inf or nan). Other numbers match when
|a - b| <= max(1e-12 * max(|a|, |b|), 1e-15); NaN matches NaN, an infinity
itself. The first differing value is named with its file, line and column.
Tests read the committed files and compare with their own tolerances, so no
test depends on the CPU that made them.
"""
import glob
import importlib
import math
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REL_TOL = 1e-12
ABS_TOL = 1e-15
NUMBER = re.compile(r"[-+]?(?:(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def tokens(line):
    """Alternating text and number tokens: (kind, text, column)."""
    out, pos = [], 0
    for m in NUMBER.finditer(line):
        out.append(("text", line[pos:m.start()], pos))
        out.append(("number", m.group(), m.start()))
        pos = m.end()
    out.append(("text", line[pos:], pos))
    return out


def is_integer(s):
    return re.fullmatch(r"[-+]?\d+", s) is not None


def numbers_match(a, b):
    if is_integer(a) or is_integer(b):
        return a == b
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= max(REL_TOL * max(abs(x), abs(y)), ABS_TOL)


def first_difference(expected, actual):
    """None when the texts match under the rule, else a description of the first difference."""
    e_lines, a_lines = expected.split("\n"), actual.split("\n")
    if len(e_lines) != len(a_lines):
        return "%d lines, expected %d" % (len(a_lines), len(e_lines))
    for n, (e, a) in enumerate(zip(e_lines, a_lines), 1):
        if e == a:
            continue
        et, at = tokens(e), tokens(a)
        for (ek, ev, col), (ak, av, _) in zip(et, at):
            if ek != ak or (ek == "text" and ev != av) or (ek == "number" and not numbers_match(ev, av)):
                return "line %d, column %d: %r, expected %r" % (n, col + 1, av, ev)
        if len(et) != len(at):
            return "line %d: %d fields, expected %d" % (n, len(at), len(et))
    return None


def produced():
    sys.path.insert(0, HERE)
    for module_path in sorted(glob.glob(os.path.join(HERE, "ref_*.py"))):
        module = importlib.import_module(os.path.basename(module_path)[:-3])
        yield from module.files().items()


def check(files):
    """Names of the files that differ, with the first difference of each."""
    stale = []
    for name, text in files:
        path = os.path.join(HERE, name)
        if not os.path.exists(path):
            stale.append("%s: missing" % name)
            continue
        diff = first_difference(open(path, encoding="utf-8").read(), text)
        if diff:
            stale.append("%s: %s" % (name, diff))
    return stale


def perturb(text, relative, rng):
    """Every non-integer number moved by `relative` of itself (or by `relative` near zero)."""
    def move(m):
        s = m.group()
        if is_integer(s) or not math.isfinite(float(s)):
            return s
        x = float(s)
        return repr(x + rng.choice((-1, 1)) * relative * max(abs(x), 1e-3))
    return "\n".join(NUMBER.sub(move, line) for line in text.split("\n"))


def self_test():
    """Last-digit changes pass; a change of 1e-9 fails; an integer change fails."""
    rng = random.Random(9)
    committed = {os.path.basename(p): open(p, encoding="utf-8").read()
                 for p in sorted(glob.glob(os.path.join(HERE, "*.tsv")))}
    floats = {n: t for n, t in committed.items() if perturb(t, 1e-9, rng) != t}
    for name, text in committed.items():
        last_digit = perturb(text, 2.3e-16, rng)
        assert first_difference(text, last_digit) is None, name
    for name, text in floats.items():
        assert first_difference(text, perturb(text, 1e-9, rng)) is not None, name
    assert first_difference("a\t1\t0.5", "a\t2\t0.5") is not None
    assert first_difference("a\t1\t0.5", "b\t1\t0.5") is not None
    assert first_difference("x\t1e-17", "x\t-1e-17") is None
    assert first_difference("x\tnan", "x\t0.1") is not None
    print("reference comparison: %d files pass with last-digit changes, %d with floats fail at 1e-9"
          % (len(committed), len(floats)))


def main():
    if "--self-test" in sys.argv[1:]:
        self_test()
        return
    if "--check" in sys.argv[1:]:
        stale = check(produced())
        if stale:
            sys.exit("reference files differ from what generate.py produces:\n  " + "\n  ".join(stale))
        print("reference files: ok (numbers within a relative 1e-12)")
        return
    for name, text in produced():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            f.write(text)
    print("reference files written")


if __name__ == "__main__":
    main()
