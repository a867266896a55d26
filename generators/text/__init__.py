"""The text modality: its table shape, readers, tokens, base and generators."""
