"""The diagnostic groups, one entry each (torch-free): the one table the spec, the result schema
and the catalog are drawn from.

An entry holds a group's name, the smallest preset that turns it on (presets are nested:
``basic`` within ``standard`` within ``full``; ``off`` turns none on), one line on what it
measures (the catalog's text), and the result section its numbers go to: the section's key in
the result JSON and the pydantic model that documents it. Groups may share a section:
``update_ratio``, ``mean_field`` and ``recurrent`` write into ``gradient_flow``.

Derived here: the spec's ``DiagnosticGroup`` literal and ``PRESETS``, and ``SECTIONS`` (the
optional sections of ``ExperimentResult``, in this table's order). The torch side,
``worker/compute/diagnostics/registry.py``, maps every group named here to its probe factory
and refuses to import when the two lists differ.

Adding a diagnostic: its result model (``worker/core/diagnostic_results.py``), one entry here,
one module under ``worker/compute/diagnostics/`` and its factory in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel

from worker.core.diagnostic_results import (
    Curvature,
    GradientFlow,
    Linearity,
    Noise,
    Trajectory,
    Transformer,
)

Preset = Literal["off", "basic", "standard", "full"]
#: The presets that turn groups on, smallest first; each one includes the ones before it.
OnPreset = Literal["basic", "standard", "full"]
PRESET_ORDER: tuple[Preset, ...] = get_args(Preset)


@dataclass(frozen=True)
class ResultSection:
    """One optional section of the result: its key in the result JSON and its model."""

    name: str
    model: type[BaseModel]


@dataclass(frozen=True)
class GroupInfo:
    """One diagnostic group: what it is called, when it runs, what it says, where it writes."""

    name: str
    preset: OnPreset  # the smallest preset that turns it on
    description: str
    section: ResultSection


GRADIENT_FLOW = ResultSection("gradient_flow", GradientFlow)
LINEARITY = ResultSection("linearity", Linearity)
TRAJECTORY = ResultSection("trajectory", Trajectory)
CURVATURE = ResultSection("curvature", Curvature)
NOISE = ResultSection("noise", Noise)
TRANSFORMER = ResultSection("transformer", Transformer)

GROUPS: tuple[GroupInfo, ...] = (
    GroupInfo(
        "gradient_flow", "basic",
        "Gradient RMS per layer, per-layer gains, end-to-end ratio and verdict.", GRADIENT_FLOW,
    ),
    GroupInfo(
        "activations", "basic",
        "Slope coverage of each nonlinearity: saturated or dead units.", LINEARITY,
    ),
    GroupInfo(
        "mean_field", "standard",
        "Mean-field chi1 at initialization against the measured gains.", GRADIENT_FLOW,
    ),
    GroupInfo(
        "recurrent", "basic",
        "Gradient through time per recurrent layer: per-step gain, memory horizon, "
        "LSTM forget gates.", GRADIENT_FLOW,
    ),
    GroupInfo(
        "update_ratio", "standard",
        "||update|| / ||weight|| per layer after each probed step.", GRADIENT_FLOW,
    ),
    GroupInfo(
        "local_linearity", "standard",
        "How well the Jacobian predicts output changes at several input scales.", LINEARITY,
    ),
    GroupInfo(
        "alignment", "standard",
        "Cosine between the negative gradient and the direction to the final weights.",
        TRAJECTORY,
    ),
    GroupInfo(
        "interpolation", "standard",
        "Loss along the straight line from initial to final weights.", LINEARITY,
    ),
    GroupInfo(
        "trajectory", "standard",
        "Distance travelled in weight space and path efficiency.", TRAJECTORY,
    ),
    GroupInfo(
        "linearization_gap", "full",
        "How far the trained network is from its linearization at init.", LINEARITY,
    ),
    GroupInfo(
        "sharpness", "full",
        "Top Hessian eigenvalue against the SGD stability threshold 2(1+m)/lr.", CURVATURE,
    ),
    GroupInfo(
        "noise_scale", "full",
        "Gradient noise scale B_simple (McCandlish et al. 2018).", NOISE,
    ),
    GroupInfo(
        "block_gradients", "basic",
        "Attention models: gradient norm per block (Post-LN's large gradients near the "
        "output at init, Xiong et al. 2020).", TRANSFORMER,
    ),
    GroupInfo(
        "signal_propagation", "standard",
        "Attention models: residual-stream and branch variance per block, and their ratio "
        "(Brock et al. 2021).", TRANSFORMER,
    ),
    GroupInfo(
        "rank_collapse", "standard",
        "Attention models: mean pairwise cosine of token representations after each block "
        "(Dong et al. 2021).", TRANSFORMER,
    ),
    GroupInfo(
        "attention_entropy", "standard",
        "Attention models: entropy of each head's attention rows, and the logit scale.",
        TRANSFORMER,
    ),
)

GROUP_NAMES: tuple[str, ...] = tuple(g.name for g in GROUPS)
GROUPS_BY_NAME: dict[str, GroupInfo] = {g.name: g for g in GROUPS}

if TYPE_CHECKING:
    DiagnosticGroup = str
else:  # the literal the spec validates against (and its JSON Schema enum), from the table
    DiagnosticGroup = Literal[GROUP_NAMES]

#: The groups each preset turns on.
PRESETS: dict[Preset, frozenset[DiagnosticGroup]] = {
    preset: frozenset(g.name for g in GROUPS if PRESET_ORDER.index(g.preset) <= rank)
    for rank, preset in enumerate(PRESET_ORDER)
}

#: The result's optional diagnostic sections, in the order they appear in the result.
SECTIONS: tuple[ResultSection, ...] = tuple(dict.fromkeys(g.section for g in GROUPS))
