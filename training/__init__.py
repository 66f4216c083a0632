"""Training and evaluation of the contrastive ECG-text model (CLIP-style, Japanese label texts)."""
