"""Which probe serves each diagnostic group: the torch side of ``worker/core/diagnostic_groups``.

``PROBES`` maps every group the core table names to its probe factory (``build`` in the
diagnostic's module): it reads the spec and the built model and returns the diagnostic, or None
where the group does not apply (``recurrent`` without recurrent layers). One probe may serve
several groups (``alignment`` and ``trajectory`` share the parameter snapshots); it is built
once. The order here is the order diagnostics run at each probe step and report into the result:
``gradient_flow`` comes before ``update_ratio``, ``mean_field`` and ``recurrent``, which add to
its section. Importing this module fails when the groups here and in the core table differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from worker.compute.diagnostics import (
    attention_entropy,
    block_gradients,
    gradient_flow,
    interpolation,
    linearization_gap,
    local_linearity,
    mean_field,
    noise_scale,
    rank_collapse,
    recurrent,
    sharpness,
    signal_propagation,
    slope,
    trajectory,
    update_ratio,
)
from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeFactory
from worker.compute.model import Net
from worker.core.diagnostic_groups import GROUP_NAMES
from worker.core.spec import ExperimentSpec

PROBES: dict[str, ProbeFactory] = {
    "gradient_flow": gradient_flow.build,
    "update_ratio": update_ratio.build,
    "mean_field": mean_field.build,
    "recurrent": recurrent.build,
    "activations": slope.build,
    "local_linearity": local_linearity.build,
    "alignment": trajectory.build,
    "trajectory": trajectory.build,
    "interpolation": interpolation.build,
    "linearization_gap": linearization_gap.build,
    "sharpness": sharpness.build,
    "noise_scale": noise_scale.build,
    "block_gradients": block_gradients.build,
    "signal_propagation": signal_propagation.build,
    "rank_collapse": rank_collapse.build,
    "attention_entropy": attention_entropy.build,
}


class RegistryMismatch(RuntimeError):
    """The probe registry and the core group table name different groups."""


def check_registry(probes: Mapping[str, ProbeFactory], groups: Iterable[str]) -> None:
    """Raise :class:`RegistryMismatch` unless ``probes`` has exactly the ``groups``."""
    expected = set(groups)
    missing, unknown = sorted(expected - set(probes)), sorted(set(probes) - expected)
    if missing or unknown:
        raise RegistryMismatch(
            f"diagnostic groups without a probe: {missing}; probes for unknown groups: "
            f"{unknown} (worker/core/diagnostic_groups.py and "
            "worker/compute/diagnostics/registry.py must name the same groups)"
        )


check_registry(PROBES, GROUP_NAMES)


def build_diagnostics(spec: ExperimentSpec, model: Net) -> list[Diagnostic]:
    """The diagnostics of the groups the spec switches on, in run order."""
    ctx = BuildContext(spec, model, spec.diagnostics.enabled_groups())
    factories = dict.fromkeys(build for group, build in PROBES.items() if group in ctx.groups)
    return [d for build in factories if (d := build(ctx)) is not None]
