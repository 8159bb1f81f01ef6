"""Models: specs and presets, loading, the model families and generation."""
