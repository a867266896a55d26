"""What conditional sampling, augmentation and constraints share."""
