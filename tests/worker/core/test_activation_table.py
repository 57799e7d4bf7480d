"""The one activation table (torch-free: catalog, design facts, the worker's kinds and slopes)
matches the torch code."""

from __future__ import annotations

from typing import get_args

import pytest

from worker.compute.activations import get_activation
from worker.core.activation_table import ACTIVATIONS, max_abs_derivative
from worker.core.spec import ActivationLayer, ActivationName

PARAMETER_SETTINGS = [
    {},
    {"frequency": 0.3, "negative_slope": 0.0, "alpha": 0.5},
    {"frequency": 7.0, "negative_slope": 1.0, "alpha": 3.0},
]


def test_the_table_lists_every_activation():
    assert list(ACTIVATIONS) == list(get_args(ActivationName))


#: max|phi'| is approached only as z -> infinity, not reached on the grid
APPROACHED = {"softplus"}


@pytest.mark.parametrize("name", get_args(ActivationName))
@pytest.mark.parametrize("params", PARAMETER_SETTINGS, ids=["defaults", "small", "large"])
def test_max_slope_and_kind_match_the_torch_implementation(name, params):
    """The table's max slope against the torch derivative's maximum on a fine grid."""
    import torch

    layer = ActivationLayer(name=name, **params)
    torch_side = get_activation(layer)
    z = torch.linspace(-10.0, 10.0, 2_000_001, dtype=torch.float64)
    grid_max = float(torch_side.derivative(z).abs().max())
    assert grid_max <= max_abs_derivative(layer) * (1 + 1e-9)
    if name not in APPROACHED:
        assert max_abs_derivative(layer) == pytest.approx(grid_max, rel=1e-9)
    assert max_abs_derivative(layer) == torch_side.max_abs_derivative
    assert ACTIVATIONS[name].kind == torch_side.kind


@pytest.mark.parametrize("name", get_args(ActivationName))
def test_the_table_names_the_parameters_that_change_the_function(name):
    """A parameter listed for an activation changes phi; one not listed does not."""
    import torch

    z = torch.linspace(-4, 4, 101, dtype=torch.float64)
    base = get_activation(ActivationLayer(name=name)).fn(z)
    changed = {"frequency": 2.5, "negative_slope": 0.3, "alpha": 2.0}
    for parameter, value in changed.items():
        moved = get_activation(ActivationLayer(name=name, **{parameter: value})).fn(z)
        listed = parameter in ACTIVATIONS[name].parameters
        assert (not torch.allclose(base, moved)) == listed, parameter
