"""Math shared by more than one modality: tensors in, tensors out."""
