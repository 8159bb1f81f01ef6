"""The embedded toy world: 8x8 digits, a text-to-image teacher and a classifier, all trained by benchkit."""

from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
TEACHER_DIR = ASSETS / "teacher"
CLASSIFIER_DIR = ASSETS / "classifier"
