"""Shared parts the systems are composed from: ResNets (2D/3D), attention (each returns its weights),
self-organised operational layers, recurrent encoders and small CNN pieces."""

from avemo.models.blocks.attention import (
    CBAM,
    ChannelAttention,
    CrossModalAttention,
    SpatialAttention,
    TemporalAttention,
)
from avemo.models.blocks.cnn import ConvBlock2d, FrameCNN, SmallCNN, SpectrogramCNN, TimeDistributed, snippets
from avemo.models.blocks.operational import SelfONN1d, SelfONN2d, SelfONNBlock
from avemo.models.blocks.recurrent import RecurrentEncoder
from avemo.models.blocks.resnet import BasicBlock, ResNet, resnet18_2d, resnet18_3d

__all__ = [
    "CBAM", "BasicBlock", "ChannelAttention", "ConvBlock2d", "CrossModalAttention", "FrameCNN",
    "RecurrentEncoder", "ResNet", "SelfONN1d", "SelfONN2d", "SelfONNBlock", "SmallCNN", "SpatialAttention",
    "SpectrogramCNN", "TemporalAttention", "TimeDistributed", "resnet18_2d", "resnet18_3d", "snippets",
]
