"""The sequence modality: its table shape, checks, split, base and generators."""
