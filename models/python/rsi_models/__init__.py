"""rsi default models: architectures, metadata (rsi.json), export and data loading."""
