"""Faster, equivalent modules for an open_clip image tower, and its frozen weights cast once.

Two kinds of change, each computing what the stock tower computes:

- :func:`speed_up_vision_tower` swaps the attention and the patch embedding of a ViT tower for
  :class:`PackedSelfAttention` and :class:`LinearPatchEmbedding`, and its last block for a
  :class:`ClassTokenBlock` that computes only the class token the tower pools (same parameters,
  same function);
- :func:`cast_matmul_weights` stores the weights that only matrix products read (linear and
  convolution weights and biases, attention in-projections, the output projection) in bfloat16, once.
  Under ``torch.autocast`` a matrix product casts its float32 operands to bfloat16 on every call,
  and autocast keeps no cast of a weight that needs no gradient: with frozen float32 weights, every
  step copied the whole tower (about 88 M values for ViT-B-32). Weights already in bfloat16 are used
  as they are, so only the (much smaller) activations are cast. The rounding is the one autocast
  applies, so the tower computes exactly what it computed under autocast with float32 weights.
  LayerNorm weights, class and positional embeddings stay float32: autocast runs layer norm in
  float32 and the residual stream stays float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PackedSelfAttention(nn.Module):
    """Self-attention computing the same function as the ``nn.MultiheadAttention`` it wraps, faster.

    ``nn.MultiheadAttention`` in batch-first mode multiplies a transposed (non-contiguous) input by its
    in-projection, which torch runs as one small matrix product per token position; here the
    projection is one matrix product over all ``B * L`` tokens, followed by scaled-dot-product
    attention. The wrapped module's parameters are used as they are.
    """

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        self.inner = attention
        self.heads = attention.num_heads

    @staticmethod
    def supports(attention: nn.Module) -> bool:
        return (
            type(attention) is nn.MultiheadAttention
            and attention.batch_first
            and attention._qkv_same_embed_dim
            and attention.in_proj_bias is not None
            and attention.bias_k is None
            and not attention.add_zero_attn
            and attention.dropout == 0.0
        )

    def forward(self, query, key=None, value=None, need_weights=False, attn_mask=None):
        if (key is not None and key is not query) or (value is not None and value is not query):
            return self.inner(query, key, value, need_weights=need_weights, attn_mask=attn_mask)
        batch, length, width = query.shape
        qkv = F.linear(query, self.inner.in_proj_weight, self.inner.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.inner.out_proj(out), None


class LinearPatchEmbedding(nn.Module):
    """A ViT patch-embedding convolution (kernel = stride, no padding) computed as one matrix product.

    Same function and parameters as the wrapped ``nn.Conv2d``; its backward pass to the image is a
    plain matrix product instead of a transposed convolution. Output ``(B, E, H / p, W / p)``.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.inner = conv

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (
            type(conv) is nn.Conv2d
            and conv.kernel_size == conv.stride
            and conv.padding in ((0, 0), 0)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = image.shape
        ph, pw = self.inner.kernel_size
        gh, gw = height // ph, width // pw
        image = image[:, :, : gh * ph, : gw * pw]
        patches = image.reshape(batch, channels, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(batch, gh * gw, channels * ph * pw)
        weight = self.inner.weight.reshape(self.inner.out_channels, -1)
        tokens = F.linear(patches, weight, self.inner.bias)  # (B, L, E)
        return tokens.transpose(1, 2).unflatten(2, (gh, gw))


class ClassTokenBlock(nn.Module):
    """The last residual block of a ViT that pools its class token, computing that token alone.

    Keys and values come from every token, as in the wrapped open_clip ``ResidualAttentionBlock``;
    the query, the attention output, the residual and the MLP only for the class token (position 0).
    Same parameters; the output ``(B, 1, D)`` is the wrapped block's output at position 0, all that
    such a tower reads of its last block (see :func:`pools_class_token`). For ViT-B-32 at 224 px it
    skips 49 of 50 tokens in 5/6 of the last block's matrix products: about 6 % of the tower.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.inner = block

    @property
    def attention(self) -> nn.MultiheadAttention:
        """The wrapped block's attention (its parameters are used as they are)."""
        attention = self.inner.attn
        return attention.inner if isinstance(attention, PackedSelfAttention) else attention

    @staticmethod
    def supports(block: nn.Module) -> bool:
        from open_clip.transformer import ResidualAttentionBlock

        attention = getattr(block, "attn", None)
        attention = attention.inner if isinstance(attention, PackedSelfAttention) else attention
        return (
            type(block) is ResidualAttentionBlock
            and not hasattr(block, "ln_1_kv")
            and attention is not None
            and PackedSelfAttention.supports(attention)
        )

    def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):
        if k_x is not None or v_x is not None or attn_mask is not None:
            return self.inner(q_x, k_x, v_x, attn_mask=attn_mask)[:, :1]
        block, attention = self.inner, self.attention
        tokens = block.ln_1(q_x)
        batch, length, width = tokens.shape
        heads = attention.num_heads
        weight, bias = attention.in_proj_weight, attention.in_proj_bias
        q = F.linear(tokens[:, :1], weight[:width], bias[:width]).view(batch, 1, heads, width // heads)
        kv = F.linear(tokens, weight[width:], bias[width:]).view(batch, length, 2, heads, width // heads)
        k, v = kv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k, v).transpose(1, 2).reshape(batch, 1, width)
        x = q_x[:, :1] + block.ls_1(attention.out_proj(out))
        return x + block.ls_2(block.mlp(block.ln_2(x)))


def pools_class_token(visual: nn.Module) -> bool:
    """Whether an open_clip ViT tower reads only the class token of its last block's output (class
    token pooling, no attention pooling, no token output, batch-first blocks)."""
    transformer = getattr(visual, "transformer", None)
    return (
        getattr(visual, "pool_type", None) == "tok"
        and getattr(visual, "attn_pool", None) is None
        and not getattr(visual, "output_tokens", True)
        and getattr(transformer, "batch_first", False)
        and len(getattr(transformer, "resblocks", ())) > 0
    )


def speed_up_vision_tower(model: nn.Module) -> int:
    """Swap the image tower's attention and patch embedding for :class:`PackedSelfAttention` and
    :class:`LinearPatchEmbedding`, and its last block for a :class:`ClassTokenBlock`, where the
    layout allows it; returns how many modules were swapped.

    The swapped modules compute the same function with the same parameters (tests compare outputs).
    Towers of other kinds (timm, ResNet) are left as they are.
    """
    visual = getattr(model, "visual", None)
    swapped = 0
    conv = getattr(visual, "conv1", None)
    if conv is not None and LinearPatchEmbedding.supports(conv):
        visual.conv1 = LinearPatchEmbedding(conv)
        swapped += 1
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", [])
    for block in blocks:
        attention = getattr(block, "attn", None)
        if attention is not None and PackedSelfAttention.supports(attention):
            block.attn = PackedSelfAttention(attention)
            swapped += 1
    if pools_class_token(visual) and ClassTokenBlock.supports(blocks[-1]):
        blocks[-1] = ClassTokenBlock(blocks[-1])
        swapped += 1
    return swapped


def matmul_weights(visual: nn.Module) -> list[tuple[nn.Module, str]]:
    """The ``(module, attribute)`` of every parameter of ``visual`` that only matrix products read:
    weight and bias of each ``nn.Linear`` and ``nn.Conv2d``, the packed in-projection of each
    ``nn.MultiheadAttention``, and the tower's output projection ``proj`` (a 2-D parameter).

    Works on a tower on the ``meta`` device too (only the module structure is read).
    """
    found = []
    for module in visual.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            names = ("weight", "bias")
        elif isinstance(module, nn.MultiheadAttention):
            names = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight")
        else:
            continue
        found += [(module, name) for name in names if isinstance(getattr(module, name, None), nn.Parameter)]
    proj = getattr(visual, "proj", None)
    if isinstance(proj, nn.Parameter) and proj.ndim == 2:
        found.append((visual, "proj"))
    return found


def matmul_weight_names(visual: nn.Module, prefix: str = "") -> set[str]:
    """The state-dict names (under ``prefix``, e.g. ``"visual."``) of :func:`matmul_weights`."""
    owners = {id(module): name for name, module in visual.named_modules()}
    names = set()
    for module, attribute in matmul_weights(visual):
        owner = owners[id(module)]
        names.add(f"{prefix}{owner + '.' if owner else ''}{attribute}")
    return names


def cast_matmul_weights(visual: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Store the :func:`matmul_weights` of a frozen tower in ``dtype``, once; returns how many.

    Each float32 parameter is replaced by a ``dtype`` copy (no gradient) and freed, one at a time.
    Run the tower under ``torch.autocast(..., dtype=dtype)`` afterwards: autocast then casts only
    the activations entering each matrix product, and the results are those of autocast over the
    float32 weights.
    """
    cast = 0
    for module, attribute in matmul_weights(visual):
        weight = getattr(module, attribute)
        if weight.dtype != dtype:
            setattr(module, attribute, nn.Parameter(weight.detach().to(dtype), requires_grad=False))
            cast += 1
    return cast
