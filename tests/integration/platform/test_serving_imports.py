"""What a serving process imports at start, checked in a fresh interpreter."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_serving_process_imports_neither_aerich_nor_sanic_ext():
    # Each of them costs tens to hundreds of milliseconds of every start, and so of every rollback.
    # Tortoise it does import: it owns the process's pool (server/db.py, docs/adr/0002).
    code = "import sys; import server.app; print(sorted(m for m in ('aerich', 'sanic_ext') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"
