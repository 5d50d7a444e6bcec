"""Log-mel frontend benchmark: Numba batch / streaming vs torch (1 thread) vs librosa, in one run.

    python benchmarks/bench_frontend.py [--clips 100] [--repeats 5]

Same as `speechedge bench frontend`. Prints a Markdown table with ratios; see speechedge/bench.py.
"""

import sys

from speechedge.apps.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "frontend", *sys.argv[1:]]))
