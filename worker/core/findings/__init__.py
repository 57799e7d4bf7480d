"""Findings: calibrated rules over a result's diagnostics, each with fixes as spec edits.

Torch-free and pure (a function of the spec and the result JSON), so the worker attaches them to
a result, the benchmark in ``bench/findings/`` re-scores saved results offline, and the catalog
lists every rule with its threshold and measured precision. The rules' thresholds and precision
are data (``calibration.json``, written by ``bench/findings/calibrate.py`` from the labeled
benchmark's dev split); the prose is rendered from the numbers.
"""

from worker.core.findings.evaluate import findings, headline
from worker.core.findings.remedies import Fix, apply_edits, fixes_for
from worker.core.findings.rules import RULES, Calibration, Rule, load_calibration

__all__ = [
    "RULES", "Calibration", "Fix", "Rule", "apply_edits", "findings", "fixes_for", "headline",
    "load_calibration",
]
