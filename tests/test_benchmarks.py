"""The benchmark harness runs end to end at toy sizes (no assertion on any time)."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_benchmarks_run_at_toy_size(repo, tmp_path):
    out = tmp_path / "RESULTS.md"
    environment = {**os.environ, "PYTHONPATH": str(repo)}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--toy", "--out", str(out)],
                            cwd=repo, env=environment, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    for title in ("## 1. ODE", "## 2. Start-up", "## 3. Vector field", "## 4. SGD", "## 5. Sweep", "## 6. The model",
                  "## 7. ε_g in the exponential tail", "## 8. Wide networks",
                  "## 9. Activations beyond erf", "## 10. Structured inputs", "## 11. Whole process"):
        assert title in text
    assert "speed-up" in text and "nan" not in text.lower()
