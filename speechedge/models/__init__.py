"""Models: BC-ResNet (keyword spotting)."""
