"""Coverage-guided fuzzing of the serial frame parser (atheris).

    .venv/bin/pip install atheris      # not a test dependency
    .venv/bin/python fuzz/fuzz_frames.py fuzz/corpus/frames -max_total_time=300

New interesting inputs land in the corpus directory; crashes are written as
crash-<hash> files. CI replays the corpus with plain Python (tests/test_fuzz_corpus.py).
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["hcp"]):
    from targets import frames


def main() -> None:
    atheris.Setup(sys.argv, frames)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
