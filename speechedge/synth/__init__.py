"""Synthesized corpora (espeak-ng) in the layouts of LibriSpeech and Speech Commands v2."""
