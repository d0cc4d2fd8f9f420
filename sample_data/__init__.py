"""Small excerpts of real public data for the demo; see README.md for sources and licences."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent
