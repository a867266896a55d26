"""The image modality: its table shape, readers, base and generators."""
