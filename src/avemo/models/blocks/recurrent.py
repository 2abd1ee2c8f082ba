"""Recurrent sequence encoders: an LSTM or GRU over time with a choice of how to summarise it."""

from __future__ import annotations

import torch
from torch import nn

from avemo.models.blocks.attention import TemporalAttention

__all__ = ["RecurrentEncoder"]


class RecurrentEncoder(nn.Module):
    """``(B, T, D)`` -> ``(sequence (B, T, H'), summary (B, H'), weights)``, ``H' = hidden * directions``.

    ``pooling``: ``"last"`` (final hidden state of each direction, as in Zhang et al. 2016),
    ``"mean"`` (average over time) or ``"attention"`` (:class:`TemporalAttention`; its weights are
    returned, else ``weights`` is ``None``).
    """

    def __init__(self, *, input_dim: int, hidden: int = 128, layers: int = 1, bidirectional: bool = False,
                 cell: str = "lstm", pooling: str = "last", dropout: float = 0.0) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(input_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if layers > 1 else 0.0)
        self.pooling = pooling
        self.out_dim = hidden * (2 if bidirectional else 1)
        self.attn = TemporalAttention(dim=self.out_dim) if pooling == "attention" else None
        if pooling not in ("last", "mean", "attention"):
            raise ValueError(f"pooling must be last, mean or attention, not {pooling!r}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        seq, state = self.rnn(x)
        if self.pooling == "mean":
            return seq, seq.mean(1), None
        if self.attn is not None:
            pooled, w = self.attn(seq)
            return seq, pooled, w
        h = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        dirs = 2 if self.rnn.bidirectional else 1
        return seq, torch.cat(list(h[-dirs:]), dim=-1), None
