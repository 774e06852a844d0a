"""Encoder-only code (float allowed): searches and fits that choose what a file sends. Nothing the decoder runs imports it."""
