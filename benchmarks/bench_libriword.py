"""LibriWord builder throughput: clips per second per worker and the 1 -> 2 worker scaling.

    python benchmarks/bench_libriword.py [--corpus DIR] [--hours 1.0]

Same as `speechedge bench libriword`; see speechedge/bench.py.
"""

import sys

from speechedge.apps.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "libriword", *sys.argv[1:]]))
