import sys
from pathlib import Path

# The programs are single files in their image folders, imported as modules here.
ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "consumer"), str(ROOT / "producer"), str(ROOT / "dashboard")]
