"""``python -m pipelines ...`` is ``mast ...``."""

from pipelines.cli import main

if __name__ == "__main__":
    main()
