"""Losses and evaluations: what a model's loss is, and what it scores on each split.

Shared by the training loop, the summary and the batched multi-seed loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worker.compute.data import Dataset
from worker.core.spec import DataShape

EVAL_MAX_EXAMPLES = 1024  # examples per split in the final evaluation (the summary)


@dataclass(frozen=True)
class Evaluation:
    """Loss and accuracy (None for regression) on the train and validation splits."""

    train_loss: float
    train_accuracy: float | None
    val_loss: float
    val_accuracy: float | None


LossFn = Callable[[Tensor, Tensor], Tensor]


def uses_cross_entropy(shape: DataShape, choice: str = "auto") -> bool:
    return choice == "cross_entropy" or (choice == "auto" and shape.task == "classification")


def loss_function(shape: DataShape, choice: str = "auto") -> LossFn:
    """The training loss: cross-entropy for classification, MSE for regression (``auto``).

    Per-step tasks average over every step. MSE on a classification task regresses one-hot
    targets. Reshapes happen only where the shapes need them: each is a dispatched op, and a
    small model's step is dominated by dispatch.
    """
    use_ce = uses_cross_entropy(shape, choice)
    classes = shape.output_dim

    def loss(out: Tensor, y: Tensor) -> Tensor:
        if out.dim() != 2:
            out = out.reshape(-1, out.shape[-1])
        if use_ce:
            return F.cross_entropy(out, y if y.dim() == 1 else y.reshape(-1))
        if y.dtype == torch.long:
            target = F.one_hot(y.reshape(-1), classes).to(out.dtype)
        else:
            target = y if y.shape == out.shape else y.reshape(out.shape)
        return F.mse_loss(out, target)

    return loss


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn, limit: int = EVAL_MAX_EXAMPLES
) -> tuple[float, float | None]:
    """Loss and accuracy (classification: class ids in ``y``) in eval mode, on the first
    ``limit`` examples. A host sync, so only at evaluation points."""
    was_training = model.training
    model.eval()
    try:
        x, y = x[:limit], y[:limit]
        out = model(x)
        loss = float(loss_fn(out, y))
        acc = None
        if y.dtype == torch.long:
            acc = float((out.argmax(dim=-1) == y).float().mean())
        return loss, acc
    finally:
        model.train(was_training)


def evaluation(
    model: nn.Module, data: Dataset, loss_fn: LossFn, limit: int = EVAL_MAX_EXAMPLES
) -> Evaluation:
    tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, loss_fn, limit)
    val_loss, val_acc = evaluate(model, data.x_val, data.y_val, loss_fn, limit)
    return Evaluation(tr_loss, tr_acc, val_loss, val_acc)


@torch.no_grad()
def baseline_loss(data: Dataset, loss_fn: LossFn, use_ce: bool) -> float:
    """Validation loss of the best constant prediction fitted on the training set.

    The trivial baseline every design must beat: class frequencies (their logarithm under
    cross-entropy) for class ids, the mean target for regression. Outcome labels of the findings
    benchmark are final losses as a share of it.
    """
    classes = data.shape.output_dim
    y_train, y_val = data.y_train, data.y_val[:EVAL_MAX_EXAMPLES]
    if y_train.dtype == torch.long:
        counts = torch.bincount(y_train.reshape(-1), minlength=classes).double()
        prior = counts / counts.sum()
        const = prior.clamp_min(1e-12).log() if use_ce else prior
        rows = y_val.numel()
    else:
        const = y_train.reshape(-1, classes).double().mean(dim=0)
        rows = y_val.numel() // classes
    out = const.to(data.x_val.dtype).expand(rows, classes)
    return float(loss_fn(out, y_val))
