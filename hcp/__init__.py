"""hcp: evaluator terminals and collector for the 好差评 scheme."""
__version__ = "0.1.0"
