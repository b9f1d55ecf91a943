"""The model side: token ops, the compressible timm ViT, building, the embedded default, export parts."""
