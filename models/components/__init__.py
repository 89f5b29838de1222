"""One small module per concept: embeddings, positions, norms, attention, MLP, block."""
