#!/usr/bin/python3
"""Reference values for the tests, computed independently (numpy, scipy, sklearn, statsmodels).

    /usr/bin/python3 test/reference/generate.py          # (re)write the files
    /usr/bin/python3 test/reference/generate.py --check  # fail if they differ

Each concern has a module ref_<concern>.py with a files() function that returns
{file name: text}. Everything derives from fixed seeds, so the committed copies
must be reproduced byte for byte; the test command runs --check.
"""
import glob
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    check = "--check" in sys.argv[1:]
    sys.path.insert(0, HERE)
    stale = []
    for module_path in sorted(glob.glob(os.path.join(HERE, "ref_*.py"))):
        module = importlib.import_module(os.path.basename(module_path)[:-3])
        for name, text in module.files().items():
            path = os.path.join(HERE, name)
            if check:
                if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
                    stale.append(name)
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if stale:
        sys.exit("reference files differ from what generate.py produces: " + ", ".join(stale))
    print("reference files: ok" if check else "reference files written")


if __name__ == "__main__":
    main()
