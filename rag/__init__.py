"""Offline bilingual (English / 中文) question answering over newsletter archives."""

__version__ = "0.1.0"
