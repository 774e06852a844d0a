"""Training (float, then quantization-aware) and export to integer weights; nothing the decoder runs imports it."""
