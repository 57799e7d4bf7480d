"""Spec models of attention and transformer layers, and the ``transformer`` family shorthand.

Tokens reach a model as one-hot sequences (steps, vocab) (``worker/core/spec/tokens.py``), so
an ``embedding`` is a vocab x dim table applied as a product: a lookup for one-hot inputs, and a
function every probe can differentiate through (Jacobians, Taylor errors, interpolation).

A ``transformer_block`` is two residual branches, attention then an MLP, with
``norm_position``:

- ``pre`` (Pre-LN, Xiong et al. 2020): ``x + s * branch(norm(x))``;
- ``post`` (Post-LN, the original Transformer): ``norm(a * x + s * branch(x))``;
- ``none``: ``x + s * branch(x)``;

where ``residual_scale`` sets ``s`` and ``a``: a number is ``s`` (``a = 1``); ``deepnorm``
(DeepNet, Wang et al. 2022, arXiv 2203.00555) is Post-LN with ``a = (2N)^(1/4)`` on the skip and
the value, output and MLP weights initialized Xavier-normal with gain ``beta = (8N)^(-1/4)``, N
the number of transformer blocks of the model (``s = 1``); ``rezero`` (Bachlechner et al. 2020)
and its synonym ``skipinit`` (De & Smith 2020) make ``s`` a learnable scalar per branch that
starts at 0, so every block starts as the identity.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from worker.core.spec.base import ActivationName, StrictModel

#: The same bounds as ``layers.MAX_WIDTH`` / ``MAX_DEPTH`` (a test checks they agree; imported
#: the other way round, ``layers`` imports this module).
MAX_DIM = 8192
MAX_BLOCKS = 128
MAX_HEADS = 64
MAX_SCALE = 10.0
ScaleRule = Literal["deepnorm", "rezero", "skipinit"]
ResidualScale = float | ScaleRule
NormPosition = Literal["pre", "post", "none"]
BlockNorm = Literal["layer_norm", "rms_norm"]
SCALE_RULES: tuple[ScaleRule, ...] = ("deepnorm", "rezero", "skipinit")


class EmbeddingLayer(StrictModel):
    """Token embedding: one-hot tokens (steps, vocab) to (steps, dim) through a vocab x dim
    table (a lookup, written as a product); entries N(0, 1) as PyTorch's nn.Embedding, whatever
    the init scheme. ``vocab`` defaults to the data's; when given it must match."""

    type: Literal["embedding"] = "embedding"
    dim: int = Field(ge=1, le=MAX_DIM)
    vocab: int | None = Field(None, ge=1, le=MAX_DIM)


class PositionalEncodingLayer(StrictModel):
    """Adds position information to a sequence (steps, d): ``learned`` (a steps x d table,
    N(0, 1)), ``sinusoidal`` (Vaswani et al. 2017: PE[p, 2i] = sin(p / 10000^(2i/d)),
    PE[p, 2i+1] = cos(p / 10000^(2i/d))) or ``none``."""

    type: Literal["positional_encoding"] = "positional_encoding"
    kind: Literal["learned", "sinusoidal", "none"] = "learned"


class SelfAttentionLayer(StrictModel):
    """Multi-head self-attention on a sequence (steps, d), without a skip: per head
    softmax(Q K^T / sqrt(d / heads)) V, heads concatenated, then an output projection.
    ``causal``: step t attends to steps up to t only. ``qk_norm``: layer norm of queries and
    keys per head before the product (Dehghani et al. 2023), which bounds the logits."""

    type: Literal["self_attention"] = "self_attention"
    heads: int = Field(1, ge=1, le=MAX_HEADS)
    causal: bool = True
    qk_norm: bool = False


class RMSNormLayer(StrictModel):
    """RMS norm on the last dimension (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * g,
    no centring, no bias."""

    type: Literal["rms_norm"] = "rms_norm"


class GatedMLPLayer(StrictModel):
    """Gated MLP on the last dimension (Shazeer 2020): W2 (act(W1 x) * W3 x), no biases; with
    ``silu`` it is SwiGLU, with ``gelu`` GeGLU. ``out`` defaults to the input width."""

    type: Literal["gated_mlp"] = "gated_mlp"
    hidden: int = Field(ge=1, le=MAX_DIM)
    activation: ActivationName = "silu"
    out: int | None = Field(None, ge=1, le=MAX_DIM)


class SequencePoolLayer(StrictModel):
    """A sequence (steps, d) to a vector (d,): the mean over steps, or the last step."""

    type: Literal["sequence_pool"] = "sequence_pool"
    mode: Literal["mean", "last"] = "mean"


class BlockOptions(StrictModel):
    """What a transformer block is made of (shared by the layer and the family shorthand)."""

    heads: int = Field(4, description="Attention heads; they must divide d.", ge=1, le=MAX_HEADS)
    causal: bool = Field(True, description="Step t attends to steps up to t only.")
    qk_norm: bool = Field(False, description="Layer norm of queries and keys per head.")
    norm: BlockNorm = "layer_norm"
    norm_position: NormPosition = Field(
        "pre", description="pre: x + s f(norm(x)); post: norm(a x + s f(x)); none: x + s f(x)."
    )
    residual_scale: ResidualScale = Field(
        1.0,
        description="Branch scale s: a number; deepnorm (Post-LN, a = (2N)^(1/4), init gain "
        "(8N)^(-1/4)); rezero / skipinit (a learnable s starting at 0).",
    )
    mlp: Literal["plain", "gated"] = Field(
        "plain", description="plain: linear, activation, linear; gated: SwiGLU-style."
    )
    mlp_ratio: float = Field(4.0, description="MLP hidden width / d.", gt=0, le=16)
    activation: ActivationName = "gelu"
    dropout: float = Field(0.0, description="Dropout on each branch's output.", ge=0, lt=1)

    @field_validator("residual_scale", mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> ResidualScale:
        """One error for the field (not one per union member), and the number's range."""
        try:
            scale: ResidualScale = handler(value)
        except ValidationError:
            raise ValueError(
                f"a number in (0, {MAX_SCALE:g}] or one of {', '.join(SCALE_RULES)}"
            ) from None
        if isinstance(scale, float) and not 0 < scale <= MAX_SCALE:
            raise ValueError(f"a residual scale must be in (0, {MAX_SCALE:g}], got {scale:g}")
        return scale

    @model_validator(mode="after")
    def _deepnorm_is_post_ln(self) -> Any:
        if self.residual_scale == "deepnorm" and self.norm_position != "post":
            raise ValueError(
                "residual_scale 'deepnorm' is a Post-LN rule (norm(a x + f(x))); set "
                "norm_position 'post', or use a number or rezero with pre-LN"
            )
        return self

    def mlp_hidden(self, d: int) -> int:
        return max(1, round(self.mlp_ratio * d))


class TransformerBlockLayer(BlockOptions):
    """A transformer block on a sequence (steps, d): an attention branch and an MLP branch,
    each with a skip, normalized and scaled as ``norm_position`` and ``residual_scale`` say
    (see the module text); the MLP's hidden width is ``mlp_ratio * d``."""

    type: Literal["transformer_block"] = "transformer_block"


def _family_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["family", *schema.get("required", [])]


class TransformerModel(BlockOptions):
    """``transformer`` (sequence data, e.g. one-hot tokens): an embedding to ``width`` (d_model),
    a positional encoding, ``depth`` transformer blocks, a final norm when ``norm_position`` is
    ``pre``, and, when the task predicts one value per sequence, a pool over steps (the last
    step for a causal model, else the mean); compiled to the layers form."""

    # Required in the schema: a model without it is read as the family shorthand (an MLP), so
    # a document may not omit it and still be a transformer (the default serves Python code).
    model_config = ConfigDict(json_schema_extra=_family_required)

    family: Literal["transformer"] = "transformer"
    depth: int = Field(description="Transformer blocks.", ge=1, le=MAX_BLOCKS)
    width: int = Field(description="d_model: the residual stream's width.", ge=1, le=MAX_DIM)
    positional: Literal["learned", "sinusoidal", "none"] = "learned"

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerModel:
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        return self

    def block(self) -> TransformerBlockLayer:
        options = self.model_dump(include=set(BlockOptions.model_fields))
        return TransformerBlockLayer.model_validate(options)


#: The layer types of this module, a part of the union ``Layer`` in ``layers.py``.
TransformerLayer = (
    EmbeddingLayer
    | PositionalEncodingLayer
    | SelfAttentionLayer
    | RMSNormLayer
    | GatedMLPLayer
    | SequencePoolLayer
    | TransformerBlockLayer
)
