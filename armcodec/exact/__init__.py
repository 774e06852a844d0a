"""Decoder-exact building blocks: integer layers and integer frequency tables. Imports nothing else of armcodec."""
