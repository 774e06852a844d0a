"""Shipped armcodec weights (package data: manifest.json and *.safetensors)."""
